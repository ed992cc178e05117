#!/bin/sh
# tests/nfs3_tshark_plain.sh NFSD - what rpctls-nfsd puts on the wire in
# plain TCP dissects cleanly in tshark as MOUNT and NFS.
#
# Starts NFSD on a free loopback port, captures that port on lo with tshark,
# runs a libnfs session against it (nfs-cp write and read back: MNT, LOOKUP,
# CREATE, WRITE, COMMIT, GETATTR, READ...; nfs-ls: READDIRPLUS), stops the
# capture, then reads it back with the port decoded as RPC and checks:
#   - MOUNT MNT call and reply, NFS calls and replies for CREATE, WRITE,
#     READ and READDIR or READDIRPLUS, every NFS reply status NFS3_OK;
#   - not one malformed packet (_ws.malformed).
# Needs tshark (Debian package tshark) with capture rights on lo (root, or
# the wireshark group) and nfs-cp / nfs-ls (libnfs-utils); FAILS without.
set -u

NFSD=${1:?usage: nfs3_tshark_plain.sh PATH/TO/rpctls-nfsd}
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v tshark >/dev/null 2>&1 || fail "tshark not found (apt-get install tshark)"
command -v nfs-cp >/dev/null 2>&1 || fail "nfs-cp not found (apt-get install libnfs-utils)"
command -v nfs-ls >/dev/null 2>&1 || fail "nfs-ls not found (apt-get install libnfs-utils)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rpctls-tshark-XXXXXX") || fail "mktemp"
TMP=$(cd "$TMP" && pwd -P)
chmod 755 "$TMP" # tshark may drop privileges to write the capture
EXP="$TMP/export"
mkdir -p "$EXP" || fail "mkdir"
PID=
TPID=
cleanup() {
    [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
    [ -n "$TPID" ] && kill -KILL "$TPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

"$NFSD" --export "$EXP" --no-root-squash --listen 127.0.0.1:0 --rpcbind off --state-dir "$TMP/state" 2>"$TMP/log" &
PID=$!
PORT=
i=0
while [ $i -lt 100 ]; do
    PORT=$(sed -n 's/^rpctls-nfsd: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$TMP/log")
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$TMP/log" >&2; fail "rpctls-nfsd exited"; }
    sleep 0.1
    i=$((i + 1))
done
[ -n "$PORT" ] || { cat "$TMP/log" >&2; fail "no listening line from rpctls-nfsd"; }

CAP="$TMP/cap.pcapng"
tshark -i lo -f "tcp port $PORT" -w "$CAP" >"$TMP/tshark.out" 2>&1 &
TPID=$!
i=0
while ! grep -q "Capturing on" "$TMP/tshark.out" 2>/dev/null; do
    kill -0 "$TPID" 2>/dev/null || { cat "$TMP/tshark.out" >&2; fail "tshark could not capture on lo (root or the wireshark group needed)"; }
    [ $i -ge 150 ] && { cat "$TMP/tshark.out" >&2; fail "tshark did not start capturing"; }
    sleep 0.1
    i=$((i + 1))
done
sleep 0.5 # the filter is attached when "Capturing on" is printed; a little margin

Q="nfsport=$PORT&mountport=$PORT&version=3"
head -c 200000 /dev/urandom >"$TMP/src"
timeout 60 nfs-cp "$TMP/src" "nfs://127.0.0.1$EXP/file?$Q" >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "nfs-cp write"; }
timeout 60 nfs-cp "nfs://127.0.0.1$EXP/file?$Q" "$TMP/back" >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "nfs-cp read"; }
cmp "$TMP/src" "$TMP/back" || fail "read-back differs"
timeout 60 nfs-ls "nfs://127.0.0.1$EXP?$Q" >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "nfs-ls"; }
grep -q " file$" "$TMP/out" || fail "nfs-ls does not list the file"

sleep 1 # let the last segments reach the capture
kill -INT "$TPID"
i=0
while kill -0 "$TPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 "$TPID" 2>/dev/null && fail "tshark did not stop"
wait "$TPID" 2>/dev/null
TPID=
kill -TERM "$PID"
wait "$PID" || fail "rpctls-nfsd exit status $? after SIGTERM"
PID=

[ -s "$CAP" ] || fail "empty capture"
D="-d tcp.port==$PORT,rpc"
count() { tshark -r "$CAP" $D -Y "$1" 2>/dev/null | wc -l; }

errors=0
check() { # FILTER MIN DESCRIPTION
    n=$(count "$1")
    if [ "$n" -ge "$2" ]; then
        echo "ok   $3: $n"
    else
        echo "FAIL: $3: $n packets match '$1'" >&2
        errors=$((errors + 1))
    fi
}
check 'mount && rpc.msgtyp == 0 && mount.procedure_v3 == 1' 1 "MOUNT MNT calls"
check 'mount && rpc.msgtyp == 1 && mount.procedure_v3 == 1 && mount.status == 0' 1 "MOUNT MNT replies, MNT3_OK"
check 'nfs && rpc.msgtyp == 0' 5 "NFS calls"
check 'nfs && rpc.msgtyp == 1' 5 "NFS replies"
check 'nfs && rpc.msgtyp == 1 && nfs.procedure_v3 == 8' 1 "NFS CREATE replies"
check 'nfs && rpc.msgtyp == 1 && nfs.procedure_v3 == 7' 1 "NFS WRITE replies"
check 'nfs && rpc.msgtyp == 1 && nfs.procedure_v3 == 6' 1 "NFS READ replies"
check 'nfs && rpc.msgtyp == 1 && (nfs.procedure_v3 == 16 || nfs.procedure_v3 == 17)' 1 "NFS READDIR(PLUS) replies"

bad=$(count 'nfs && rpc.msgtyp == 1 && nfs.status != 0')
[ "$bad" -eq 0 ] || { echo "FAIL: $bad NFS replies with an error status" >&2; errors=$((errors + 1)); }
mal=$(count '_ws.malformed')
if [ "$mal" -ne 0 ]; then
    tshark -r "$CAP" $D -Y '_ws.malformed' >&2
    echo "FAIL: $mal malformed packets" >&2
    errors=$((errors + 1))
else
    echo "ok   no malformed packets"
fi

if [ $errors -ne 0 ]; then
    tshark -r "$CAP" $D -Y 'nfs || mount' >&2
    fail "$errors failures"
fi
tshark -r "$CAP" $D -Y 'nfs || mount' 2>/dev/null | head -40
echo "tshark plain: all passed"
