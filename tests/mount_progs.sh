#!/bin/sh
# tests/mount_progs.sh NFSD MOUNT CERTS - real programs through rpctls-mount
# over RPC-with-TLS to rpctls-nfsd (rsync -a into and out of the mount; fio
# sequential and random writes and reads with --verify=crc32c, several
# jobs), then a --soft mount with the server gone: EIO, and the mount works
# again once the server is back.
# Needs root, /dev/fuse, fio and rsync (exit 77: skipped otherwise).
# Sizes: RPCTLS_TEST_FIO_MB (per job, default 8).
set -u
NFSD=$1 MOUNT=$2 CERTS=$3
FIO_MB=${RPCTLS_TEST_FIO_MB:-8}
. "$(dirname "$0")/mount_lib.sh"

lib_init mount-progs fio rsync
EXP=$T/exp0 MNT=$T/mnt
make_certs
start_nfsd 0
# --soft: a call fails after timeo x (retrans + 1) = 1 s without an answer.
do_mount "$MNT" "$T/mount.log" $TLS --attr-timeout 0 --entry-timeout 0 --soft --timeo 500 --retrans 1 "$(url 0)"

# ---- the readahead window: 4 x rsize (1 MiB), set on the mount's device ----
ra_of() { awk -v m="$1" '$5 == m && $0 ~ / - fuse/ {d=$3} END {print d}' /proc/self/mountinfo; }
check "the mount's readahead is 4 MiB (read_ahead_kb 4096, not the kernel's 128)" sh -c '
    [ "$(cat /sys/class/bdi/'"$(ra_of "$MNT")"'/read_ahead_kb)" = 4096 ]'

# ---- rsync -a into and out of the mount ----
mkdir -p "$T/src/d1/d2" && for i in $(seq 1 200); do echo "rsync $i" > "$T/src/d1/f$i"; done
head -c 3M /dev/urandom > "$T/src/d1/d2/bin" && ln -s d1/f1 "$T/src/link" && chmod 640 "$T/src/d1/f7"
touch -d @1234567890 "$T/src/d1/f9"
check "rsync -a into the mount" rsync -a "$T/src/" "$MNT/rs/"
check "  the server's disk has the tree (contents, modes, mtimes, symlink)" sh -c '
    diff -r "'"$T"'/src" "'"$EXP"'/rs" && [ $(stat -c %a "'"$EXP"'/rs/d1/f7") = 640 ] &&
    [ $(stat -c %Y "'"$EXP"'/rs/d1/f9") = 1234567890 ] && [ "$(readlink "'"$EXP"'/rs/link")" = d1/f1 ]'
check "rsync -a again: nothing to send (attributes compare equal)" sh -c '
    [ "$(rsync -ai "'"$T"'/src/" "'"$MNT"'/rs/" | wc -l)" = 0 ]'
check "rsync -a out of the mount" sh -c 'rsync -a "'"$MNT"'/rs/" "'"$T"'/back/" && diff -r "'"$T"'/src" "'"$T"'/back" &&
    [ $(stat -c %Y "'"$T"'/back/d1/f9") = 1234567890 ]'

# ---- fio with verify: zero errors ----
FIO="fio --directory=$MNT --size=${FIO_MB}M --numjobs=3 --group_reporting --verify=crc32c --ioengine=psync"
check "fio sequential write + verify (3 jobs, 1M blocks)" sh -c "$FIO --name=seq --rw=write --bs=1M --do_verify=1 --output=$T/fio1 && grep -q 'err= 0' $T/fio1"
check "fio random write + verify (3 jobs, 4k..128k blocks)" sh -c "$FIO --name=rnd --rw=randwrite --bsrange=4k-128k --do_verify=1 --output=$T/fio2 && grep -q 'err= 0' $T/fio2"
check "fio read-back of the randomly written files (verify_only, 3 jobs)" sh -c "$FIO --name=rnd --rw=randwrite --bsrange=4k-128k --verify_only --output=$T/fio3 && grep -q 'err= 0' $T/fio3"
check "fio random read + write mix with verify (3 jobs)" sh -c "$FIO --name=mix --rw=randrw --bs=16k --verify=crc32c --do_verify=1 --output=$T/fio4 && grep -q 'err= 0' $T/fio4"

# ---- --soft: the server gone ----
echo kept > "$MNT/kept"
kill -9 "$NFSD0"; wait "$NFSD0" 2>/dev/null
check "--soft, server gone: stat fails with EIO" sh -c '! stat "'"$MNT"'/kept" 2>"'"$T"'/e1" && grep -q "Input/output error" "'"$T"'/e1"'
check "--soft, server gone: a write fails with EIO at close" sh -c '! sh -c "echo x > \"'"$MNT"'/new\"" 2>"'"$T"'/e2" && grep -q "Input/output error" "'"$T"'/e2"'
check "the failures are logged" grep -q "GETATTR\|LOOKUP" "$T/mount.log"
start_nfsd 0 "$PORT0"
check "--soft, server back: the mount works again" sh -c '
    [ "$(cat "'"$MNT"'/kept")" = kept ] && echo again > "'"$MNT"'/again" && [ "$(cat "'"$EXP"'/again")" = again ]'

finish
