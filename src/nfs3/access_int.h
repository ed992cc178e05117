/*
 * src/nfs3/access_int.h - how ACCESS is answered (backend_ops.c;
 * docs/nfs3-server.md, "Identity: who a call runs as").
 *
 * ACCESS asks the kernel with faccessat2(AT_EACCESS), which checks the
 * calling thread's fsuid, fsgid and groups. faccessat2 is Linux >= 5.8; on
 * an older kernel (or where a seccomp filter refuses it) glibc's
 * faccessat would check the process's euid, root, so the server then
 * computes the answer itself from the file's mode, owner and group for the
 * thread's identity (no POSIX ACLs, no immutable flag: ACCESS is advisory,
 * and every operation is still checked by the kernel as the caller).
 */
#ifndef RPCTLS_NFS3_ACCESS_INT_H
#define RPCTLS_NFS3_ACCESS_INT_H

/* Decides once per process (the first call probes faccessat2 as ACCESS
 * calls it, and logs a warning when it falls back). 1: the kernel answers;
 * 0: the mode bits do. */
int nfs3__access_probe(void);

/* Test only: nonzero makes ACCESS use the mode-bit fallback whatever the
 * probe found; 0 goes back to the probe's choice. */
void nfs3__access_force_mode_bits(int on);

#endif
