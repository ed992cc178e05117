#!/bin/sh
# tests/nfs3_ganesha.sh CP - rpctls-cp against the Debian nfs-ganesha server
# (packages nfs-ganesha, nfs-ganesha-vfs): NFSv3 over plain TCP, MOUNT on
# its own port, both found through rpcbind; needs root (ganesha changes
# capabilities and credentials), loopback only.
#
#   1. rpcbind: the running one when `rpcinfo -p 127.0.0.1` answers, else
#      `rpcbind -f` started here (not -w: a warm start would bring back the
#      registrations saved by an earlier rpcbind) and stopped at the end.
#      Then nothing else may be NFS here: the test fails (it does not skip)
#      when something already listens on 127.0.0.1:2049 (the URL without a
#      port tries 2049 first, so rpctls-cp would talk to that server) or
#      when rpcbind already has an NFS (100003) entry (the portmapper's NFS
#      port must be ganesha's). Both are what a system nfs-ganesha.service
#      does; scripts/deps stops it when it installs the package.
#   2. ganesha.nfsd -F with a generated config: NFSv3 only, NFS_Port and
#      MNT_Port on free loopback ports (never 2049), Bind_addr 127.0.0.1, a
#      VFS export of a temporary directory (RW, no root squash, TCP), NLM
#      and RQUOTA off, recovery directory and log in the temporary directory.
#      Wait until rpcinfo lists 100003 and 100005 on those ports.
#   3. rpctls-cp --no-tls writes 64 MiB to nfs://127.0.0.1/EXPORT/file with
#      NO port in the URL (2049 refuses, so the NFS port comes from the
#      portmapper; MOUNT too), with --verify and --stats; the exported file
#      and a read-back (rpctls-cp nfs:// -> local file) are byte-identical
#      to the source; --stats names both ports.
#   4. The same with libnfs's URL options (?nfsport=&mountport=&version=3),
#      and --tls: MOUNT falls back to plain (ganesha refuses the
#      RPC-with-TLS probe), NFS requires TLS and is refused.
#   5. SIGTERM stops ganesha; its registrations are removed if it left any.
#
# Exit 77 (skipped) when not root; FAIL when ganesha or rpcbind is missing.
set -u

