#!/bin/sh
# bench/mount.sh BUILD_DIR - rpctls-mount against rpctls-cp, same file, same
# servers, one run: dd bs=1M into the mount and back out (one server), dd
# into a mount with 2 mirrors, and rpctls-cp write / read-back / mirrored
# write. Over TLS, servers on loopback, exports in /dev/shm.
# Size: RPCTLS_BENCH_MB (default 1024). Needs root and /dev/fuse.
# (Interim: rpctls-bench mount, a C command in tools/bench/, is not written.)
set -u
B=$1
MB=${RPCTLS_BENCH_MB:-1024}
T=$(mktemp -d /dev/shm/bench-mount.XXXXXX)
PIDS= MOUNTS=
cleanup() {
    cd /
    for m in $MOUNTS; do fusermount3 -u "$m" 2>/dev/null; done
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    sleep 0.5; rm -rf "$T"
}
trap cleanup EXIT INT TERM
"$B/rpctls-certs" "$T/pki" >/dev/null || exit 1
TLS="--ca $T/pki/ca.pem --cert $T/pki/client.pem --key $T/pki/client.key"
for n in 0 1 2; do
    mkdir -p "$T/exp$n" "$T/st$n"
    "$B/rpctls-nfsd" --export "$T/exp$n" --no-root-squash --rpcbind off --state-dir "$T/st$n" --listen 127.0.0.1:0 --tls required \
        --cert "$T/pki/server.pem" --key "$T/pki/server.key" --ca "$T/pki/ca.pem" >"$T/nfsd$n.log" 2>&1 &
    PIDS="$PIDS $!"
done
for n in 0 1 2; do
    i=0; while ! grep -q "listening on" "$T/nfsd$n.log"; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done
    eval P$n=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/nfsd$n.log")
done
U0=nfs://127.0.0.1:$P0$T/exp0 U1=nfs://127.0.0.1:$P1$T/exp1 U2=nfs://127.0.0.1:$P2$T/exp2
head -c ${MB}M /dev/urandom > "$T/src"
now() { date +%s.%N; }
row() { # row NAME SECONDS
    echo "$1 $2" | awk -v mb=$MB '{ printf "%-34s %7.2f s %8.1f MB/s\n", $1, $2, mb * 1.048576 / $2 }'
    echo "$1 $2" >> "$T/rows"
}
mnt() { # mnt DIR ARGS...: mount and wait
    d=$1; shift; mkdir -p "$d"
    "$B/rpctls-mount" -f $TLS "$@" "$d" >>"$T/mount.log" 2>&1 &
    PIDS="$PIDS $!"; MOUNTS="$MOUNTS $d"
    i=0; while ! grep -q " $d fuse" /proc/mounts; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done
}
t=$(now); "$B/rpctls-cp" $TLS "$T/src" "$U0/cp1" >/dev/null || exit 1; row rpctls-cp-write $(echo "$(now) - $t" | bc)
t=$(now); "$B/rpctls-cp" $TLS "$U0/cp1" "$T/back" >/dev/null || exit 1; row rpctls-cp-read $(echo "$(now) - $t" | bc)
rm -f "$T/back"
t=$(now); "$B/rpctls-cp" $TLS "$T/src" "$U0/cp3" "$U1/cp3" "$U2/cp3" >/dev/null || exit 1; row rpctls-cp-write-2-mirrors $(echo "$(now) - $t" | bc)
mnt "$T/m1" "$U0"
t=$(now); dd if="$T/src" of="$T/m1/dd1" bs=1M conv=fsync status=none || exit 1; row mount-dd-write $(echo "$(now) - $t" | bc)
fusermount3 -u "$T/m1"; sleep 0.3
mnt "$T/m2" "$U0"   # a fresh mount: nothing in the kernel's page cache
t=$(now); dd if="$T/m2/dd1" of=/dev/null bs=1M status=none || exit 1; row mount-dd-read $(echo "$(now) - $t" | bc)
fusermount3 -u "$T/m2"; sleep 0.3
mnt "$T/m3" --mirror "$U1" --mirror "$U2" "$U0"
t=$(now); dd if="$T/src" of="$T/m3/dd3" bs=1M conv=fsync status=none || exit 1; row mount-dd-write-2-mirrors $(echo "$(now) - $t" | bc)
"$B/rpctls-mount" --status "$T/m3" | grep -E "^(primary|mirror)|tls " 
cmp "$T/src" "$T/exp2/dd3" && echo "mirror 2 identical"
awk '{ s[$1] = $2 } END {
    printf "ratios: write %.2f, read %.2f, mirrored write %.2f (mount / rpctls-cp; target >= 0.7)\n",
        s["rpctls-cp-write"] / s["mount-dd-write"], s["rpctls-cp-read"] / s["mount-dd-read"],
        s["rpctls-cp-write-2-mirrors"] / s["mount-dd-write-2-mirrors"] }' "$T/rows"
