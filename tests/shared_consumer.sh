#!/bin/sh
# tests/shared_consumer.sh CMAKE BUILD_DIR SOURCE_DIR CC LIBDIR INCLUDEDIR [CFLAG...]
#
# An outside program against the installed shared library:
# 1. installs BUILD_DIR into a scratch prefix (cmake --install);
# 2. compiles tests/consumer/consumer.c with only PREFIX/INCLUDEDIR on the
#    include path (strict C11, -Werror) and links it with -lrpctls from
#    PREFIX/LIBDIR, the shared library (checked: the program needs
#    librpctls.so.0 and holds none of the library's code); runs it;
# 3. checks that internal functions and test hooks do not link from the
#    shared library (they are hidden; only RPCTLS_API symbols are exported).
# CFLAG... are added to every compile and link (the sanitizers of an ASan
# build: the program must load their runtime before the library).
set -u

CMAKE=${1:?usage: shared_consumer.sh CMAKE BUILD_DIR SOURCE_DIR CC LIBDIR INCLUDEDIR [CFLAG...]}
BUILD=${2:?} SRC=${3:?} CC=${4:?} LIBDIR=${5:?} INCDIR=${6:?}
shift 6
fail() { echo "FAIL: $*" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rpctls-consumer-XXXXXX") || fail "mktemp"
trap 'rm -rf "$TMP"' EXIT
PREFIX="$TMP/prefix"

"$CMAKE" --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" 2>&1 || {
    cat "$TMP/install.log" >&2
    fail "cmake --install $BUILD"
}
[ -f "$PREFIX/$INCDIR/rpctls/ktls.h" ] || fail "no $PREFIX/$INCDIR/rpctls/ktls.h after install"
[ -e "$PREFIX/$LIBDIR/librpctls.so" ] || fail "no $PREFIX/$LIBDIR/librpctls.so after install"

# shellcheck disable=SC2086 # the flags are words
"$CC" -std=c11 -Wall -Wextra -Werror "$@" -I"$PREFIX/$INCDIR" -o "$TMP/consumer" \
    "$SRC/tests/consumer/consumer.c" -L"$PREFIX/$LIBDIR" -lrpctls >"$TMP/cc.log" 2>&1 || {
    cat "$TMP/cc.log" >&2
    fail "the consumer does not build against the installed headers and shared library"
}
readelf -d "$TMP/consumer" | grep -q 'NEEDED.*\[librpctls\.so\.0\]' ||
    fail "the consumer does not need librpctls.so.0: it did not link the shared library"
if nm "$TMP/consumer" | grep -q ' T ktls_tx_seal$'; then
    fail "the consumer holds the library's code: it linked the static library"
fi
LD_LIBRARY_PATH="$PREFIX/$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$TMP/consumer" ||
    fail "the consumer failed against the shared library"

# Internal functions and test hooks must not link: one program per name, so
# each is checked on its own. (A wrong prototype does not matter: the
# programs are never run.)
for sym in ktls__conn_set_seq krpc__svc_dispatch_msg mb__store_alloc nfs3__op_read krpc__clnt_enter; do
    printf 'void %s(void);\nint main(void) { %s(); return 0; }\n' "$sym" "$sym" >"$TMP/internal.c"
    if "$CC" "$@" -o "$TMP/internal" "$TMP/internal.c" -L"$PREFIX/$LIBDIR" -lrpctls >"$TMP/internal.log" 2>&1; then
        fail "$sym links from the shared library: it should be hidden"
    fi
    grep -q "undefined reference to .$sym" "$TMP/internal.log" || {
        cat "$TMP/internal.log" >&2
        fail "linking $sym failed, but not for the missing symbol"
    }
done
echo "ok: the consumer builds and runs against the installed shared library; internals do not link"
