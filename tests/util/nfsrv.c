/*
 * tests/util/nfsrv.c - see nfsrv.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/nfsrv.h"

static void *srv_thread(void *arg)
{
    struct tu_nfsrv *si = arg;
    krpc_loop_run(si->loop, NULL, -1);
    return NULL;
}

/* cert NULL: plain TCP only; else TLS optional, client certificates
 * verified against ca when sent. */
static int start(struct tu_nfsrv *si, const struct nfs3_srv_config *scfg, const char *cert, const char *key,
                 const char *ca)
{
    struct krpc_svc_config cfg;
    char err[256];

    memset(si, 0, sizeof(*si));
    memset(&cfg, 0, sizeof(cfg));
    if (krpc_parse_addr("127.0.0.1:0", &cfg.addr, &cfg.addrlen) != 0 || krpc_loop_new(&si->loop) != 0)
        return -1;
    cfg.max_msg = NFS3_SRV_DEFAULT_TMAX + 64 * 1024;
    if (cert != NULL) {
        cfg.tls = KRPC_SVC_TLS_OPTIONAL;
        cfg.tlscfg.cert_file = cert;
        cfg.tlscfg.key_file = key;
        cfg.tlscfg.ca_file = ca;
        cfg.tlscfg.verify_peer = 1;
    }
    if (krpc_svc_new(si->loop, &cfg, &si->svc) != 0)
        return -1;
    if (nfs3_srv_new(si->svc, scfg, &si->srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "nfs3_srv_new: %s\n", err);
        return -1;
    }
    si->port = krpc_svc_port(si->svc);
    return pthread_create(&si->thr, NULL, srv_thread, si) == 0 ? 0 : -1;
}

int tu_nfsrv_start(struct tu_nfsrv *si, const struct nfs3_srv_config *scfg)
{
    return start(si, scfg, NULL, NULL, NULL);
}

int tu_nfsrv_start_tls(struct tu_nfsrv *si, const struct nfs3_srv_config *scfg, const char *cert, const char *key,
                       const char *ca)
{
    return start(si, scfg, cert, key, ca);
}

void tu_nfsrv_stop(struct tu_nfsrv *si)
{
    krpc_loop_stop(si->loop);
    pthread_join(si->thr, NULL);
    krpc_svc_free(si->svc);
    krpc_loop_run(si->loop, NULL, 30); /* connections close from the loop */
    nfs3_srv_free(si->srv);
    krpc_loop_free(si->loop);
}

struct krpc_cred tu_nfs_cred_sys(uint32_t uid, uint32_t gid)
{
    struct krpc_cred c;

    memset(&c, 0, sizeof(c));
    c.flavor = KRPC_AUTH_SYS;
    snprintf(c.machine, sizeof(c.machine), "test");
    c.uid = uid;
    c.gid = gid;
    return c;
}

int tu_nfscli_open(struct tu_nfscli *c, uint16_t port, uint32_t prog, uint32_t vers, const struct krpc_cred *cred)
{
    return tu_nfscli_open_tls(c, port, prog, vers, cred, NULL, NULL, NULL);
}

int tu_nfscli_open_tls(struct tu_nfscli *c, uint16_t port, uint32_t prog, uint32_t vers,
                       const struct krpc_cred *cred, const char *ca, const char *cert, const char *key)
{
    struct krpc_clnt_config cc;
    char addr[32];

    memset(c, 0, sizeof(*c));
    if (krpc_loop_new(&c->loop) != 0)
        return -1;
    memset(&cc, 0, sizeof(cc));
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    krpc_parse_addr(addr, &cc.addr, &cc.addrlen);
    cc.cred = *cred;
    cc.timeout_ms = 10000;
    cc.max_retries = 2;
    cc.reconnect_delay_ms = 10;
    cc.prog = prog;
    cc.vers = vers;
    if (ca != NULL) {
        cc.tls = KRPC_TLS_REQUIRED;
        cc.tlscfg.ca_file = ca;
        cc.tlscfg.server_name = "127.0.0.1";
        cc.tlscfg.cert_file = cert;
        cc.tlscfg.key_file = key;
    }
    return krpc_clnt_new(c->loop, &cc, &c->cl);
}

void tu_nfscli_close(struct tu_nfscli *c)
{
    krpc_clnt_free(c->cl);
    krpc_loop_run(c->loop, NULL, 30);
    krpc_loop_free(c->loop);
}

uint32_t tu_rpc_auth_stat;

int tu_rpc(struct krpc_clnt *cl, uint32_t proc, struct mb_chain *args, struct krpc_reply *rep)
{
    int r;

    memset(rep, 0, sizeof(*rep));
    tu_rpc_auth_stat = 0;
    r = krpc_call(cl, proc, args, rep);
    if (r != 0)
        return r;
    if (rep->hdr.reply_stat != KRPC_MSG_ACCEPTED) {
        if (rep->hdr.reject_stat == KRPC_AUTH_ERROR)
            tu_rpc_auth_stat = rep->hdr.auth_stat;
        return -EACCES;
    }
    return (int)rep->hdr.accept_stat;
}
