/*
 * net_sends: connects and sends through io_uring with the raw syscalls (no liburing: the ring
 * is uring_ring.h, next to this file), and sendmmsg(2), for the kernel tests of
 * Tests/KernelTests/SendAndDNSTests.swift. Compiled with cc at test time.
 *
 *   net_sends connect ADDR PORT BYTES [skip]   TCP: IORING_OP_CONNECT, then BYTES through
 *                                              IORING_OP_SEND; with "skip" the connect is
 *                                              submitted with IOSQE_CQE_SKIP_SUCCESS, linked
 *                                              to the first send (its completion never comes)
 *   net_sends sendmsg ADDR PORT COUNT SIZE     UDP, not connected: COUNT IORING_OP_SENDMSG of
 *                                              SIZE bytes each to ADDR:PORT
 *   net_sends sendmmsg ADDR PORT COUNT SIZE    UDP, not connected: one sendmmsg(2) of COUNT
 *                                              datagrams of SIZE bytes to ADDR:PORT
 *
 * ADDR is IPv4 dotted. Prints what it did; exits 0 when every operation did what it should.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "uring_ring.h"

/* The next completion's result, a failed wait as -errno: the callers treat both as a failure. */
static int reap(struct uring *r, unsigned long long *data)
{
	int res;

	return uring_wait(r, &res, data) ? -errno : res;
}

static int do_connect(struct uring *r, const char *addr, int port, long bytes, int skip)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, addr, &sin.sin_addr);
	static char buf[65536];
	memset(buf, 'u', sizeof(buf));

	struct io_uring_sqe *e = uring_sqe(r);
	e->opcode = IORING_OP_CONNECT;
	e->fd = s;
	e->addr = (unsigned long)&sin;
	e->off = sizeof(sin);
	e->user_data = 1;
	long sent = 0;
	if (skip) {
		/* No completion on success: the send linked after it is all that is seen. */
		e->flags = IOSQE_CQE_SKIP_SUCCESS | IOSQE_IO_LINK;
		long n = bytes < (long)sizeof(buf) ? bytes : (long)sizeof(buf);
		struct io_uring_sqe *w = uring_sqe(r);
		w->opcode = IORING_OP_SEND;
		w->fd = s;
		w->addr = (unsigned long)buf;
		w->len = (unsigned)n;
		w->user_data = 2;
		uring_submit(r, 1);
		unsigned long long data = 0;
		int res = reap(r, &data);
		if (data != 2 || res < 0) {
			printf("connect+send (skip): user_data %llu res %d\n", data, res);
			return 1;
		}
		sent = res;
	} else {
		uring_submit(r, 1);
		int res = reap(r, NULL);
		printf("connect: %d\n", res);
		if (res != 0)
			return 1;
	}
	while (sent < bytes) {
		long n = bytes - sent < (long)sizeof(buf) ? bytes - sent : (long)sizeof(buf);
		struct io_uring_sqe *w = uring_sqe(r);
		w->opcode = IORING_OP_SEND;
		w->fd = s;
		w->addr = (unsigned long)buf;
		w->len = (unsigned)n;
		w->user_data = 3;
		uring_submit(r, 1);
		int res = reap(r, NULL);
		if (res <= 0) {
			printf("send: %d\n", res);
			return 1;
		}
		sent += res;
	}
	printf("sent %ld\n", sent);
	shutdown(s, SHUT_WR);
	char c;
	while (read(s, &c, 1) > 0) {
	}
	close(s);
	return 0;
}

static int do_sendmsg(struct uring *r, const char *addr, int port, long count, long size)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, addr, &sin.sin_addr);
	char *buf = malloc(size > 0 ? size : 1);
	memset(buf, 'd', size);
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = { .msg_name = &sin, .msg_namelen = sizeof(sin), .msg_iov = &iov, .msg_iovlen = 1 };
	for (long i = 0; i < count; i++) {
		struct io_uring_sqe *e = uring_sqe(r);
		e->opcode = IORING_OP_SENDMSG;
		e->fd = s;
		e->addr = (unsigned long)&msg;
		e->len = 1;
		e->user_data = 10 + i;
		uring_submit(r, 1);
		int res = reap(r, NULL);
		if (res != size) {
			printf("sendmsg %ld: %d\n", i, res);
			return 1;
		}
	}
	printf("sent %ld datagrams of %ld bytes\n", count, size);
	close(s);
	return 0;
}

static int do_sendmmsg(const char *addr, int port, long count, long size)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, addr, &sin.sin_addr);
	if (count > 64)
		count = 64;
	char *buf = malloc(size > 0 ? size : 1);
	memset(buf, 'm', size);
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct mmsghdr msgs[64];
	memset(msgs, 0, sizeof(msgs));
	for (long i = 0; i < count; i++) {
		msgs[i].msg_hdr.msg_name = &sin;
		msgs[i].msg_hdr.msg_namelen = sizeof(sin);
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	int n = sendmmsg(s, msgs, (unsigned)count, 0);
	printf("sendmmsg: %d of %ld\n", n, count);
	close(s);
	return n == count ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && strcmp(argv[1], "sendmmsg") == 0)
		return do_sendmmsg(argv[2], atoi(argv[3]), atol(argv[4]), atol(argv[5]));
	struct uring r;
	if (uring_setup(&r, 8) < 0) {
		perror("io_uring_setup");
		return 2;
	}
	if (argc >= 5 && strcmp(argv[1], "connect") == 0)
		return do_connect(&r, argv[2], atoi(argv[3]), atol(argv[4]), argc >= 6 && strcmp(argv[5], "skip") == 0);
	if (argc >= 6 && strcmp(argv[1], "sendmsg") == 0)
		return do_sendmsg(&r, argv[2], atoi(argv[3]), atol(argv[4]), atol(argv[5]));
	fprintf(stderr, "usage: net_sends connect ADDR PORT BYTES [skip] | sendmsg|sendmmsg ADDR PORT COUNT SIZE\n");
	return 2;
}