CP=${1:?usage: nfs3_ganesha.sh PATH/TO/rpctls-cp}
fail() { echo "FAIL: $*" >&2; [ -n "${TMP:-}" ] && [ -f "$TMP/ganesha.log" ] && tail -30 "$TMP/ganesha.log" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: nfs-ganesha needs root"
    exit 77
fi
command -v ganesha.nfsd >/dev/null 2>&1 || fail "ganesha.nfsd not found (apt-get install nfs-ganesha nfs-ganesha-vfs)"
command -v rpcinfo >/dev/null 2>&1 || fail "rpcinfo not found (apt-get install rpcbind)"
RPCBIND=$(command -v rpcbind || echo /usr/sbin/rpcbind)
[ -x "$RPCBIND" ] || fail "rpcbind not found (apt-get install rpcbind)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rpctls-ganesha-XXXXXX") || fail "mktemp"
TMP=$(cd "$TMP" && pwd -P)
EXP="$TMP/export"
mkdir -p "$EXP" "$TMP/recov" || fail "mkdir"
chmod 755 "$TMP" "$EXP"
GPID=
RBPID=
NFSPORT=
MNTPORT=
cleanup() {
    if [ -n "$GPID" ]; then
        kill -TERM "$GPID" 2>/dev/null
        i=0
        while kill -0 "$GPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$GPID" 2>/dev/null
    fi
    if [ -n "$RBPID" ]; then
        kill -TERM "$RBPID" 2>/dev/null
        wait "$RBPID" 2>/dev/null
    elif [ -n "$NFSPORT" ]; then
        # A shared rpcbind: drop whatever ganesha left registered on our ports.
        for pv in "100003 3" "100005 3" "100005 1"; do
            if rpcinfo -p 127.0.0.1 2>/dev/null | grep -Eq "^ *${pv% *} +${pv#* } +(tcp|udp) +($NFSPORT|$MNTPORT) "; then
                rpcinfo -d $pv 2>/dev/null
            fi
        done
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# ---- rpcbind ------------------------------------------------------------------
if rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
    echo "using the running rpcbind"
else
    "$RPCBIND" -f >"$TMP/rpcbind.log" 2>&1 &
    RBPID=$!
    i=0
    until rpcinfo -p 127.0.0.1 >/dev/null 2>&1; do
        kill -0 "$RBPID" 2>/dev/null || { cat "$TMP/rpcbind.log" >&2; RBPID=; fail "rpcbind exited"; }
        [ $i -lt 50 ] || fail "rpcbind does not answer"
        sleep 0.1
        i=$((i + 1))
    done
    echo "started rpcbind (pid $RBPID)"
fi

# ---- no other NFS server -------------------------------------------------------
# A connection to 127.0.0.1:2049 that succeeds means a server is there
# (bash's /dev/tcp; without bash, ss's list of listeners).
port2049_taken() {
    if command -v bash >/dev/null 2>&1; then
        timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2049' 2>/dev/null
    else
        ss -Htln 2>/dev/null | awk '{print $4}' | grep -Eq '^(127\.0\.0\.1|0\.0\.0\.0|\*|\[::\]):2049$'
    fi
}
if port2049_taken; then
    who=$(ss -Htlnp 'sport = :2049' 2>/dev/null | awk '{print $4, $6}')
    fail "something already listens on 127.0.0.1:2049 (${who:-unknown}): a URL without a port would reach it instead of the ganesha started here; stop it (a system NFS server: systemctl disable --now nfs-ganesha)"
fi
foreign=$(rpcinfo -p 127.0.0.1 2>/dev/null | awk '$1 == 100003')
if [ -n "$foreign" ]; then
    fail "rpcbind already has NFS (100003) registrations that this test did not make: $(echo "$foreign" | tr -s ' ' | tr '\n' ';') the portmapper's NFS port would not be ganesha's; stop that server (a system NFS server: systemctl disable --now nfs-ganesha)"
fi

# ---- free loopback ports --------------------------------------------------------
# A port is free when no socket uses it, in any state: ganesha binds without
# SO_REUSEADDR on some sockets, so even a TIME_WAIT left by another test's
# connection makes its start fail ("Cannot bind MNT tcp6 socket, error 98").
# Ports come from below the ephemeral range (32768+), which port-0 listeners
# and client connections use, so such collisions are rare to begin with.
listening() { ss -Htanu 2>/dev/null | awk '{print $5}' | sed 's/.*://' | grep -qx "$1"; }
pick_port() {
    p=$(( ($(od -An -N2 -tu2 /dev/urandom) % 12000) + 20000 ))
    n=0
    while listening "$p" || [ "$p" = "${1:-}" ]; do
        p=$((p + 1)); n=$((n + 1))
        [ $n -lt 1000 ] || fail "no free port"
    done
    echo "$p"
}
NFSPORT=$(pick_port)
MNTPORT=$(pick_port "$NFSPORT")

# ---- ganesha ------------------------------------------------------------------
cat >"$TMP/ganesha.conf" <<CONF
NFS_CORE_PARAM {
    NFS_Protocols = 3;
    NFS_Port = $NFSPORT;
    MNT_Port = $MNTPORT;
    Bind_addr = 127.0.0.1;
    Enable_NLM = false;
    Enable_RQUOTA = false;
}
NFSV4 {
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = "$TMP/recov";
}
NFS_KRB5 { Active_krb5 = false; }
EXPORT {
    Export_Id = 77;
    Path = "$EXP";
    Pseudo = "$EXP";
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3;
    Transports = TCP;
    SecType = sys;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
CONF
ganesha.nfsd -F -f "$TMP/ganesha.conf" -L "$TMP/ganesha.log" -p "$TMP/ganesha.pid" >"$TMP/ganesha.out" 2>&1 &
GPID=$!
i=0
until rpcinfo -p 127.0.0.1 2>/dev/null | grep -Eq "^ *100003 +3 +tcp +$NFSPORT " &&
      rpcinfo -p 127.0.0.1 2>/dev/null | grep -Eq "^ *100005 +3 +tcp +$MNTPORT "; do
    kill -0 "$GPID" 2>/dev/null || { cat "$TMP/ganesha.out" >&2; GPID=; fail "ganesha.nfsd exited"; }
    [ $i -lt 300 ] || { rpcinfo -p 127.0.0.1 >&2; fail "ganesha did not register NFS v3 on $NFSPORT and MOUNT v3 on $MNTPORT within 30 s"; }
    sleep 0.1
    i=$((i + 1))
done
echo "ganesha: NFS v3 on 127.0.0.1:$NFSPORT, MOUNT v3 on 127.0.0.1:$MNTPORT, export $EXP"

errors=0
err() { echo "FAIL: $*" >&2; errors=$((errors + 1)); }

# ---- 64 MiB, no port options: everything through rpcbind ------------------------------
head -c 67108864 /dev/urandom >"$TMP/src" || fail "source"
URL="nfs://127.0.0.1$EXP/file.bin"
if timeout 300 "$CP" --no-tls --verify --stats --no-progress "$TMP/src" "$URL" >"$TMP/out" 2>&1; then
    cat "$TMP/out"
    grep -qx "  MOUNT: 127.0.0.1:$MNTPORT plain" "$TMP/out" || err "--stats does not name MOUNT on $MNTPORT"
    grep -qx "  NFS: 127.0.0.1:$NFSPORT plain" "$TMP/out" || err "--stats does not name NFS on $NFSPORT"
    grep -q "SHA-256 matches the source" "$TMP/out" || err "no verify line"
    cmp "$TMP/src" "$EXP/file.bin" || err "the exported file differs from the source"
else
    cat "$TMP/out" >&2; err "rpctls-cp write to $URL"
fi
if timeout 300 "$CP" --no-tls --verify --no-progress "$URL" "$TMP/back" >"$TMP/out" 2>&1; then
    cmp "$TMP/src" "$TMP/back" || err "the read-back differs from the source"
    [ "$(sha256sum <"$TMP/src")" = "$(sha256sum <"$TMP/back")" ] || err "SHA-256 of the read-back differs"
    echo "ok   64 MiB written, verified and read back identical (ports from rpcbind)"
else
    cat "$TMP/out" >&2; err "rpctls-cp read from $URL"
fi

# ---- libnfs's URL options: no portmapper needed ----------------------------------------
URL2="nfs://127.0.0.1$EXP/opts.bin?nfsport=$NFSPORT&mountport=$MNTPORT&version=3"
head -c 1000003 /dev/urandom >"$TMP/src2"
if timeout 120 "$CP" --no-tls --verify --no-progress "$TMP/src2" "$URL2" >"$TMP/out" 2>&1; then
    cmp "$TMP/src2" "$EXP/opts.bin" || err "the file written with URL options differs"
    echo "ok   URL options nfsport, mountport, version=3"
else
    cat "$TMP/out" >&2; err "rpctls-cp with URL options"
fi

# ---- --tls: MOUNT falls back to plain, NFS requires TLS and is refused -------------------
rpctls_certs=$(dirname "$CP")/rpctls-certs
if [ -x "$rpctls_certs" ] && "$rpctls_certs" "$TMP/pki" >/dev/null 2>&1; then
    RPCTLS_LOG=info timeout 120 "$CP" --ca "$TMP/pki/ca.pem" --no-progress "$URL" "$TMP/back3" >"$TMP/out" 2>&1
    rc=$?
    [ $rc = 1 ] || err "--tls against ganesha: exit status $rc, expected 1"
    grep -q "^rpctls-cp: $URL: LOOKUP: Protocol not supported ($URL does not offer RPC-with-TLS (reply: AUTH_ERROR AUTH_REJECTEDCRED))\$" "$TMP/out" ||
        { cat "$TMP/out" >&2; err "--tls: NFS not refused with the expected message"; }
    grep -q "($URL (MOUNT) does not offer RPC-with-TLS (reply: AUTH_ERROR AUTH_REJECTEDCRED); continuing in plain\$" "$TMP/out" ||
        grep -q "$URL (MOUNT) does not offer RPC-with-TLS (reply: AUTH_ERROR AUTH_REJECTEDCRED); continuing in plain\$" "$TMP/out" ||
        { cat "$TMP/out" >&2; err "--tls: MOUNT did not fall back to plain"; }
    echo "ok   --tls: MOUNT in plain after the refused probe, NFS refused"
else
    err "rpctls-certs next to rpctls-cp failed"
fi

# ---- stop ----------------------------------------------------------------------
kill -TERM "$GPID"
i=0
while kill -0 "$GPID" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$GPID" 2>/dev/null; then
    err "ganesha did not stop within 15 s of SIGTERM"
else
    wait "$GPID" 2>/dev/null
    GPID=
fi

[ $errors = 0 ] || { tail -30 "$TMP/ganesha.log" >&2; exit 1; }
echo "PASS"
