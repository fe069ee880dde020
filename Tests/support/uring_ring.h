/*
 * A minimal io_uring ring on the raw syscalls (io_uring_setup, io_uring_enter, mmap), no
 * liburing: what a test or a workload needs to submit a few operations and reap their
 * completions, one at a time. Shared by Tests/support/open-family.c, Tests/support/net_sends.c
 * and bench/workloads/uring_open.c; the operations themselves (opens, connects, sends) are theirs.
 *
 *   uring_setup(&r, entries)   the ring, or -1 with errno
 *   uring_sqe(&r)              the next SQE, zeroed, queued (not yet seen by the kernel)
 *   uring_submit(&r, wait)     submits what was queued, waiting for `wait` completions
 *   uring_wait(&r, &res, &ud)  takes the next completion, waiting for it if none is there
 *
 * No check that the submission queue has room: the users queue a few entries, submit them and
 * reap their completions before they queue more.
 */
#ifndef URING_RING_H
#define URING_RING_H

#include <errno.h>
#include <linux/io_uring.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct uring {
	int fd;
	unsigned sqe_tail; /* queued up to here; *sq_tail (what the kernel sees) follows at submit */
	unsigned *sq_tail, *sq_mask, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

/*
 * 0, or -1 with errno set. What was created before a failure stays (the callers exit): so does
 * the descriptor.
 */
static inline int uring_setup(struct uring *r, unsigned entries)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
	if (r->fd < 0)
		return -1;
	size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	int single = p.features & IORING_FEAT_SINGLE_MMAP;
	/* One mapping holds both rings (every kernel since 5.4): it must be the larger size. */
	if (single && cq_len > sq_len)
		sq_len = cq_len;
	char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return -1;
	char *cq = sq;
	if (!single) {
		cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (cq == MAP_FAILED)
			return -1;
	}
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED)
		return -1;
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	r->sqe_tail = *r->sq_tail;
	return 0;
}

/* The next SQE, zeroed, for the caller to fill; uring_submit() hands it to the kernel. */
static inline struct io_uring_sqe *uring_sqe(struct uring *r)
{
	unsigned i = r->sqe_tail++ & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[i];

	memset(sqe, 0, sizeof(*sqe));
	r->sq_array[i] = i;
	return sqe;
}

/*
 * Submits the SQEs queued since the last submit and, when `wait` is not 0, waits until that
 * many completions are posted: the number submitted, or -1 with errno (io_uring_enter's).
 */
static inline int uring_submit(struct uring *r, unsigned wait)
{
	unsigned n = r->sqe_tail - *r->sq_tail;

	/* Release: the kernel reads the entries once it sees the tail, they must be filled by then. */
	__atomic_store_n(r->sq_tail, r->sqe_tail, __ATOMIC_RELEASE);
	return (int)syscall(__NR_io_uring_enter, r->fd, n, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
}

/*
 * Takes the next completion, waiting for one only if none is posted yet: 0 with its result in
 * *res and its user_data in *user_data (unless NULL), or -1 with errno when the wait fails.
 */
static inline int uring_wait(struct uring *r, int *res, __u64 *user_data)
{
	unsigned head = *r->cq_head; /* only this side moves the head */

	while (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
		if (syscall(__NR_io_uring_enter, r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0 && errno != EINTR)
			return -1;
	}
	struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
	*res = cqe->res;
	if (user_data)
		*user_data = cqe->user_data;
	/* Release: the entry is read before the kernel may reuse its slot. */
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return 0;
}

#endif
