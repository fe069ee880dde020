/*
 * A loopback TCP listener inside the workload itself, and one connect to it: socket, connect,
 * accept, then an abortive close (SO_LINGER 0) so no TIME_WAIT piles up and ports never run out.
 */
#ifndef BENCH_LOOPBACK_H
#define BENCH_LOOPBACK_H

#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

struct loopback {
	int listener;
	struct sockaddr_in addr;
};

static inline void loopback_listen(struct loopback *lb)
{
	lb->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lb->listener < 0)
		die("socket");
	memset(&lb->addr, 0, sizeof(lb->addr));
	lb->addr.sin_family = AF_INET;
	lb->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(lb->addr);
	if (bind(lb->listener, (struct sockaddr *)&lb->addr, len) < 0 || listen(lb->listener, 128) < 0 ||
	    getsockname(lb->listener, (struct sockaddr *)&lb->addr, &len) < 0)
		die("listen on 127.0.0.1");
}

static inline int loopback_port(const struct loopback *lb)
{
	return ntohs(lb->addr.sin_port);
}

static inline void loopback_connect_once(const struct loopback *lb)
{
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0)
		die("socket");
	if (connect(c, (const struct sockaddr *)&lb->addr, sizeof(lb->addr)) < 0)
		die("connect");
	int a = accept4(lb->listener, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0)
		die("accept");
	struct linger abort_close = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(c, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
	close(c);
	close(a);
}

#endif
