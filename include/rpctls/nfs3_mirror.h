/*
 * rpctls/nfs3_mirror.h - the mirrored writer: one local file written to
 * several NFSv3 servers (flex-files mirroring, RFC 8435) over RPC-with-TLS,
 * the seed's scenario.
 *
 * Data path. The source is read ONCE, chunk by chunk, into page vectors
 * (mb_chain_append_pages_from_fd). Each mirror receives a copy-by-reference
 * of the chunk (mb_chain_copy_ref: no byte is copied), which becomes the
 * data of an UNSTABLE WRITE; the RPC client retains the call by reference
 * for retransmission. Pages are therefore shared while in flight and the
 * record layer encrypts them out of place (unless the unsafe tx mode
 * "unsafe-inplace" is asked for, which corrupts them: the seed's bug).
 *
 * Threads. Every mirror has its own thread, krpc_loop, NFS client and
 * connection, so the encryption for different mirrors runs in parallel.
 * The calling thread reads the source and hands chunks to the mirror
 * threads through a queue per mirror and an eventfd registered with the
 * mirror's loop. At most max_chunks chunks are buffered: a chunk's pages go
 * back to the pool when every mirror has its WRITE reply.
 *
 * Commit. After the last WRITE each mirror sends COMMIT. Ranges whose
 * WRITE verifier differs from the COMMIT verifier (the server restarted and
 * lost unstable data) are written again, re-read from the source file, and
 * committed again, up to commit_rounds times. Short writes are completed the
 * same way. Retransmissions and reconnects happen below, in the RPC client.
 *
 * Failure. A mirror whose calls fail (retry limit, server down past the
 * reconnect budget, an NFS error) is reported by name in its result
 * ("mirror nfs://HOST:PORT/PATH: WRITE: Connection refused ..."); the other
 * mirrors carry on to the end, and nfs3_mirror_write returns -EIO.
 */
#ifndef RPCTLS_NFS3_MIRROR_H
#define RPCTLS_NFS3_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include "rpctls/krpc_clnt.h"
#include "rpctls/nfs3.h"
#include "rpctls/nfs3_clnt.h"

#include "rpctls/visibility.h"

#ifdef __cplusplus
extern "C" {
#endif

struct nfs3_mirror_dest {
    const char *label;            /* for messages, e.g. "nfs://127.0.0.1:2049/srv/data/f" */
    struct krpc_clnt_config rpc;  /* address, TLS, timeouts (prog/vers ignored) */
    const char *path;             /* absolute server path: export + file ("/srv/data/f") */
    struct nfs3_clnt_opts ports;  /* MOUNT's port, NFS port discovery (nfs3_clnt.h); zero: defaults */
};

struct nfs3_mirror_config {
    uint32_t wsize;         /* bytes per WRITE; 0: 1 MiB; capped by each server's wtmax */
    unsigned depth;         /* WRITEs in flight per mirror; 0: 8 */
    unsigned max_chunks;    /* chunks buffered (read, not yet written everywhere); 0: 2 * depth */
    unsigned commit_rounds; /* resend + COMMIT rounds after a verifier change; 0: 5 */
    int mkdirs;             /* create missing directories on the way to the file */
    int verify;             /* read every mirror back; fills sha256 in the results */
    /* Called from the calling thread with the bytes written to every mirror. */
    void (*progress)(void *arg, uint64_t done, uint64_t total);
    void *progress_arg;
};

struct nfs3_mirror_result {
    int status;                 /* 0, or the first failure (see nfs3_clnt.h) */
    char error[640];            /* "mirror LABEL: ..." when status != 0 */
    uint32_t wsize;             /* bytes per WRITE used */
    uint64_t bytes_written;     /* WRITE data acknowledged, resends included */
    uint64_t bytes_resent;      /* written again after a verifier change or a short write */
    unsigned commits;           /* COMMIT calls */
    unsigned verifier_changes;  /* COMMITs that found uncommitted data lost */
    int tls;                    /* the connection used TLS */
    char nfs_transport[160];    /* nfs3_clnt_transport(): "127.0.0.1:2049 TLS (TLS_AES_128_GCM_SHA256)" */
    char mount_transport[160];  /* the same for MOUNT; "" when MOUNT was not reached */
    struct krpc_clnt_stats rpc; /* NFS connection counters */
    struct ktls_stats tls_stats;/* record-layer counters, all sessions */
    int verified;               /* verify: sha256 and size hold the read-back */
    uint64_t size;              /* verify: bytes read back */
    uint8_t sha256[32];
    double seconds;             /* from start to the last COMMIT reply */
};

/* Writes [0, size) of src_fd (a regular file: resends re-read it) to every
 * destination. results has n entries. src_sha256 (may be NULL) receives the
 * source's SHA-256 when cfg->verify. Returns 0 when every mirror succeeded,
 * -EIO when any failed (see results), another negative errno on a local
 * failure (reading the source). */
RPCTLS_API int nfs3_mirror_write(int src_fd, uint64_t size, const struct nfs3_mirror_dest *dests, unsigned n,
                                 const struct nfs3_mirror_config *cfg, struct nfs3_mirror_result *results,
                                 uint8_t src_sha256[32]);

#ifdef __cplusplus
}
#endif

#endif
