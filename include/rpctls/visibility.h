/*
 * rpctls/visibility.h - which symbols librpctls.so exports.
 *
 * The library is compiled with -fvisibility=hidden: a function or object is
 * exported only when its declaration in a public header (include/rpctls/)
 * carries RPCTLS_API. Everything else -- the functions the layers call
 * across their own files (named layer__name: krpc__, ktls__, nfs3__, mb__)
 * and the test hooks (src/LAYER/LAYER_test.h) -- stays inside the library,
 * so a program that links librpctls.so next to, say, libtirpc sees no clash.
 * The static library holds the same objects; a program linking it can still
 * reach the internals, which is how the tools and tests use them.
 * tests/exported_symbols.txt lists the exported symbols and a test checks it.
 */
#ifndef RPCTLS_VISIBILITY_H
#define RPCTLS_VISIBILITY_H

#if defined(__GNUC__) || defined(__clang__)
#define RPCTLS_API __attribute__((visibility("default")))
#else
#define RPCTLS_API
#endif

#endif
