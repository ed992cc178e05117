#!/bin/sh
# tests/mount_unmount.sh NFSD MOUNT CERTS - the three ways to unmount
# rpctls-mount, each clean: SIGTERM to rpctls-mount while a program holds a
# file open that it has written but neither closed nor fsynced (the data is
# COMMITted at the unmount), `umount MOUNTPOINT`, and `fusermount3 -u
# MOUNTPOINT`. Each time: the mount point leaves /proc/mounts, rpctls-mount
# exits 0, and the written data is on the server's disk. Also checks that
# large writes reach rpctls-mount by splice (--status; the first mount has
# --max-write 1020K, which libfuse splices without CAP_SYS_RESOURCE).
# Needs root, /dev/fuse and python3 (exit 77: skipped otherwise).
set -u
NFSD=$1 MOUNT=$2 CERTS=$3
. "$(dirname "$0")/mount_lib.sh"

lib_init mount-unmount python3
EXP=$T/exp0 MNT=$T/mnt
make_certs
start_nfsd 0
head -c 8M /dev/urandom > "$T/src"

# unmounted HOW LOG: rpctls-mount ($MPID) has exited with 0 and $MNT is no
# longer mounted.
unmounted() {
    if ! wait_exit "$MPID" 200; then
        bad "$1: rpctls-mount still runs 20 s later"
        return
    fi
    wait "$MPID"; rc=$?
    [ $rc = 0 ] && ok "$1: rpctls-mount exited 0" || bad "$1: rpctls-mount exited $rc: $(tail -3 "$2")"
    grep -q " $MNT " /proc/mounts && bad "$1: $MNT is still in /proc/mounts" || ok "$1: $MNT left /proc/mounts"
}

# ---- SIGTERM, a file open with written, uncommitted data ----
do_mount "$MNT" "$T/mount1.log" $TLS --max-write 1020K "$(url 0)"
# The writer writes 8 MiB in 1 MiB write(2)s, says so, and keeps the file
# open: no close and no fsync has COMMITted anything.
python3 -c '
import os, sys, time
src, dst, flag = sys.argv[1:4]
data = open(src, "rb").read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(0, len(data), 1 << 20):
    assert os.write(fd, data[i:i + (1 << 20)]) == 1 << 20
open(flag, "w").write("written\n")
time.sleep(600)
' "$T/src" "$MNT/open.bin" "$T/writer.flag" &
PIDS="$PIDS $!"
wait_for "$T/writer.flag" written "the writer did not write"
# The 1 MiB WRITEs came by splice: libfuse handed them over as its pipe.
check "large writes reach rpctls-mount by splice (--status)" sh -c '
    "'"$MOUNT"'" --status "'"$MNT"'" > "'"$T"'/status" && cat "'"$T"'/status" &&
    grep -q "^fuse max_write=1044480 splice=on writes_from_pipe=[1-9]" "'"$T"'/status" &&
    [ $(sed -n "s/.* bytes_from_pipe=\([0-9]*\) .*/\1/p" "'"$T"'/status") -ge 8388608 ]'
kill -TERM "$MPID"
unmounted "SIGTERM" "$T/mount1.log"
check "SIGTERM: the open file's data was committed at the unmount" \
    grep -q "at unmount: committed 8388608 bytes of 1 open file$" "$T/mount1.log"
check "SIGTERM: the server has every byte written before the signal" cmp "$T/src" "$EXP/open.bin"

# ---- umount MOUNTPOINT ----
do_mount "$MNT" "$T/mount2.log" $TLS "$(url 0)"
check "cp into the mount" cp "$T/src" "$MNT/umount.bin"
check "umount MOUNTPOINT" umount "$MNT"
unmounted "umount" "$T/mount2.log"
check "umount: the server has the file" cmp "$T/src" "$EXP/umount.bin"

# ---- fusermount3 -u MOUNTPOINT ----
do_mount "$MNT" "$T/mount3.log" $TLS "$(url 0)"
check "cp into the mount" cp "$T/src" "$MNT/fusermount.bin"
check "fusermount3 -u MOUNTPOINT" fusermount3 -u "$MNT"
unmounted "fusermount3 -u" "$T/mount3.log"
check "fusermount3 -u: the server has the file" cmp "$T/src" "$EXP/fusermount.bin"

finish
