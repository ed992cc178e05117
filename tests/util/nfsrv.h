/*
 * tests/util/nfsrv.h - an in-process NFS server (nfs3_srv on its own loop
 * thread) and raw NFS/MOUNT clients with a credential of the test's choice,
 * for tests that need the library's configuration (identity, worker pool).
 */
#ifndef RPCTLS_TEST_NFSRV_H
#define RPCTLS_TEST_NFSRV_H

#include <pthread.h>
#include <stdint.h>

#include "rpctls/krpc.h"
#include "rpctls/krpc_clnt.h"
#include "rpctls/krpc_svc.h"
#include "rpctls/nfs3.h"
#include "rpctls/nfs3_srv.h"

struct tu_nfsrv {
    struct krpc_loop *loop;
    struct krpc_svc *svc;
    struct nfs3_srv *srv;
    pthread_t thr;
    uint16_t port;
};

/* Starts a plain-TCP server on 127.0.0.1:0 with scfg; 0 or -1 (message on
 * stderr). */
int tu_nfsrv_start(struct tu_nfsrv *si, const struct nfs3_srv_config *scfg);
/* The same with TLS optional: cert and key are the server's, client
 * certificates are asked for and verified against ca when sent. */
int tu_nfsrv_start_tls(struct tu_nfsrv *si, const struct nfs3_srv_config *scfg, const char *cert, const char *key,
                       const char *ca);
/* Stops the loop, frees the service (work in flight is dropped) and the server. */
void tu_nfsrv_stop(struct tu_nfsrv *si);

/* A client of one program on its own loop. cred: AUTH_NONE or AUTH_SYS. */
struct tu_nfscli {
    struct krpc_loop *loop;
    struct krpc_clnt *cl;
};
int tu_nfscli_open(struct tu_nfscli *c, uint16_t port, uint32_t prog, uint32_t vers, const struct krpc_cred *cred);
/* The same over TLS: ca verifies the server (127.0.0.1); cert and key are
 * the client certificate (both NULL: none). */
int tu_nfscli_open_tls(struct tu_nfscli *c, uint16_t port, uint32_t prog, uint32_t vers,
                       const struct krpc_cred *cred, const char *ca, const char *cert, const char *key);
void tu_nfscli_close(struct tu_nfscli *c);
/* An AUTH_SYS credential. */
struct krpc_cred tu_nfs_cred_sys(uint32_t uid, uint32_t gid);

/* Calls proc with args (consumed): 0 and rep filled for an accepted SUCCESS,
 * else the accept status as a positive number or a negative errno (-EACCES
 * for MSG_DENIED; tu_rpc_auth_stat then holds an AUTH_ERROR's auth_stat,
 * else 0). */
extern uint32_t tu_rpc_auth_stat;
int tu_rpc(struct krpc_clnt *cl, uint32_t proc, struct mb_chain *args, struct krpc_reply *rep);

/* Encode args with ENC, call, decode with DEC into *RES: 0 or an error. */
#define TU_CALL(cl, proc, ENC, argp, DEC, resp)                                                \
    ({                                                                                        \
        struct mb_chain a_ = MB_CHAIN_INIT;                                                   \
        struct krpc_xdr_enc x_;                                                               \
        struct krpc_reply rp_;                                                                \
        int r_ = -EINVAL;                                                                     \
        memset(&rp_, 0, sizeof(rp_));                                                         \
        krpc_xdr_enc_init(&x_, &a_);                                                          \
        ENC(&x_, argp);                                                                       \
        if (krpc_xdr_enc_error(&x_) == 0)                                                     \
            r_ = tu_rpc(cl, proc, &a_, &rp_);                                                 \
        else                                                                                  \
            mb_chain_free(&a_);                                                               \
        if (r_ == 0)                                                                          \
            r_ = DEC(&rp_.res, resp);                                                         \
        krpc_reply_free(&rp_);                                                                \
        r_;                                                                                   \
    })

#endif
