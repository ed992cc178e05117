/*
 * tests/util/net.h - loopback sockets for tests.
 */
#ifndef RPCTLS_TEST_NET_H
#define RPCTLS_TEST_NET_H

/* A connected TCP pair over 127.0.0.1 (listen on port 0, connect, accept),
 * both ends blocking with TCP_NODELAY. *client is the connecting end.
 * Returns 0 or -1 (message on stderr). */
int tu_tcp_pair(int *client, int *server);
/* Sets or clears O_NONBLOCK; 0 or -1. */
int tu_set_nonblock(int fd, int on);
/* SO_RCVTIMEO and SO_SNDTIMEO, so a stuck test fails instead of hanging. */
int tu_set_timeouts(int fd, int ms);

#endif
