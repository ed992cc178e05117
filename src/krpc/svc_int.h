/*
 * svc_int.h - internal entry points of the RPC server, for the fuzz target
 * and tests: a server without a listener, and the dispatch of one call
 * message as if it had arrived on a connection.
 */
#ifndef RPCTLS_KRPC_SVC_INT_H
#define RPCTLS_KRPC_SVC_INT_H

#include "rpctls/krpc_svc.h"

/* What the connection must do after dispatching one message. */
enum krpc_svc_action {
    KRPC_SVC_ACT_NONE = 0,     /* nothing to send (deferred, duplicate in progress, dropped) */
    KRPC_SVC_ACT_REPLY = 1,    /* send the reply */
    KRPC_SVC_ACT_STARTTLS = 2, /* send the reply (the STARTTLS probe answer), then start TLS */
    KRPC_SVC_ACT_CLOSE = 3,    /* close the connection (not a call, or not even an XID) */
};

/* A server with no listener and no loop: only dispatch works (and
 * krpc_svc_register, krpc_svc_reply, krpc_svc_stats, krpc_svc_free). */
int krpc__svc_new_detached(const struct krpc_svc_config *cfg, struct krpc_svc **out);

/* Dispatches one complete call message (msg is consumed) from peer, arrived
 * inside TLS when tls is non-zero, with no connection attached: a deferred
 * call's later krpc_svc_reply only fills the duplicate-request cache. The
 * reply, if any, is appended to reply. Returns an enum krpc_svc_action. */
int krpc__svc_dispatch_msg(struct krpc_svc *svc, const struct sockaddr *peer, socklen_t peerlen, int tls,
                           struct mb_chain *msg, struct mb_chain *reply);

/* Calls currently deferred (handler returned KRPC_SVC_DEFER, not yet answered). */
unsigned krpc__svc_deferred(const struct krpc_svc *svc);

#endif
