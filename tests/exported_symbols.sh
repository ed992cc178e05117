#!/bin/sh
# tests/exported_symbols.sh LIB ALLOWLIST [INCLUDE_DIR CC] - the shared
# library exports exactly the symbols in ALLOWLIST
# (tests/exported_symbols.txt), and every function the public headers in
# INCLUDE_DIR/rpctls declare is exported.
#
# Exported: what `nm -D --defined-only LIB` lists as a function or data
# (types T, D, B, R, V, W, i, u), less the symbols the linker itself adds and
# the sanitizers' instrumentation (ASan's __odr_asan.NAME indicator next to
# each exported object, in the ASan build).
# Every RPCTLS_API declaration in include/rpctls/ is one line of the
# allowlist; anything else (internal layer__ names, test hooks, a function
# whose header forgot RPCTLS_API, or a stray public one) is a difference,
# printed with the side it is on. After adding or removing a public function,
# regenerate the allowlist:
#   nm -D --defined-only build/librpctls.so | awk '$2 ~ /^[TDBRVWiu]$/ {print $3}' | sort > tests/exported_symbols.txt
# (and put the header comment back).
#
# The headers' functions come from gcc -aux-info on a file that includes
# every public header (extern declarations whose file is INCLUDE_DIR/rpctls;
# the static inline helpers are not symbols). A declaration without
# RPCTLS_API is hidden, so it shows up here. With a compiler that has no
# -aux-info (clang) that part is skipped, saying so.
set -u

LIB=${1:?usage: exported_symbols.sh PATH/TO/librpctls.so ALLOWLIST}
ALLOW=${2:?usage: exported_symbols.sh PATH/TO/librpctls.so ALLOWLIST}
INC=${3:-} CC=${4:-}
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v nm >/dev/null 2>&1 || fail "nm not found (apt-get install binutils)"
[ -f "$LIB" ] || fail "$LIB: no such file"
[ -f "$ALLOW" ] || fail "$ALLOW: no such file"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rpctls-syms-XXXXXX") || fail "mktemp"
trap 'rm -rf "$TMP"' EXIT

nm -D --defined-only "$LIB" >"$TMP/nm" || fail "nm -D $LIB"
# The linker's own symbols (some linkers export them from every library) and
# the sanitizers'.
awk '$2 ~ /^[TDBRVWiu]$/ {print $3}' "$TMP/nm" |
    grep -v -x -e _init -e _fini -e _edata -e _end -e __bss_start -e _etext -e __end__ |
    grep -v -E '^__(odr_asan|asan|ubsan|sanitizer|sancov)' |
    sort -u >"$TMP/exported"
grep -v -e '^#' -e '^[[:space:]]*$' "$ALLOW" | sort -u >"$TMP/allowed"

n=$(wc -l <"$TMP/exported")
[ "$n" -gt 0 ] || fail "$LIB exports no functions or data: is this the shared library?"

comm -23 "$TMP/exported" "$TMP/allowed" >"$TMP/extra"
comm -13 "$TMP/exported" "$TMP/allowed" >"$TMP/missing"
if [ -s "$TMP/extra" ] || [ -s "$TMP/missing" ]; then
    if [ -s "$TMP/extra" ]; then
        echo "exported by $LIB but not in $ALLOW:" >&2
        sed 's/^/  + /' "$TMP/extra" >&2
    fi
    if [ -s "$TMP/missing" ]; then
        echo "in $ALLOW but not exported by $LIB:" >&2
        sed 's/^/  - /' "$TMP/missing" >&2
    fi
    fail "the exported symbols differ from the allowlist (public functions carry RPCTLS_API; internal ones are named layer__ and stay hidden)"
fi

if [ -n "$INC" ] && [ -n "$CC" ]; then
    for h in "$INC"/rpctls/*.h; do
        echo "#include <rpctls/${h##*/}>"
    done >"$TMP/all.c"
    if ! "$CC" -v 2>&1 | grep -q '^gcc version'; then
        echo "note: $CC is not gcc (no -aux-info): the check of the headers' declarations is skipped"
    elif ! "$CC" -std=gnu11 -I"$INC" -fsyntax-only -aux-info "$TMP/aux" "$TMP/all.c" >"$TMP/cc.log" 2>&1; then
        cat "$TMP/cc.log" >&2
        fail "the public headers do not compile"
    else
        # /* INC/rpctls/FILE.h:LINE:NC */ extern TYPE NAME (ARGS);
        grep "^/\* $INC/rpctls/[^ ]*:[0-9]*:[A-Z]* \*/ extern " "$TMP/aux" |
            sed -E 's|^/\*[^*]*\*/ extern ||; s|^([^(]*[^A-Za-z0-9_(])?([A-Za-z_][A-Za-z0-9_]*) \(.*|\2|' |
            sort -u >"$TMP/declared"
        [ -s "$TMP/declared" ] || fail "no function declarations found in $INC/rpctls/*.h (-aux-info)"
        comm -23 "$TMP/declared" "$TMP/exported" >"$TMP/hidden"
        if [ -s "$TMP/hidden" ]; then
            echo "declared in $INC/rpctls/*.h but not exported by $LIB (RPCTLS_API missing, or not defined):" >&2
            sed 's/^/  - /' "$TMP/hidden" >&2
            fail "public functions are hidden"
        fi
        echo "ok: the $(wc -l <"$TMP/declared") functions the public headers declare are all exported"
    fi
fi
echo "ok: $n exported symbols, all in $ALLOW"
