# tests/mount_lib.sh - what the rpctls-mount tests share; sourced by
# tests/mount_*.sh (". $(dirname "$0")/mount_lib.sh"), not run on its own.
#
#   lib_init NAME [PROGRAM...]  skip (exit 77) without root, /dev/fuse or a
#                               PROGRAM; FAIL without fusermount3; make $T (a
#                               fresh directory) and the EXIT trap that
#                               unmounts, stops every process started here,
#                               prints the logs when a check failed, and
#                               removes $T
#   ok / bad / check / check_errno   one result line each; bad counts $fails.
#                               CHECK_TIMEOUT=S bounds every checked command.
#   wait_for FILE PATTERN WHAT  wait (10 s) until FILE has PATTERN, else FAIL
#   make_certs                  a CA, server and client certificate in
#                               $T/pki; $TLS holds rpctls-mount's TLS flags
#   start_nfsd N [PORT]         rpctls-nfsd over TLS exporting $T/expN (state
#                               $T/stateN, log $T/nfsdN.log, --rpcbind off,
#                               --no-root-squash) on PORT or a fresh one;
#                               sets NFSDn (pid) and PORTn
#   url N                       nfs://127.0.0.1:PORTn/...expN
#   do_mount MNT LOG ARGS...    rpctls-mount -f ARGS MNT in the background,
#                               waits until MNT is in /proc/mounts; sets MPID
#   wait_exit PID [TENTHS]      wait until PID has exited (default 10 s)
#   finish                      the summary line; exit status 1 on failure
#
# The caller sets NFSD and MOUNT (the programs) before start_nfsd/do_mount.

lib_init() {
    name=$1; shift
    [ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
    [ -c /dev/fuse ] || { echo "skipped: no /dev/fuse"; exit 77; }
    command -v fusermount3 >/dev/null || { echo "FAIL: fusermount3 missing (apt-get install fuse3)"; exit 1; }
    for p in "$@"; do
        command -v "$p" >/dev/null || { echo "skipped: $p missing (scripts/deps test)"; exit 77; }
    done
    T=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
    T=$(cd "$T" && pwd -P)
    chmod 755 "$T" # other users (setpriv checks) reach the mount under it
    fails=0 PIDS= MOUNTS= MPID=
    trap lib_cleanup EXIT
    trap 'exit 1' INT TERM
}

lib_cleanup() {
    cd /
    if [ "$fails" != 0 ]; then # what the mounts and the servers said, for the failures above
        for f in "$T"/*.log; do
            [ -f "$f" ] && { echo "---- $(basename "$f")"; tail -n 40 "$f"; }
        done
    fi
    for m in $MOUNTS; do
        grep -q " $m fuse" /proc/mounts && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null; }
    done
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait_exit "$p" 50 || kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}

ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails+1)); }
# What a failed check printed: all of it when short, else its start and end.
lib_out() {
    if [ "$(wc -c <"$T/out")" -le 800 ]; then cat "$T/out"
    else head -c 400 "$T/out"; echo " [...] "; tail -c 400 "$T/out"; fi
}
lib_run() { # a checked command, bounded when CHECK_TIMEOUT is set (a hang is a failure)
    if [ -n "${CHECK_TIMEOUT:-}" ]; then timeout -k 2 "$CHECK_TIMEOUT" "$@"; else "$@"; fi
}
check() { # check NAME CMD...: CMD must succeed; a slow one says how slow
    name=$1; shift
    t0=$(date +%s)
    if lib_run "$@" >"$T/out" 2>&1; then
        t=$(($(date +%s) - t0))
        [ $t -ge 2 ] && ok "$name ($t s)" || ok "$name"
    else
        bad "$name: $(lib_out)"
    fi
}
check_errno() { # check_errno NAME ERRNO-TEXT CMD...: CMD must fail with that message
    name=$1 want=$2; shift 2
    if lib_run "$@" >"$T/out" 2>&1; then bad "$name: succeeded, wanted $want"
    elif grep -q "$want" "$T/out"; then ok "$name"
    else bad "$name: wanted $want, got $(head -c 300 "$T/out")"; fi
}

wait_for() { # wait_for FILE PATTERN WHAT
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i+1)); [ $i -gt 100 ] && { echo "FAIL: $3"; cat "$1"; fails=$((fails+1)); exit 1; }
        sleep 0.1
    done
}

wait_exit() { # wait_exit PID [TENTHS]: 0 once PID has exited, 1 if it is still running
    j=0
    while kill -0 "$1" 2>/dev/null; do
        j=$((j+1)); [ $j -gt "${2:-100}" ] && return 1
        sleep 0.1
    done
    return 0
}

make_certs() {
    "$CERTS" "$T/pki" >/dev/null || { echo "FAIL: rpctls-certs"; exit 1; }
    TLS="--ca $T/pki/ca.pem --cert $T/pki/client.pem --key $T/pki/client.key"
}

start_nfsd() { # start_nfsd N [PORT]
    mkdir -p "$T/exp$1" "$T/state$1"
    rm -f "$T/nfsd$1.log" # a restart must not find the last run's "listening on"
    "$NFSD" --export "$T/exp$1" --no-root-squash --rpcbind off --state-dir "$T/state$1" \
        --listen "127.0.0.1:${2:-0}" --tls required \
        --cert "$T/pki/server.pem" --key "$T/pki/server.key" --ca "$T/pki/ca.pem" >"$T/nfsd$1.log" 2>&1 &
    eval NFSD$1=$!
    PIDS="$PIDS $!"
    wait_for "$T/nfsd$1.log" "listening on" "rpctls-nfsd $1 did not start"
    eval PORT$1=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/nfsd$1.log" | head -1)
}

url() { eval echo "nfs://127.0.0.1:\$PORT$1$T/exp$1"; }

do_mount() { # do_mount MNT LOG ARGS...
    m=$1 log=$2; shift 2
    mkdir -p "$m"
    "$MOUNT" -f "$@" "$m" >"$log" 2>&1 &
    MPID=$!
    PIDS="$PIDS $MPID"; MOUNTS="$MOUNTS $m"
    i=0
    while ! grep -q " $m fuse" /proc/mounts; do
        i=$((i+1)); [ $i -gt 150 ] && { echo "FAIL: $m not mounted"; cat "$log"; exit 1; }
        kill -0 $MPID 2>/dev/null || { echo "FAIL: rpctls-mount exited"; cat "$log"; exit 1; }
        sleep 0.1
    done
}

finish() {
    echo "$fails failure(s)"
    [ $fails = 0 ] && exit 0
    exit 1
}
