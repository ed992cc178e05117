#!/bin/sh
# tests/nfs3_tshark_tls.sh NFSD CP CERTS - an RPC-with-TLS session of
# rpctls-cp against rpctls-nfsd, captured on lo, decrypts in tshark with the
# key log rpctls-cp wrote (--keylog) and dissects as NFS.
#
# The capture, without keys: the RFC 9289 probe (NULL with AUTH_TLS, reply
# verifier "STARTTLS") in the clear, a TLS 1.3 ClientHello with ALPN
# "sunrpc" on the same connection, and not one NFS WRITE visible.
# With the key log (-o tls.keylog_file, decode-as tcp.port==PORT,tls): the
# TLS records decrypt (follow,tls) to ONC RPC. tshark 4.0 has no decode-as
# from TLS to RPC (RPC is not in the tls.port table and has no TLS
# heuristic), so the decrypted byte streams are written back into a
# synthetic TCP capture (text2pcap) and dissected with tcp.port==PORT,rpc:
# the NFS WRITE calls (one per 64 KiB) and their replies, a COMMIT, and no
# malformed packets.
# Needs tshark and text2pcap (Debian: tshark, wireshark-common) with capture
# rights on lo; FAILS without.
set -u

NFSD=${1:?usage: nfs3_tshark_tls.sh NFSD CP CERTS}
CP=${2:?usage: nfs3_tshark_tls.sh NFSD CP CERTS}
CERTS=${3:?usage: nfs3_tshark_tls.sh NFSD CP CERTS}
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v tshark >/dev/null 2>&1 || fail "tshark not found (apt-get install tshark)"
command -v text2pcap >/dev/null 2>&1 || fail "text2pcap not found (apt-get install wireshark-common)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rpctls-tshark-tls-XXXXXX") || fail "mktemp"
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

"$CERTS" "$TMP/pki" >/dev/null || fail "rpctls-certs"
"$NFSD" --export "$EXP" --no-root-squash --listen 127.0.0.1:0 --rpcbind off --tls required --cert "$TMP/pki/server.pem" \
    --key "$TMP/pki/server.key" --ca "$TMP/pki/ca.pem" --state-dir "$TMP/state" 2>"$TMP/log" &
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
sleep 0.5

KEYLOG="$TMP/keylog.txt"
head -c 300000 /dev/urandom >"$TMP/src"
timeout 60 "$CP" --ca "$TMP/pki/ca.pem" --cert "$TMP/pki/client.pem" --key "$TMP/pki/client.key" \
    --keylog "$KEYLOG" --wsize 64K --no-progress "$TMP/src" "nfs://127.0.0.1:$PORT$EXP/file" >"$TMP/out" 2>&1 ||
    { cat "$TMP/out" >&2; fail "rpctls-cp"; }
cmp "$TMP/src" "$EXP/file" || fail "the copy differs"
[ -s "$KEYLOG" ] || fail "rpctls-cp --keylog wrote nothing"

sleep 1
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

errors=0
check() { # N MIN DESCRIPTION
    if [ "$1" -ge "$2" ]; then
        echo "ok   $3: $1"
    else
        echo "FAIL: $3: $1 (want at least $2)" >&2
        errors=$((errors + 1))
    fi
}
count() { # CAPTURE DECODE-AS FILTER [more tshark options]
    c=$1 d=$2 f=$3
    shift 3
    tshark -r "$c" -d "$d" "$@" -Y "$f" 2>/dev/null | wc -l
}
RPC="tcp.port==$PORT,rpc"
TLS="tcp.port==$PORT,tls"

# Without keys.
check "$(count "$CAP" "$RPC" 'rpc.msgtyp == 0 && rpc.auth.flavor == 7')" 2 "RFC 9289 probes (AUTH_TLS NULL calls) in the clear, NFS and MOUNT"
check "$(count "$CAP" "$RPC" 'rpc.msgtyp == 1 && rpc.auth.length == 8 && frame contains "STARTTLS"')" 2 "probe replies with the STARTTLS verifier"
check "$(count "$CAP" "$TLS" 'tls.handshake.type == 1 && tls.handshake.extensions_alpn_str == "sunrpc"')" 2 "ClientHellos with ALPN sunrpc"
n=$(count "$CAP" "$RPC" 'nfs.procedure_v3 == 7')
if [ "$n" -eq 0 ]; then echo "ok   no NFS WRITE visible without the keys"; else
    echo "FAIL: $n NFS WRITE packets visible without the keys" >&2; errors=$((errors + 1)); fi

# With the key log: decrypt each TLS stream, rebuild it as plain TCP, dissect as RPC.
DEC="$TMP/dec"
mkdir -p "$DEC"
for s in $(tshark -r "$CAP" -T fields -e tcp.stream 2>/dev/null | sort -nu); do
    tshark -r "$CAP" -o "tls.keylog_file:$KEYLOG" -d "$TLS" -q -z "follow,tls,raw,$s" 2>/dev/null |
        awk '/^\t?[0-9a-f]+$/ {
            line = $0; dir = "O"
            if (substr(line, 1, 1) == "\t") { dir = "I"; line = substr(line, 2) }
            printf "%s\n", dir
            n = length(line) / 2
            for (i = 0; i < n; i += 16) {
                printf "%06x", i
                for (j = i; j < i + 16 && j < n; j++) printf " %s", substr(line, 2 * j + 1, 2)
                printf "\n"
            }
        }' >"$DEC/$s.txt"
    [ -s "$DEC/$s.txt" ] || continue
    text2pcap -q -D -T "50000,$PORT" "$DEC/$s.txt" "$DEC/$s.pcap" >/dev/null || fail "text2pcap"
done
ls "$DEC"/*.pcap >/dev/null 2>&1 || fail "nothing decrypted with the key log"
total() { # FILTER
    t=0
    for p in "$DEC"/*.pcap; do t=$((t + $(count "$p" "$RPC" "$1"))); done
    echo "$t"
}
check "$(total 'mount && rpc.msgtyp == 0 && mount.procedure_v3 == 1')" 1 "decrypted MOUNT MNT calls"
check "$(total 'nfs && rpc.msgtyp == 0 && nfs.procedure_v3 == 7')" 5 "decrypted NFS WRITE calls (300000 bytes, wsize 64 KiB)"
check "$(total 'nfs && rpc.msgtyp == 1 && nfs.procedure_v3 == 7 && nfs.status == 0')" 5 "decrypted NFS WRITE replies, NFS3_OK"
check "$(total 'nfs && rpc.msgtyp == 0 && nfs.procedure_v3 == 21')" 1 "decrypted NFS COMMIT calls"
check "$(total 'nfs && rpc.msgtyp == 0 && nfs.procedure_v3 == 8')" 1 "decrypted NFS CREATE calls"
mal=$(total '_ws.malformed')
if [ "$mal" -ne 0 ]; then echo "FAIL: $mal malformed packets in the decrypted streams" >&2; errors=$((errors + 1)); else
    echo "ok   no malformed packets in the decrypted streams"; fi

for p in "$DEC"/*.pcap; do tshark -r "$p" -d "$RPC" -Y 'nfs || mount' 2>/dev/null | head -12; done
[ $errors -eq 0 ] || fail "$errors failures"
echo "tshark TLS: all passed"
