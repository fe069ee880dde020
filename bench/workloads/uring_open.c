/*
 * io_uring open + close loop: each iteration submits one IORING_OP_OPENAT of PATH and waits for
 * its completion, then closes the descriptor with close(2). No openat(2) is made: a tool that
 * hooks only the open syscalls sees nothing. One expected record per iteration.
 *   uring_open PATH (--ops N | --seconds S)
 * The ring is Tests/support/uring_ring.h: raw syscalls (io_uring_setup, io_uring_enter, mmap), no
 * liburing.
 */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

/* Relative to this file, so the bench's plain `cc FILE.c` finds it from any checkout. */
#include "../../Tests/support/uring_ring.h"

/* Submits one open of path and waits for it: the new descriptor, or -errno. */
static int ring_open(struct uring *r, const char *path)
{
	struct io_uring_sqe *sqe = uring_sqe(r);
	sqe->opcode = IORING_OP_OPENAT;
	sqe->fd = AT_FDCWD;
	sqe->addr = (unsigned long)path;
	sqe->open_flags = O_RDONLY | O_CLOEXEC;
	if (uring_submit(r, 1) < 0)
		die("io_uring_enter");
	/* Already posted (the submit waited for it): no second io_uring_enter. */
	int res;
	if (uring_wait(r, &res, NULL) < 0)
		die("io_uring_enter wait");
	return res;
}

int main(int argc, char **argv)
{
	struct limit lim;
	argc = parse_limit(argc, argv, &lim);
	if (argc != 2) {
		fprintf(stderr, "usage: uring_open PATH (--ops N | --seconds S)\n");
		return 2;
	}
	struct uring r;
	if (uring_setup(&r, 4) < 0)
		die("io_uring_setup");
	long ops = 0;
	double start = now_s();
	while (!done(&lim, ops, start, 256)) {
		int fd = ring_open(&r, argv[1]);
		if (fd < 0) {
			errno = -fd;
			die("io_uring openat");
		}
		close(fd);
		ops++;
	}
	report("uring_open", ops, now_s() - start, ops, 0);
	return 0;
}
