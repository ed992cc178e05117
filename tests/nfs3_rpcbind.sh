#!/bin/sh
# tests/nfs3_rpcbind.sh NFSD - rpctls-nfsd registers with rpcbind.
#
# Uses the rpcbind that answers on 127.0.0.1 (rpcinfo -p), or starts one
# (/sbin/rpcbind -f, as root) and stops it at the end, putting back its
# warm-start files. Then:
#   - rpctls-nfsd --rpcbind on, on a free port (not 2049): rpcinfo -p lists
#     100003 v3 tcp and 100005 v3 tcp at that port;
#   - libnfs nfs-cp / nfs-ls with URLs WITHOUT port options
#     (nfs://127.0.0.1/EXPORT/FILE): libnfs 4/5 asks the portmapper
#     (GETPORT) for MOUNT and for NFS; files written and read back identical;
#   - SIGTERM: exit 0, and rpcinfo -p no longer lists them;
#   - a registration left by a SIGKILLed server is replaced by the next one;
#   - listening on [::] registers tcp6 and tcp (when IPv6 is available);
#   - --rpcbind off does not register;
#   - without rpcbind (RPCTLS_RPCBIND_SOCK / RPCTLS_RPCBIND_TCP pointing
#     nowhere, and for real after stopping an rpcbind this test started):
#     --rpcbind on exits 1 with the exact error, --rpcbind auto starts, logs
#     why, and serves.
# Registered in CTest with RESOURCE_LOCK rpcbind. Exit 77 (skipped) when the
# running rpcbind already lists NFS v3: another NFS server's registration is
# not touched.
set -u

NFSD=${1:?usage: nfs3_rpcbind.sh PATH/TO/rpctls-nfsd}
fail() { echo "FAIL: $*" >&2; exit 1; }

for t in rpcinfo nfs-cp nfs-ls; do
    command -v $t >/dev/null 2>&1 || fail "$t not found (apt-get install rpcbind libnfs-utils)"
done
RPCBIND=$(command -v rpcbind || echo /sbin/rpcbind)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rpctls-rpcbind-XXXXXX") || fail "mktemp"
TMP=$(cd "$TMP" && pwd -P)
EXP="$TMP/export"
mkdir -p "$EXP" "$TMP/src" "$TMP/back" "$TMP/saved" || fail "mkdir"
PID=
RB_PID=
RB_STARTED=0
had_sock=1 had_lock=1

