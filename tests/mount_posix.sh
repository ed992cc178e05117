#!/bin/sh
# tests/mount_posix.sh NFSD MOUNT CERTS - POSIX behaviour through rpctls-mount
# over RPC-with-TLS to rpctls-nfsd, then real programs (git clone + fsck,
# tar -x + diff -r, cp + cmp + sha256sum on the server's disk) and a --hard
# server restart during a cp.
# Needs root and /dev/fuse (exit 77: skipped otherwise). Sizes:
# RPCTLS_TEST_DIR_ENTRIES (default 10000), RPCTLS_TEST_FILE_MB (the cp + cmp
# + sha256 file; default 64, 1024 in the plain build).
set -u
NFSD=$1 MOUNT=$2 CERTS=$3
ENTRIES=${RPCTLS_TEST_DIR_ENTRIES:-10000}
FILE_MB=${RPCTLS_TEST_FILE_MB:-64}
. "$(dirname "$0")/mount_lib.sh"

lib_init mount-posix
EXP=$T/exp0 MNT=$T/mnt
make_certs
# --no-root-squash (start_nfsd): this battery runs as root (uid 0 reaches the
# server as uid 0, as from a kernel client of a no_root_squash export).
start_nfsd 0
# --max-write 1020K: libfuse hands written data over by splice (its pipe fits
# a whole request without CAP_SYS_RESOURCE), so the battery runs that path.
do_mount "$MNT" "$T/mount.log" -o allow_other $TLS --max-write 1020K \
    --attr-timeout 0 --entry-timeout 0 --wsize 64K --rsize 64K --timeo 2000 "$(url 0)"
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

check "the battery's writes came by splice (--status)" sh -c '
    "'"$MOUNT"'" --status "'"$MNT"'" > "'"$T"'/status"; grep "^fuse " "'"$T"'/status" &&
    grep -q "^fuse max_write=1044480 splice=on writes_from_pipe=[1-9]" "'"$T"'/status"'

# ---- the rest through a second mount, as a user mounts: 1 MiB READs and
# WRITEs, names and attributes cached (60 s, so that ls -l lives on what
# READDIRPLUS handed to the kernel) ----
MNT2=$T/mnt2
cd /
do_mount "$MNT2" "$T/mount2.log" $TLS --attr-timeout 60 --entry-timeout 60 --timeo 2000 "$(url 0)"
cd "$MNT2" || { echo "FAIL: cannot enter the mount"; cat "$T/mount2.log"; exit 1; }
# calls MOUNTPOINT: the primary's RPC calls so far (--status adds a GETATTR).
calls() { "$MOUNT" --status "$1" | sed -n 's/^  rpc calls=\([0-9]*\) .*/\1/p' | head -1; }

# ---- readdir of many entries (made on the server's disk: this mount has
# neither names nor attributes of them cached) ----
mkdir "$EXP/big" && (cd "$EXP/big" && seq 1 "$ENTRIES" | sed "s/^/f/" | xargs touch) || bad "cannot make $EXP/big"
check "readdir of $ENTRIES entries: each name once" sh -c '
    [ "$(ls big | wc -l)" = '"$ENTRIES"' ] && [ "$(ls big | sort | uniq -d | wc -l)" = 0 ] &&
    [ "$(ls -f big | grep -c "^f")" = '"$ENTRIES"' ]'
before=$(calls "$MNT2")
check "ls -l of the big directory (READDIRPLUS attributes)" sh -c '[ "$(ls -l big | grep -c "^-rw")" = '"$ENTRIES"' ]'
after=$(calls "$MNT2")
[ -n "$before" ] && [ -n "$after" ] && [ $((after - before)) -lt 100 ] &&
    ok "ls -l: $((after - before)) RPC calls for $ENTRIES entries (no LOOKUP or GETATTR each)" ||
    bad "ls -l: RPC calls before '$before', after '$after'"

# ---- real programs ----
if command -v git >/dev/null; then
    check "git clone into the mount + git fsck" sh -c '
        cd "'"$T"'" && rm -rf repo && git init -q repo && cd repo &&
        for i in $(seq 1 40); do echo "line $i" > "file$i"; git add "file$i"; done &&
        git -c user.name=t -c user.email=t@t commit -qm one &&
        git clone -q "'"$T"'/repo" "'"$MNT2"'/clone" && cd "'"$MNT2"'/clone" && git fsck --strict 2>&1 &&
        [ "$(git rev-parse HEAD)" = "$(git -C "'"$T"'/repo" rev-parse HEAD)" ]'
else
    bad "git is not installed"
fi
check "tar -x of 3,000 files then diff -r" sh -c '
    mkdir -p "'"$T"'/tree" && cd "'"$T"'/tree" &&
    for d in $(seq 1 30); do mkdir d$d; for f in $(seq 1 100); do echo "$d/$f" > d$d/f$f; done; done &&
    ln -s d1/f1 link && tar -cf "'"$T"'/tree.tar" . && mkdir "'"$MNT2"'/untar" &&
    tar -xf "'"$T"'/tree.tar" -C "'"$MNT2"'/untar" && diff -r "'"$T"'/tree" "'"$MNT2"'/untar" &&
    diff -r "'"$T"'/tree" "'"$EXP"'/untar"'
# One cp, one cmp through the mount (a fresh open: the kernel's cache is
# dropped, the bytes come from the server), the source's sha256 taken while
# it is made, the server's from its disk.
check "cp ${FILE_MB} MiB + cmp + sha256 on the server's disk" sh -c '
    head -c '"$FILE_MB"'M /dev/urandom | tee "'"$T"'/big.src" | sha256sum > "'"$T"'/big.sha" &&
    cp "'"$T"'/big.src" "'"$MNT2"'/big.bin" && cmp "'"$T"'/big.src" "'"$MNT2"'/big.bin" &&
    [ "$(cat "'"$T"'/big.sha")" = "$(sha256sum < "'"$EXP"'/big.bin")" ]'
rm -f "$T/big.src"

# ---- --hard: the server is killed and restarted during a cp ----
# cp copies from a FIFO that gets the first half of the file, then the rest
# only after the server has been killed: the kill lands in the middle of the
# copy however fast the machine is, with WRITEs in flight or uncommitted.
# The second half waits in the hard mount until the server is back.
HARD_MB=32
hard_restart() {
    head -c ${HARD_MB}M /dev/urandom > "$T/hard.src" && mkfifo "$T/hard.fifo" || return 1
    cp "$T/hard.fifo" "$MNT2/hard.bin" & CP=$!
    PIDS="$PIDS $CP"
    exec 7<>"$T/hard.fifo" # read-write: does not wait for cp to open it
    timeout 120 head -c $((HARD_MB * 524288)) "$T/hard.src" >&7 || return 1
    kill -9 "$NFSD0"; wait "$NFSD0" 2>/dev/null
    mv "$T/nfsd0.log" "$T/nfsd0-killed.log"
    timeout 120 tail -c +$((HARD_MB * 524288 + 1)) "$T/hard.src" >&7 & REST=$!
    PIDS="$PIDS $REST"
    exec 7>&- # the FIFO ends when the rest is written
    sleep 1
    start_nfsd 0 "$PORT0" # same port, same state dir
    wait_exit $REST 1200 && wait $REST && wait_exit $CP 1200 && wait $CP || return 1
    cmp "$T/hard.src" "$EXP/hard.bin"
}
check "hard mount: server restart during cp; cp completes, file identical" hard_restart
check "both mounts still work after the restart" sh -c '
    echo after > after && [ "$(cat after)" = after ] && [ "$(cat "'"$MNT"'/after")" = after ]'

finish
