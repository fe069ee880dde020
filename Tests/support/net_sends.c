/*
 * net_sends: connects and sends through io_uring with the raw syscalls (no liburing), and
 * sendmmsg(2), for the
 * kernel tests of Tests/KernelTests/SendAndDNSTests.swift. Compiled with cc at test time.
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
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int setup(struct ring *r, unsigned entries)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
	if (r->fd < 0)
		return -1;
	size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		sq_size = cq_size = sq_size > cq_size ? sq_size : cq_size;
	char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return -1;
	char *cq = sq;
	if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
		cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (cq == MAP_FAILED)
			return -1;
	}
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       r->fd, IORING_OFF_SQES);
	return r->sqes == MAP_FAILED ? -1 : 0;
}

/* The next SQE, zeroed; queued by submit(). */
static struct io_uring_sqe *sqe(struct ring *r)
{
	unsigned tail = __atomic_load_n(r->sq_tail, __ATOMIC_RELAXED);
	unsigned i = tail & *r->sq_mask;
	struct io_uring_sqe *e = &r->sqes[i];
	memset(e, 0, sizeof(*e));
	r->sq_array[i] = i;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	return e;
}

/* Submits n queued SQEs and waits for `wait` completions. */
static int submit(struct ring *r, unsigned n, unsigned wait)
{
	return (int)syscall(__NR_io_uring_enter, r->fd, n, wait, IORING_ENTER_GETEVENTS, NULL, 0);
}

/* The next completion's result (it was waited for); user_data into *data. */
static int reap(struct ring *r, unsigned long long *data)
{
	for (;;) {
		unsigned head = __atomic_load_n(r->cq_head, __ATOMIC_RELAXED);
		if (head != __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
			struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];
			int res = c->res;
			if (data)
				*data = c->user_data;
			__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
			return res;
		}
		if (submit(r, 0, 1) < 0 && errno != EINTR)
			return -errno;
	}
}

static int do_connect(struct ring *r, const char *addr, int port, long bytes, int skip)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, addr, &sin.sin_addr);
	static char buf[65536];
	memset(buf, 'u', sizeof(buf));

	struct io_uring_sqe *e = sqe(r);
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
		struct io_uring_sqe *w = sqe(r);
		w->opcode = IORING_OP_SEND;
		w->fd = s;
		w->addr = (unsigned long)buf;
		w->len = (unsigned)n;
		w->user_data = 2;
		submit(r, 2, 1);
		unsigned long long data = 0;
		int res = reap(r, &data);
		if (data != 2 || res < 0) {
			printf("connect+send (skip): user_data %llu res %d\n", data, res);
			return 1;
		}
		sent = res;
	} else {
		submit(r, 1, 1);
		int res = reap(r, NULL);
		printf("connect: %d\n", res);
		if (res != 0)
			return 1;
	}
	while (sent < bytes) {
		long n = bytes - sent < (long)sizeof(buf) ? bytes - sent : (long)sizeof(buf);
		struct io_uring_sqe *w = sqe(r);
		w->opcode = IORING_OP_SEND;
		w->fd = s;
		w->addr = (unsigned long)buf;
		w->len = (unsigned)n;
		w->user_data = 3;
		submit(r, 1, 1);
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

static int do_sendmsg(struct ring *r, const char *addr, int port, long count, long size)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, addr, &sin.sin_addr);
	char *buf = malloc(size > 0 ? size : 1);
	memset(buf, 'd', size);
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = { .msg_name = &sin, .msg_namelen = sizeof(sin), .msg_iov = &iov, .msg_iovlen = 1 };
	for (long i = 0; i < count; i++) {
		struct io_uring_sqe *e = sqe(r);
		e->opcode = IORING_OP_SENDMSG;
		e->fd = s;
		e->addr = (unsigned long)&msg;
		e->len = 1;
		e->user_data = 10 + i;
		submit(r, 1, 1);
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
	struct ring r;
	if (setup(&r, 8) < 0) {
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