stop_rpcbind() {
    [ -n "$RB_PID" ] || return 0
    kill -TERM "$RB_PID" 2>/dev/null
    i=0
    while kill -0 "$RB_PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$RB_PID" 2>/dev/null
    wait "$RB_PID" 2>/dev/null
    RB_PID=
    # rpcbind drops root, so it cannot remove its socket; and it writes
    # warm-start files on exit. Leave /run as it was.
    [ $had_sock -eq 0 ] && rm -f /run/rpcbind.sock
    [ $had_lock -eq 0 ] && rm -f /run/rpcbind.lock
    rm -f /run/rpcbind/rpcbind.xdr /run/rpcbind/portmap.xdr
    cp -p "$TMP"/saved/*.xdr /run/rpcbind/ 2>/dev/null
    return 0
}
cleanup() {
    [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
    stop_rpcbind
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

if rpcinfo -p 127.0.0.1 >"$TMP/rpcinfo" 2>&1; then
    echo "using the running rpcbind"
    if grep -Eq '^ *100003 +3 +tcp ' "$TMP/rpcinfo"; then
        cat "$TMP/rpcinfo"
        echo "SKIP: rpcbind already lists NFS v3 (another NFS server); not replacing its registration"
        exit 77
    fi
else
    [ "$(id -u)" -eq 0 ] || fail "no rpcbind answers on 127.0.0.1 and starting one needs root"
    [ -x "$RPCBIND" ] || fail "rpcbind not found (apt-get install rpcbind)"
    [ -e /run/rpcbind.sock ] || had_sock=0
    [ -e /run/rpcbind.lock ] || had_lock=0
    if [ ! -d /run/rpcbind ]; then
        mkdir -p /run/rpcbind || fail "mkdir /run/rpcbind"
        id _rpc >/dev/null 2>&1 && chown _rpc /run/rpcbind
    fi
    cp -p /run/rpcbind/*.xdr "$TMP/saved/" 2>/dev/null
    # -f: stay in the foreground (our child); no -w: start with no registrations.
    "$RPCBIND" -f >"$TMP/rpcbind.log" 2>&1 &
    RB_PID=$!
    RB_STARTED=1
    i=0
    until rpcinfo -p 127.0.0.1 >/dev/null 2>&1; do
        kill -0 "$RB_PID" 2>/dev/null || { cat "$TMP/rpcbind.log" >&2; RB_PID=; fail "rpcbind exited"; }
        [ $i -lt 100 ] || fail "rpcbind does not answer"
        sleep 0.1
        i=$((i + 1))
    done
    echo "started rpcbind (pid $RB_PID)"
fi

# start_nfsd LOG LISTEN ARGS...: starts NFSD in the background (PID) and
# waits for its listening line (PORT).
start_nfsd() {
    log=$1 listen=$2
    shift 2
    : >"$log"
    "$NFSD" --export "$EXP" --no-root-squash --listen "$listen" --state-dir "$TMP/state" "$@" 2>"$log" &
    PID=$!
    PORT=
    i=0
    while [ $i -lt 100 ]; do
        PORT=$(sed -n 's/^rpctls-nfsd: listening on .*:\([0-9][0-9]*\)$/\1/p' "$log")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$log" >&2; fail "rpctls-nfsd exited"; }
        sleep 0.1
        i=$((i + 1))
    done
    cat "$log" >&2
    fail "no listening line from rpctls-nfsd"
}
# wait_line LOG TEXT: waits (up to 10 s) for a line containing TEXT.
wait_line() {
    i=0
    until grep -qF "$2" "$1"; do
        [ $i -lt 100 ] || { cat "$1" >&2; return 1; }
        sleep 0.1
        i=$((i + 1))
    done
}
# stop_nfsd LOG: SIGTERM, expect exit status 0.
stop_nfsd() {
    kill -TERM "$PID"
    i=0
    while kill -0 "$PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$PID" 2>/dev/null && fail "rpctls-nfsd did not stop on SIGTERM"
    wait "$PID"
    st=$?
    PID=
    [ "$st" -eq 0 ] || { cat "$1" >&2; fail "rpctls-nfsd exit status $st after SIGTERM"; }
}
# listed PROG PORT: rpcinfo -p lists PROG v3 tcp at PORT.
listed() {
    rpcinfo -p 127.0.0.1 >"$TMP/rpcinfo" 2>&1 || return 1
    grep -Eq "^ *$1 +3 +tcp +$2( |\$)" "$TMP/rpcinfo"
}
# registered_at PORT: rpcinfo -p lists NFS or MOUNT at PORT. (Only our own
# port is looked at: another test's server may come and go meanwhile.)
registered_at() {
    rpcinfo -p 127.0.0.1 >"$TMP/rpcinfo" 2>&1
    grep -Eq "^ *10000[35] +[0-9]+ +tcp +$1( |\$)" "$TMP/rpcinfo"
}

errors=0
: >"$TMP/rpcinfo"
# err MESSAGE: one failure, with what rpcinfo said last.
err() {
    echo "FAIL: $*" >&2
    sed 's/^/    rpcinfo: /' "$TMP/rpcinfo" >&2
    errors=$((errors + 1))
}

# ---- registered, found by libnfs without ports, unregistered ----------------
start_nfsd "$TMP/log1" 127.0.0.1:0 --rpcbind on
[ "$PORT" != 2049 ] || fail "got port 2049; the test needs another"
wait_line "$TMP/log1" "rpctls-nfsd: registered NFS v3 and MOUNT v3 with rpcbind (tcp, port $PORT)" ||
    fail "no registration line"
echo "rpctls-nfsd on port $PORT, registered"
listed 100003 "$PORT" || { err "rpcinfo -p does not list 100003 v3 tcp $PORT"; }
listed 100005 "$PORT" || { err "rpcinfo -p does not list 100005 v3 tcp $PORT"; }
echo "ok   rpcinfo -p lists NFS and MOUNT v3 tcp at $PORT"

for size in 0 5000 1048583; do
    f="f_$size"
    head -c "$size" /dev/urandom >"$TMP/src/$f" || fail "source $size"
    if ! timeout 60 nfs-cp "$TMP/src/$f" "nfs://127.0.0.1$EXP/$f" >"$TMP/out" 2>&1; then
        cat "$TMP/out" >&2; err "nfs-cp write $size (no port in the URL)"; continue
    fi
    if ! timeout 60 nfs-cp "nfs://127.0.0.1$EXP/$f" "$TMP/back/$f" >"$TMP/out" 2>&1; then
        cat "$TMP/out" >&2; err "nfs-cp read $size (no port in the URL)"; continue
    fi
    cmp "$TMP/src/$f" "$EXP/$f" || err "exported file differs ($size)"
    cmp "$TMP/src/$f" "$TMP/back/$f" || err "read-back differs ($size)"
    echo "ok   nfs-cp $size bytes both ways through the portmapper"
done
if timeout 60 nfs-ls "nfs://127.0.0.1$EXP" >"$TMP/ls" 2>&1; then
    grep -q ' 1048583 f_1048583$' "$TMP/ls" || { cat "$TMP/ls" >&2; err "nfs-ls does not list f_1048583"; }
    echo "ok   nfs-ls through the portmapper"
else
    cat "$TMP/ls" >&2; err "nfs-ls (no port in the URL)"
fi
stop_nfsd "$TMP/log1"
grep -qF "rpctls-nfsd: unregistered NFS v3 and MOUNT v3 from rpcbind" "$TMP/log1" || err "no unregistration line"
registered_at "$PORT" && err "still registered after SIGTERM"
echo "ok   unregistered after SIGTERM"

# ---- a stale registration (SIGKILL) is replaced -----------------------------
start_nfsd "$TMP/log2" 127.0.0.1:0
wait_line "$TMP/log2" "registered NFS v3 and MOUNT v3 with rpcbind (tcp, port $PORT)" || fail "no registration (auto)"
OLD=$PORT
kill -KILL "$PID"; wait "$PID" 2>/dev/null; PID=
listed 100003 "$OLD" || err "the killed server's registration is not there"
start_nfsd "$TMP/log3" 127.0.0.1:0
wait_line "$TMP/log3" "registered NFS v3 and MOUNT v3 with rpcbind (tcp, port $PORT)" || err "stale registration not replaced"
listed 100003 "$PORT" && listed 100005 "$PORT" || err "rpcinfo -p does not list the new port $PORT"
listed 100003 "$OLD" && err "the old port $OLD is still listed"
timeout 60 nfs-cp "nfs://127.0.0.1$EXP/f_5000" "$TMP/back/again" >"$TMP/out" 2>&1 && cmp -s "$TMP/src/f_5000" "$TMP/back/again" ||
    { cat "$TMP/out" >&2; err "nfs-cp after the replacement"; }
stop_nfsd "$TMP/log3"
registered_at "$PORT" && err "still registered after SIGTERM (replacement)"
echo "ok   a SIGKILLed server's registration is replaced by the next start"

# ---- [::]: tcp and tcp6 ------------------------------------------------------
# Only where an IPv6 socket can be had (rpctls-nfsd then says it listens).
"$NFSD" --export "$EXP" --no-root-squash --listen '[::]:0' --state-dir "$TMP/state" --rpcbind off 2>"$TMP/probe6" &
p6=$!
wait_line "$TMP/probe6" "rpctls-nfsd: listening on [::]:" >/dev/null 2>&1 && have6=1 || have6=0
kill -TERM $p6 2>/dev/null
wait $p6
if [ $have6 -eq 1 ]; then
    start_nfsd "$TMP/log6" '[::]:0' --rpcbind on
    if [ "$(cat /proc/sys/net/ipv6/bindv6only 2>/dev/null || echo 0)" = 0 ]; then
        want="(tcp, tcp6, port $PORT)"
    else
        want="(tcp6, port $PORT)"
    fi
    wait_line "$TMP/log6" "registered NFS v3 and MOUNT v3 with rpcbind $want" || err "[::] registration"
    rpcinfo 127.0.0.1 >"$TMP/rpcinfo6" 2>&1
    P1=$((PORT / 256)) P2=$((PORT % 256))
    grep -Eq "^ *100003 +3 +tcp6 +::\.$P1\.$P2 " "$TMP/rpcinfo6" || { cat "$TMP/rpcinfo6" >&2; err "no 100003 tcp6 ::.$P1.$P2"; }
    grep -Eq "^ *100005 +3 +tcp6 +::\.$P1\.$P2 " "$TMP/rpcinfo6" || { cat "$TMP/rpcinfo6" >&2; err "no 100005 tcp6 ::.$P1.$P2"; }
    stop_nfsd "$TMP/log6"
    rpcinfo 127.0.0.1 >"$TMP/rpcinfo" 2>&1
    grep -Eq "^ *10000[35] +3 +tcp6? +(::|0\.0\.0\.0)\.$P1\.$P2 " "$TMP/rpcinfo" && err "[::] still registered after SIGTERM"
    echo "ok   [::] registers $want and unregisters"
else
    echo "skip [::]: no IPv6 here"
fi

# ---- --rpcbind off -------------------------------------------------------------
start_nfsd "$TMP/log4" 127.0.0.1:0 --rpcbind off
sleep 0.3
grep -Eq 'with rpcbind|from rpcbind' "$TMP/log4" && { cat "$TMP/log4" >&2; err "--rpcbind off mentions rpcbind"; }
registered_at "$PORT" && err "--rpcbind off registered"
stop_nfsd "$TMP/log4"
echo "ok   --rpcbind off leaves rpcbind alone"

# ---- no rpcbind ------------------------------------------------------------------
# check_absent LABEL EXPECTED_REASON: --rpcbind on fails with the exact
# error; auto starts, says why, serves.
check_absent() {
    "$NFSD" --export "$EXP" --no-root-squash --listen 127.0.0.1:0 --state-dir "$TMP/state" --rpcbind on 2>"$TMP/on.log"
    st=$?
    [ $st -eq 1 ] || err "$1: --rpcbind on without rpcbind: exit status $st, want 1"
    line="rpctls-nfsd: --rpcbind on: cannot register with rpcbind: $2"
    grep -qxF "$line" "$TMP/on.log" || { cat "$TMP/on.log" >&2; err "$1: want the line: $line"; }
    start_nfsd "$TMP/auto.log" 127.0.0.1:0
    line="rpctls-nfsd: not registered with rpcbind ($2): clients must be given the port"
    wait_line "$TMP/auto.log" "$line" || err "$1: --rpcbind auto: want the line: $line"
    Q="nfsport=$PORT&mountport=$PORT&version=3"
    rm -f "$TMP/back/auto"
    timeout 60 nfs-cp "nfs://127.0.0.1$EXP/f_5000?$Q" "$TMP/back/auto" >"$TMP/out" 2>&1 &&
        cmp -s "$TMP/src/f_5000" "$TMP/back/auto" || { cat "$TMP/out" >&2; err "$1: --rpcbind auto does not serve"; }
    stop_nfsd "$TMP/auto.log"
    echo "ok   $1: --rpcbind on refuses to start, auto serves"
}
# The test knobs: a socket path where nothing is, and no portmap fallback.
export RPCTLS_RPCBIND_SOCK="$TMP/no-rpcbind.sock" RPCTLS_RPCBIND_TCP=
check_absent "socket absent" "no rpcbind: $TMP/no-rpcbind.sock: No such file or directory"
unset RPCTLS_RPCBIND_SOCK RPCTLS_RPCBIND_TCP
if [ $RB_STARTED -eq 1 ]; then
    stop_rpcbind
    rm -f /run/rpcbind.sock # as if it had never run (the stale file gives "Connection refused")
    check_absent "rpcbind stopped" \
        "no rpcbind: /run/rpcbind.sock: No such file or directory; 127.0.0.1:111: Connection refused"
fi

if [ $errors -ne 0 ]; then
    for l in "$TMP"/log*; do echo "== $l" >&2; cat "$l" >&2; done
    fail "$errors failures"
fi
echo "rpcbind registration: all passed"
