#!/bin/sh
# tests/mount_posix.sh NFSD MOUNT CERTS - POSIX behaviour through rpctls-mount
# over RPC-with-TLS to rpctls-nfsd, then real programs (git clone + fsck,
# tar -x + diff -r, cp + cmp + sha256sum on the server's disk) and a --hard
# server restart during a cp.
# Needs root and /dev/fuse (exit 77: skipped otherwise). Sizes:
# RPCTLS_TEST_DIR_ENTRIES (default 10000), RPCTLS_TEST_FILE_MB (default 64).
set -u
NFSD=$1 MOUNT=$2 CERTS=$3
ENTRIES=${RPCTLS_TEST_DIR_ENTRIES:-10000}
FILE_MB=${RPCTLS_TEST_FILE_MB:-64}

[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
[ -c /dev/fuse ] || { echo "skipped: no /dev/fuse"; exit 77; }
command -v fusermount3 >/dev/null || { echo "FAIL: fusermount3 missing (apt-get install fuse3)"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/mount-posix.XXXXXX")
T=$(cd "$T" && pwd -P)
EXP=$T/export MNT=$T/mnt
mkdir -p "$EXP" "$T/state" "$MNT"
chmod 755 "$T"
NFSD_PID= MOUNT_PID=
fails=0

cleanup() {
    cd /
    if [ -n "$MOUNT_PID" ]; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
        i=0; while kill -0 "$MOUNT_PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
        kill -9 "$MOUNT_PID" 2>/dev/null
    fi
    [ -n "$NFSD_PID" ] && kill "$NFSD_PID" 2>/dev/null && wait "$NFSD_PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails+1)); }
check() { # check NAME CMD...: CMD must succeed
    name=$1; shift
    if "$@" >"$T/out" 2>&1; then ok "$name"; else bad "$name: $(head -c 400 "$T/out")"; fi
}
check_errno() { # check_errno NAME ERRNO-TEXT CMD...: CMD must fail with that message
    name=$1 want=$2; shift 2
    if "$@" >"$T/out" 2>&1; then bad "$name: succeeded, wanted $want"
    elif grep -q "$want" "$T/out"; then ok "$name"
    else bad "$name: wanted $want, got $(head -c 300 "$T/out")"; fi
}

"$CERTS" "$T/pki" >/dev/null || exit 1
start_nfsd() { # start_nfsd PORT
    # --no-root-squash: this battery runs as root (uid 0 reaches the server
    # as uid 0, as from a kernel client of a no_root_squash export).
    "$NFSD" --export "$EXP" --no-root-squash --rpcbind off --state-dir "$T/state" --listen "127.0.0.1:$1" --tls required \
        --cert "$T/pki/server.pem" --key "$T/pki/server.key" --ca "$T/pki/ca.pem" >"$T/nfsd.log" 2>&1 &
    NFSD_PID=$!
    i=0
    while ! grep -q "listening on" "$T/nfsd.log" 2>/dev/null; do
        i=$((i+1)); [ $i -gt 100 ] && { echo "FAIL: rpctls-nfsd did not start"; cat "$T/nfsd.log"; exit 1; }
        sleep 0.1
    done
    PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/nfsd.log" | head -1)
}
start_nfsd 0
"$MOUNT" -f -o allow_other --ca "$T/pki/ca.pem" --cert "$T/pki/client.pem" --key "$T/pki/client.key" \
    --attr-timeout 0 --entry-timeout 0 --wsize 64K --rsize 64K --timeo 2000 \
    "nfs://127.0.0.1:$PORT$EXP" "$MNT" >"$T/mount.log" 2>&1 &
MOUNT_PID=$!
i=0
while ! grep -q " $MNT fuse" /proc/mounts; do
    i=$((i+1)); [ $i -gt 100 ] && { echo "FAIL: not mounted"; cat "$T/mount.log"; exit 1; }
    kill -0 $MOUNT_PID 2>/dev/null || { echo "FAIL: rpctls-mount exited"; cat "$T/mount.log"; exit 1; }
    sleep 0.1
done
grep -q "TLS (" "$T/mount.log" && ok "mounted over TLS" || bad "mount not over TLS: $(cat "$T/mount.log")"
cd "$MNT" || { echo "FAIL: cannot enter the mount"; cat "$T/mount.log"; exit 1; }

# ---- open flags ----
check "O_CREAT|O_EXCL creates" sh -c 'set -C; echo one > excl'
check_errno "O_CREAT|O_EXCL on an existing file: EEXIST" "exists" sh -c 'set -C; echo two > excl'
check "O_TRUNC empties" sh -c 'printf 0123456789 > tr && printf ab > tr && [ "$(cat tr)" = ab ] && [ $(stat -c %s tr) = 2 ]'
check "O_APPEND appends" sh -c 'printf ab > ap && printf cd >> ap && printf ef >> ap && [ "$(cat ap)" = abcdef ]'
check "on the server's disk" sh -c "[ \"\$(cat '$EXP/ap')\" = abcdef ]"

# ---- attributes ----
check "chmod" sh -c 'touch m && chmod 0640 m && [ $(stat -c %a m) = 640 ] && [ $(stat -c %a "'"$EXP"'/m") = 640 ]'
check "chown" sh -c 'touch o && chown 1234:2345 o && [ "$(stat -c %u:%g o)" = 1234:2345 ]'
check "truncate down and up" sh -c 'printf 0123456789 > t && truncate -s 4 t && [ "$(cat t)" = 0123 ] && truncate -s 8192 t && [ $(stat -c %s t) = 8192 ]'
check "utimensat (touch -d)" sh -c 'touch u && touch -m -d "2001-02-03 04:05:06.5 UTC" u && [ $(stat -c %Y u) = 981173106 ] && [ "$(stat -c %y u | cut -c21-23)" = 500 ]'
check "utimensat UTIME_NOW" sh -c 'touch -d @1000 n && touch n && [ $(stat -c %Y n) -gt 1000000000 ]'

# ---- links ----
check "hard link counts" sh -c 'echo x > hl && ln hl hl2 && [ $(stat -c %h hl) = 2 ] && [ $(stat -c %i hl) = $(stat -c %i hl2) ] && rm hl2 && [ $(stat -c %h hl) = 1 ]'
check "dangling symlink" sh -c 'ln -s nowhere dang && [ "$(readlink dang)" = nowhere ] && ! [ -e dang ] && [ -L dang ]'
check "relative symlink" sh -c 'mkdir -p sd/in && echo rel > sd/in/f && ln -s in/f sd/rl && [ "$(cat sd/rl)" = rel ]'

# ---- rename ----
check "rename over a file" sh -c 'echo a > ra && echo b > rb && mv -f ra rb && [ "$(cat rb)" = a ] && ! [ -e ra ]'
check "rename over an empty dir" sh -c 'mkdir rd1 rd2 && touch rd1/x && python3 -c "import os; os.rename(\"rd1\", \"rd2\")" && [ -e rd2/x ] && ! [ -e rd1 ]'
check_errno "rename a dir into itself: EINVAL" "Invalid argument" python3 -c 'import os; os.makedirs("self/sub"); os.rename("self", "self/sub/x")'
check_errno "rmdir non-empty: ENOTEMPTY" "not empty" rmdir sd

# ---- errors ----
LONG=$(printf 'n%.0s' $(seq 1 256))
check_errno "ENAMETOOLONG" "too long" touch "$LONG"
check_errno "ENOENT" "No such file" cat does-not-exist
check_errno "EEXIST (mkdir)" "exists" mkdir sd
check "EACCES as a non-owner" sh -c 'echo secret > priv && chmod 600 priv && ! setpriv --reuid=4242 --regid=4242 --clear-groups cat priv 2>/dev/null && setpriv --reuid=4242 --regid=4242 --clear-groups cat priv 2>&1 | grep -q "Permission denied"'
check "non-owner cannot write a 0644 file" sh -c 'echo keep > ro && chmod 644 ro && ! setpriv --reuid=4242 --regid=4242 --clear-groups sh -c "echo x > ro" 2>/dev/null && [ "$(cat ro)" = keep ]'
# The server runs each call as its AUTH_SYS caller: the new file is 4242's.
check "a non-owner creates files in a 1777 directory" sh -c 'mkdir -m 1777 pub && setpriv --reuid=4242 --regid=4243 --clear-groups sh -c "echo mine > pub/mine" && [ "$(cat "'"$EXP"'/pub/mine")" = mine ] && [ "$(stat -c %u:%g "'"$EXP"'/pub/mine")" = 4242:4243 ]'

# ---- mkfifo (MKNOD NF3FIFO); device nodes are refused by the server ----
check "mkfifo: a FIFO on the server's disk, mode kept" sh -c 'mkfifo -m 640 fifo && [ -p fifo ] && [ -p "'"$EXP"'/fifo" ] && [ "$(stat -c %a "'"$EXP"'/fifo")" = 640 ]'
check_errno "mknod of a device: the server's NOTSUPP as EOPNOTSUPP" "not supported" mknod dev c 1 3

# ---- data ----
check "sparse file: holes read as zeros" sh -c 'dd if=/dev/zero of=sp bs=1 count=0 seek=10M status=none && printf end | dd of=sp bs=1 seek=20971520 conv=notrunc status=none && [ $(stat -c %s sp) = 20971523 ] && [ "$(dd if=sp bs=1M count=20 status=none | tr -d "\\0" | wc -c)" = 0 ] && [ "$(tail -c 3 sp)" = end ]'
check "writes across wsize (64 KiB) boundaries" sh -c '
    head -c 300000 /dev/urandom > "'"$T"'/pat" &&
    for off in 1 65535 65536 131071 1000000; do
        dd if="'"$T"'/pat" of=wb bs=70001 count=3 seek=$off oflag=seek_bytes conv=notrunc status=none || exit 1
        cmp -n 210003 -i 0:$off "'"$T"'/pat" wb || exit 1
        cmp -n 210003 -i 0:$off "'"$T"'/pat" "'"$EXP"'/wb" || exit 1
    done'

# ---- readdir of many entries ----
check "readdir of $ENTRIES entries: each name once" sh -c '
    mkdir big && cd big && seq 1 '"$ENTRIES"' | sed "s/^/f/" | xargs touch && cd .. &&
    [ "$(ls big | wc -l)" = '"$ENTRIES"' ] && [ "$(ls big | sort | uniq -d | wc -l)" = 0 ] &&
    [ "$(ls -f big | grep -c "^f")" = '"$ENTRIES"' ]'
check "ls -l of the big directory (READDIRPLUS attributes)" sh -c '[ "$(ls -l big | grep -c "^-rw")" = '"$ENTRIES"' ]'

# ---- real programs ----
if command -v git >/dev/null; then
    check "git clone into the mount + git fsck" sh -c '
        cd "'"$T"'" && rm -rf repo && git init -q repo && cd repo &&
        for i in $(seq 1 40); do echo "line $i" > "file$i"; git add "file$i"; done &&
        git -c user.name=t -c user.email=t@t commit -qm one &&
        git clone -q "'"$T"'/repo" "'"$MNT"'/clone" && cd "'"$MNT"'/clone" && git fsck --strict 2>&1 &&
        [ "$(git rev-parse HEAD)" = "$(git -C "'"$T"'/repo" rev-parse HEAD)" ]'
else
    bad "git is not installed"
fi
check "tar -x then diff -r" sh -c '
    mkdir -p "'"$T"'/tree" && cd "'"$T"'/tree" &&
    for d in $(seq 1 20); do mkdir d$d; for f in $(seq 1 50); do echo "$d/$f" > d$d/f$f; done; done &&
    ln -s d1/f1 link && tar -cf "'"$T"'/tree.tar" . && mkdir "'"$MNT"'/untar" &&
    tar -xf "'"$T"'/tree.tar" -C "'"$MNT"'/untar" && diff -r "'"$T"'/tree" "'"$MNT"'/untar" &&
    diff -r "'"$T"'/tree" "'"$EXP"'/untar"'
check "cp ${FILE_MB} MiB + cmp + sha256 on the server's disk" sh -c '
    head -c '"$FILE_MB"'M /dev/urandom > "'"$T"'/big.src" && cp "'"$T"'/big.src" "'"$MNT"'/big.bin" &&
    cmp "'"$T"'/big.src" "'"$MNT"'/big.bin" &&
    [ "$(sha256sum < "'"$T"'/big.src")" = "$(sha256sum < "'"$EXP"'/big.bin")" ]'

# ---- --hard: the server is killed and restarted during a cp ----
check "hard mount: server restart during cp; cp completes, file identical" sh -c '
    cp "'"$T"'/big.src" "'"$MNT"'/hard.bin" & CP=$!
    sleep 0.3; kill -9 '"$NFSD_PID"'; sleep 1
    "'"$NFSD"'" --export "'"$EXP"'" --no-root-squash --rpcbind off --state-dir "'"$T"'/state" --listen 127.0.0.1:'"$PORT"' --tls required \
        --cert "'"$T"'/pki/server.pem" --key "'"$T"'/pki/server.key" --ca "'"$T"'/pki/ca.pem" >"'"$T"'/nfsd2.log" 2>&1 &
    echo $! > "'"$T"'/nfsd2.pid"
    i=0; while kill -0 $CP 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
    wait $CP || exit 1
    [ "$(sha256sum < "'"$T"'/big.src")" = "$(sha256sum < "'"$EXP"'/hard.bin")" ]'
[ -f "$T/nfsd2.pid" ] && NFSD_PID=$(cat "$T/nfsd2.pid")
check "the mount still works after the restart" sh -c 'echo after > after && [ "$(cat after)" = after ]'

echo "$fails failure(s)"
[ $fails = 0 ]
