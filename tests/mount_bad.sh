#!/bin/sh
# tests/mount_bad.sh HOSTILE_NFSD MOUNT - bad input: rpctls-mount over a
# hostile NFSv3 server (tests/hostile_nfsd.c, plain TCP, MOUNT on the NFS
# port). For each case: the exact errno the program sees, one rpctls-mount
# log line naming the problem, the mount still works (a good read and a
# good listing right after), and nothing wrong is written or delivered.
# Needs root and /dev/fuse (exit 77: skipped otherwise).
set -u
HOSTILE=$1 MOUNT=$2
. "$(dirname "$0")/mount_lib.sh"

lib_init mount-bad
MNT=$T/mnt
mkdir -p "$MNT" "$T/dump"
CHECK_TIMEOUT=20 # every check is bounded: a hang is a failure, not a stuck test
check_log() { # check_log NAME PATTERN: rpctls-mount logged a line matching PATTERN
    if grep "^rpctls-mount: " "$T/mount.log" | grep -q -- "$2"; then ok "$1: logged"
    else bad "$1: no rpctls-mount line matching '$2' in the log: $(tail -5 "$T/mount.log")"; fi
}
GOOD=$T/good.expected
awk 'BEGIN { for (i = 0; i < 5000; i++) printf "%c", 97 + i % 26 }' >"$GOOD"
survives() { # survives CASE: the mount is alive and good operations work
    if ! kill -0 "$MPID" 2>/dev/null || ! grep -q " $MNT fuse" /proc/mounts; then
        bad "$1: the mount died"; cat "$T/mount.log"; exit 1
    fi
    check "$1: then good is read whole" cmp "$MNT/good" "$GOOD"
    check "$1: then gooddir lists x y" sh -c "[ \"\$(ls '$MNT/gooddir' | tr '\n' ' ')\" = 'x y ' ]"
}

"$HOSTILE" --dump "$T/dump" >"$T/srv.log" 2>&1 &
PIDS="$PIDS $!"
wait_for "$T/srv.log" "listening on" "hostile_nfsd did not start"
PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/srv.log" | head -1)
do_mount "$MNT" "$T/mount.log" --no-tls --attr-timeout 0 --entry-timeout 0 --timeo 5000 \
    "nfs://127.0.0.1:$PORT/bad?mountport=$PORT"
cd "$MNT" || { echo "FAIL: cannot enter the mount"; exit 1; }

# ---- honest objects first ----
check "good reads back exactly its 5000 bytes" cmp "$MNT/good" "$GOOD"
check "the root lists every case by name" sh -c "ls '$MNT' | grep -q '^badtype\$' && ls '$MNT' | grep -q '^cookieloop\$'"
survives "start"

# ---- garbage attributes: EIO, nothing cached (a second try asks again) ----
for c in badtype hugesize nlink0; do
    check_errno "$c: stat is EIO" "Input/output error" stat "$MNT/$c"
    check_errno "$c: stat again is EIO (not cached)" "Input/output error" stat "$MNT/$c"
done
check_log badtype "LOOKUP badtype: garbage attributes refused (type 9 is not an NFSv3 file type)"
check_log hugesize "LOOKUP hugesize: garbage attributes refused (size 9223372036854775809 is past 2^63 - 1)"
check_log nlink0 "LOOKUP nlink0: garbage attributes refused (nlink 0 for an object that has a name)"
check "a READDIRPLUS entry with garbage attributes keeps its name only" sh -c "ls -f '$MNT' | grep -q '^hugesize\$'"
check_log "readdirplus garbage" "READDIRPLUS entry badtype: garbage attributes refused"
check_errno "badgetattr: open (GETATTR) is EIO" "Input/output error" cat "$MNT/badgetattr"
check_log badgetattr "GETATTR.* badgetattr: garbage attributes refused (type 0 is not"
survives "garbage attributes"

# ---- names in READDIRPLUS ----
check_errno "longname: a 300-byte name is ENAMETOOLONG" "File name too long" ls "$MNT/longname"
check_log longname "name longer than 255 bytes"
check_errno "slashname: a name with '/' is EIO" "Input/output error" ls "$MNT/slashname"
check_log slashname "the name \"a/b\" (a '/' in a file name)"
check_errno "nulname: a name with NUL is EIO" "Input/output error" ls "$MNT/nulname"
check_log nulname "a file name containing a NUL byte"
survives "names"

# ---- READDIRPLUS cookie loop: ELOOP (as Linux), bounded ----
check_errno "cookieloop: ELOOP" "Too many levels of symbolic links" ls "$MNT/cookieloop"
check_log cookieloop "cookie 1 sent twice (a directory cookie loop)"
n=$(grep -c "CALL READDIRPLUS cookieloop" "$T/srv.log")
[ "$n" -le 3 ] && ok "cookieloop: the listing stopped after $n READDIRPLUS calls" ||
    bad "cookieloop: $n READDIRPLUS calls"
survives "cookie loop"

# ---- a READ reply longer than asked: EIO, not one extra byte delivered ----
check_errno "longread: read is EIO" "Input/output error" cat "$MNT/longread"
timeout -k 2 20 cat "$MNT/longread" >"$T/lr" 2>/dev/null
[ ! -s "$T/lr" ] && ok "longread: nothing delivered" || bad "longread: $(wc -c <"$T/lr") bytes delivered"
check_log longread "bytes where .* were asked for"
check "longread: stat still says 100 bytes" sh -c "[ \$(stat -c %s '$MNT/longread') = 100 ]"
survives "long READ"

# ---- a WRITE reply claiming more than sent: EIO at fsync, data as sent ----
printf abc >"$T/abc"
check_errno "wlie: fsync is EIO" "Input/output error" dd if="$T/abc" of="$MNT/wlie" bs=3 conv=fsync status=none
check_log wlie "claims 103 bytes written, more than were sent"
check "wlie: the server stored exactly the 3 bytes sent" cmp "$T/dump/wlie" "$T/abc"
check "wlie: reads back the 3 bytes" sh -c "[ \"\$(cat '$MNT/wlie')\" = abc ]"
survives "lying WRITE"

# ---- a good write still works ----
printf hello >"$T/hello"
check "good: write + fsync" dd if="$T/hello" of="$MNT/good" bs=5 conv=fsync,notrunc status=none
check "good: the server has it" sh -c "head -c 5 '$T/dump/good' | cmp - '$T/hello'"
check "the mount is still mounted" grep -q " $MNT fuse" /proc/mounts

cd /
fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"
wait_exit "$MPID" 50 && ok "unmounted" || bad "rpctls-mount did not exit at unmount"
finish
