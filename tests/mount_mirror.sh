#!/bin/sh
# tests/mount_mirror.sh NFSD MOUNT CERTS - rpctls-mount with 2 mirrors, every
# server an rpctls-nfsd over TLS: a tree of files and a big file end up
# identical on the three servers' disks (diff -r), including objects that
# existed before the mount (mirror handles found by path); the record-layer
# counters in --status show out-of-place sealing and no copies; killing a
# mirror during a cp marks it failed in --status while the cp completes and
# the other servers have the file; --mirror-strict turns that into EIO at
# fsync; with a --soft primary gone, reads come from the first mirror.
# Needs root and /dev/fuse (exit 77: skipped otherwise). Size:
# RPCTLS_TEST_FILE_MB (default 64; 256 in the plain build, the issue's size).
set -u
NFSD=$1 MOUNT=$2 CERTS=$3
FILE_MB=${RPCTLS_TEST_FILE_MB:-64}
. "$(dirname "$0")/mount_lib.sh"

lib_init mount-mirror
MNT=$T/mnt MNT2=$T/mnt2
make_certs

# counter SERVER-INDEX NAME: a counter of --status for one server.
counter() {
    "$MOUNT" --status "$MNT" > "$T/status" 2>&1
    awk -v s="$1" -v k="$2" '$2 == s && ($1 == "primary" || $1 == "mirror") { on = 1; next }
        /^[a-z]/ { on = 0 } on { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$T/status"
}

start_nfsd 0; start_nfsd 1; start_nfsd 2
# Objects that exist before the mount, identical on every server: their
# mirror handles are found by path.
for n in 0 1 2; do mkdir -p "$T/exp$n/pre/dir" && printf 'old\n' > "$T/exp$n/pre/dir/file"; done

# --max-write 1020K: written data by splice (see mount_posix.sh); the other
# mounts below take it from libfuse's buffer.
do_mount "$MNT" "$T/mount.log" $TLS --max-write 1020K --attr-timeout 0 --entry-timeout 0 --wsize 256K --timeo 2000 --retrans 2 \
    --mirror "$(url 1)" --mirror "$(url 2)" "$(url 0)"
MAIN_PID=$MPID
grep -q "mirror 2: nfs://.* TLS (" "$T/mount.log" && ok "mounted over TLS with 2 mirrors" || bad "mirrors not over TLS: $(cat "$T/mount.log")"
cd "$MNT" || exit 1

check "--status: 3 servers, all ok, exit 0" sh -c '"'"$MOUNT"'" --status "'"$MNT"'" > "'"$T"'/st" && [ $(grep -c "^primary 0 .* ok$" "'"$T"'/st") = 1 ] && [ $(grep -c "^mirror [12] .* ok$" "'"$T"'/st") = 2 ]'

# ---- a tree of files: every kind of change ----
check "a tree of files through the mount" sh -c '
    mkdir -p a/b/c && for i in $(seq 1 30); do echo "file $i" > a/b/f$i; done &&
    echo deep > a/b/c/deep && ln -s b/f1 a/sym && ln a/b/f2 a/hard &&
    mv a/b/f3 a/moved && mv a/b/f4 a/b/c/ && rm a/b/f5 && mkdir gone && rmdir gone &&
    chmod 600 a/b/f6 && truncate -s 3 a/b/f7 && printf tail >> a/b/f8 &&
    touch -m -d @1000000000 a/b/f9 && echo new > a/b/f10 && mkdir -p a/x && mv a/x a/y &&
    echo appended >> pre/dir/file && echo fresh > pre/dir/new && mv pre/dir pre/dir2 && echo later > pre/dir2/later'
check "the ${FILE_MB} MiB file through the mount" sh -c '
    head -c '"$FILE_MB"'M /dev/urandom > "'"$T"'/big.src" && cp "'"$T"'/big.src" big.bin && cmp "'"$T"'/big.src" big.bin'
check "diff -r primary / mirror 1 / mirror 2: identical" sh -c '
    diff -r --no-dereference "'"$T"'/exp0" "'"$T"'/exp1" && diff -r --no-dereference "'"$T"'/exp1" "'"$T"'/exp2"'
check "on every disk: sha256 of the big file, modes, links, the path-resolved objects" sh -c '
    want=$(sha256sum < "'"$T"'/big.src") && for n in 0 1 2; do e="'"$T"'/exp$n";
        [ "$(sha256sum < $e/big.bin)" = "$want" ] && [ $(stat -c %a $e/a/b/f6) = 600 ] &&
        [ $(stat -c %h $e/a/hard) = 2 ] && [ "$(readlink $e/a/sym)" = b/f1 ] && [ $(stat -c %Y $e/a/b/f9) = 1000000000 ] &&
        [ "$(cat $e/pre/dir2/file)" = "$(printf "old\nappended")" ] && [ "$(cat $e/pre/dir2/later)" = later ] || exit 1; done'

# ---- the record layer: written pages shared across servers, sealed out of place, never copied ----
for s in 0 1 2; do
    oop=$(counter $s tx_bytes_outofplace) cpy=$(counter $s tx_records_copied)
    if [ -n "$oop" ] && [ "$oop" -ge $((FILE_MB * 1048576)) ] && [ "$cpy" = 0 ]; then
        ok "server $s: $oop bytes sealed out of place, 0 records copied"
    else
        bad "server $s: out of place '$oop' (want >= ${FILE_MB} MiB), copied '$cpy': $(cat "$T/status")"
    fi
done
check "the written data came by splice (--status)" sh -c '
    grep "^fuse " "'"$T"'/status" && grep -q "^fuse max_write=1044480 splice=on writes_from_pipe=[1-9]" "'"$T"'/status"'

# ---- a mirror killed during a cp: given up, the cp completes, the others have the file ----
# The copy writes the first half, waits until mirror 2 is dead, then
# writes the rest through the same open file: the kill lands mid-copy
# however fast the machine is.
check "mirror 2 killed during a copy: the copy completes" sh -c '
    half=$(('"$FILE_MB"' / 2))
    { dd if="'"$T"'/big.src" bs=1M count=$half status=none
      i=0; while kill -0 '"$NFSD2"' 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
      dd if="'"$T"'/big.src" bs=1M skip=$half status=none; } > killed.bin & CP=$!
    i=0; while [ $(stat -c %s "'"$T"'/exp0/killed.bin" 2>/dev/null || echo 0) -lt 1048576 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    kill -9 '"$NFSD2"'
    i=0; while kill -0 $CP 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
    wait $CP && cmp "'"$T"'/big.src" killed.bin'
check "--status: mirror 2 failed (exit 3), the others ok" sh -c '
    "'"$MOUNT"'" --status "'"$MNT"'" > "'"$T"'/st"; [ $? = 3 ] &&
    grep -q "^mirror 2 .* failed: " "'"$T"'/st" && grep -q "^mirror 1 .* ok$" "'"$T"'/st" && grep -q "^primary 0 .* ok$" "'"$T"'/st"'
check "the failure is logged by name" grep -q "mirror nfs://127.0.0.1:$PORT2$T/exp2 failed" "$T/mount.log"
check "primary and mirror 1 have the file" sh -c '
    want=$(sha256sum < "'"$T"'/big.src") && [ "$(sha256sum < "'"$T"'/exp0/killed.bin")" = "$want" ] &&
    [ "$(sha256sum < "'"$T"'/exp1/killed.bin")" = "$want" ]'
check "the mount goes on without mirror 2 (writes, fsync without --mirror-strict)" sh -c '
    echo after > after && dd if=/dev/zero of=synced bs=64k count=4 conv=fsync status=none &&
    [ "$(cat "'"$T"'/exp1/after")" = after ] && diff -r "'"$T"'/exp0" "'"$T"'/exp1"'

# ---- --mirror-strict: fsync is EIO once a mirror has failed ----
start_nfsd 2
cd /
do_mount "$MNT2" "$T/mount2.log" $TLS --attr-timeout 0 --entry-timeout 0 --mirror-strict --timeo 1000 --retrans 1 --mirror "$(url 2)" "$(url 1)"
check "--mirror-strict: fsync succeeds while every mirror is healthy" dd if=/dev/zero of="$MNT2/s1" bs=64k count=2 conv=fsync status=none
kill -9 $NFSD2
check "--mirror-strict: fsync returns EIO once the mirror has failed" sh -c '
    ! dd if=/dev/zero of="'"$MNT2"'/s2" bs=64k count=2 conv=fsync status=none 2>"'"$T"'/dd.err" &&
    grep -q "Input/output error" "'"$T"'/dd.err" && [ "$(stat -c %s "'"$T"'/exp1/s2")" = 131072 ]'
fusermount3 -u "$MNT2"

# ---- reads from the first healthy mirror when a --soft primary is gone ----
start_nfsd 2
printf 'from the mirror\n' > "$T/exp2/only-here"   # what a read from mirror 2 returns
printf 'from the primary\n' > "$T/exp1/only-here"
do_mount "$MNT2" "$T/mount3.log" $TLS --attr-timeout 0 --entry-timeout 0 --soft --timeo 500 --retrans 1 --mirror "$(url 2)" "$(url 1)"
check "soft primary up: reads from the primary" sh -c '[ "$(cat "'"$MNT2"'/only-here")" = "from the primary" ]'
kill -9 $NFSD1
check "soft primary gone: reads from mirror 1, new files go there" sh -c '
    [ "$(cat "'"$MNT2"'/only-here")" = "from the mirror" ] &&
    echo failover > "'"$MNT2"'/fo" && [ "$(cat "'"$T"'/exp2/fo")" = failover ]'
fusermount3 -u "$MNT2"

cd /
fusermount3 -u "$MNT"
wait_exit $MAIN_PID
check "unmount log: counters per server, out of place, none copied" sh -c '
    [ $(grep -c "TLS records sealed out of place [1-9][0-9]* .*copied 0 (0 bytes)" "'"$T"'/mount.log") = 3 ]'

finish
