#!/bin/sh
# tests/nfs3_libnfs.sh NFSD - libnfs interop against rpctls-nfsd in plain TCP.
#
# Starts NFSD on a free loopback port, then with libnfs's tools (Debian
# package libnfs-utils): nfs-cp writes files of several sizes into the
# export, nfs-cp reads each back, both copies and the exported file are
# compared byte for byte with the source; nfs-ls lists the directory;
# SIGTERM stops the server with exit status 0. URLs are
#   nfs://127.0.0.1/EXPORT/FILE?nfsport=PORT&mountport=PORT&version=3
# (MOUNT and NFS share the port; no portmapper is involved).
#
# nfs-cp / nfs-ls are required: without them the test FAILS (CI installs
# libnfs-utils).
set -u

NFSD=${1:?usage: nfs3_libnfs.sh PATH/TO/rpctls-nfsd}
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v nfs-cp >/dev/null 2>&1 || fail "nfs-cp not found (apt-get install libnfs-utils)"
command -v nfs-ls >/dev/null 2>&1 || fail "nfs-ls not found (apt-get install libnfs-utils)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rpctls-libnfs-XXXXXX") || fail "mktemp"
TMP=$(cd "$TMP" && pwd -P)
EXP="$TMP/export"
mkdir -p "$EXP" "$TMP/src" "$TMP/back" || fail "mkdir"
PID=
cleanup() {
    [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

"$NFSD" --export "$EXP" --no-root-squash --listen 127.0.0.1:0 --rpcbind off --state-dir "$TMP/state" -v 2>"$TMP/log" &
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
echo "rpctls-nfsd on port $PORT, export $EXP"
Q="nfsport=$PORT&mountport=$PORT&version=3"

errors=0
for size in 0 1 4095 4096 4097 65537 3145745; do
    f="f_$size"
    head -c "$size" /dev/urandom >"$TMP/src/$f" || fail "source $size"
    if ! timeout 60 nfs-cp "$TMP/src/$f" "nfs://127.0.0.1$EXP/$f?$Q" >"$TMP/out" 2>&1; then
        cat "$TMP/out" >&2; echo "FAIL: nfs-cp write $size" >&2; errors=$((errors + 1)); continue
    fi
    if ! timeout 60 nfs-cp "nfs://127.0.0.1$EXP/$f?$Q" "$TMP/back/$f" >"$TMP/out" 2>&1; then
        cat "$TMP/out" >&2; echo "FAIL: nfs-cp read $size" >&2; errors=$((errors + 1)); continue
    fi
    cmp "$TMP/src/$f" "$EXP/$f" || { echo "FAIL: exported file differs ($size)" >&2; errors=$((errors + 1)); }
    cmp "$TMP/src/$f" "$TMP/back/$f" || { echo "FAIL: read-back differs ($size)" >&2; errors=$((errors + 1)); }
    echo "ok   $size bytes written and read back identical"
done

# A subdirectory made locally is listed and its files are readable.
mkdir "$EXP/sub" && printf 'nested\n' >"$EXP/sub/n.txt"
if timeout 60 nfs-cp "nfs://127.0.0.1$EXP/sub/n.txt?$Q" "$TMP/back/n.txt" >"$TMP/out" 2>&1; then
    cmp "$EXP/sub/n.txt" "$TMP/back/n.txt" || { echo "FAIL: nested read differs" >&2; errors=$((errors + 1)); }
else
    cat "$TMP/out" >&2; echo "FAIL: nfs-cp nested read" >&2; errors=$((errors + 1))
fi

# A write into the subdirectory.
if timeout 60 nfs-cp "$TMP/src/f_4097" "nfs://127.0.0.1$EXP/sub/w?$Q" >"$TMP/out" 2>&1; then
    cmp "$TMP/src/f_4097" "$EXP/sub/w" || { echo "FAIL: nested write differs" >&2; errors=$((errors + 1)); }
else
    cat "$TMP/out" >&2; echo "FAIL: nfs-cp nested write" >&2; errors=$((errors + 1))
fi

# A symlink in the export pointing out of it leads nowhere.
ln -s /etc "$EXP/evil"
if timeout 30 nfs-cp "nfs://127.0.0.1$EXP/evil/passwd?$Q" "$TMP/back/passwd" >"$TMP/out" 2>&1; then
    echo "FAIL: read /etc/passwd through a symlink" >&2; errors=$((errors + 1))
fi
[ -e "$TMP/back/passwd" ] && [ -s "$TMP/back/passwd" ] && { echo "FAIL: got bytes through the symlink" >&2; errors=$((errors + 1)); }
if timeout 30 nfs-cp "$TMP/src/f_1" "nfs://127.0.0.1$EXP/evil/rpctls-owned?$Q" >"$TMP/out" 2>&1; then
    echo "FAIL: wrote through a symlink" >&2; errors=$((errors + 1))
fi
[ -e /etc/rpctls-owned ] && { rm -f /etc/rpctls-owned; echo "FAIL: /etc/rpctls-owned exists" >&2; errors=$((errors + 1)); }
echo "ok   symlink out of the export refused"

if timeout 60 nfs-ls "nfs://127.0.0.1$EXP?$Q" >"$TMP/ls" 2>&1; then
    cat "$TMP/ls"
    for size in 0 1 4095 4096 4097 65537 3145745; do
        grep -q " f_$size\$" "$TMP/ls" || { echo "FAIL: nfs-ls does not list f_$size" >&2; errors=$((errors + 1)); }
    done
    grep -q " sub\$" "$TMP/ls" || { echo "FAIL: nfs-ls does not list sub" >&2; errors=$((errors + 1)); }
    grep -q ' 3145745 f_3145745$' "$TMP/ls" || { echo "FAIL: nfs-ls size of f_3145745" >&2; errors=$((errors + 1)); }
else
    cat "$TMP/ls" >&2; echo "FAIL: nfs-ls" >&2; errors=$((errors + 1))
fi

# A path outside the export does not mount.
if timeout 30 nfs-ls "nfs://127.0.0.1/etc?$Q" >"$TMP/out" 2>&1; then
    echo "FAIL: nfs-ls of /etc succeeded" >&2; errors=$((errors + 1))
fi

kill -TERM "$PID"
i=0
while kill -0 "$PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$PID" 2>/dev/null; then
    echo "FAIL: rpctls-nfsd did not stop on SIGTERM" >&2; errors=$((errors + 1))
else
    wait "$PID"; st=$?
    [ "$st" -eq 0 ] || { echo "FAIL: rpctls-nfsd exit status $st after SIGTERM" >&2; errors=$((errors + 1)); }
fi
PID=
grep -q 'stopping' "$TMP/log" || { cat "$TMP/log" >&2; echo "FAIL: no shutdown line" >&2; errors=$((errors + 1)); }

if [ $errors -ne 0 ]; then
    cat "$TMP/log" >&2
    fail "$errors failures"
fi
echo "libnfs interop: all passed"
