/*
 * Opens a file each way the kernel has, for the kernel tests (Tests/KernelTests/
 * OpenFamilyTests.swift, which compile it with cc). The syscalls are made raw: glibc's open()
 * and creat() call openat, and io_uring is driven with io_uring_setup, io_uring_enter and
 * mmap (no liburing: the ring is uring_ring.h, next to this file).
 *
 *   open-family open PATH [PATH...]  open(2) O_RDONLY each, reading a byte
 *   open-family creat PATH           creat(2), mode 0644
 *   open-family handle PATH [gone]   name_to_handle_at, then open_by_handle_at(42, handle,
 *                                    O_RDONLY): the mount_fd is descriptor 42, PATH's
 *                                    directory (a handle is decoded by the file system of
 *                                    mount_fd: / may be another). gone: PATH is unlinked in
 *                                    between (ESTALE)
 *   open-family uring PATH [openat2] [async] [slot] [alloc] [skip]
 *                                    one IORING_OP_OPENAT (openat2: OPENAT2) of PATH O_RDONLY,
 *                                    then a read of it. async: IOSQE_ASYNC (an io-wq worker
 *                                    opens it); slot: into fixed-file slot 1; alloc: into a
 *                                    slot the kernel picks; skip: IOSQE_CQE_SKIP_SUCCESS (with
 *                                    slot or alloc: the read of the fixed file is linked)
 *   open-family statx PATH           prints "INO MAJOR:MINOR MNT_ID" of PATH (statx)
 *
 * Exit status: 0 when every open succeeded, 2 when one failed (its -errno on stderr), 1 when
 * the test could not be set up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "uring_ring.h"

static int fail(const char *what)
{
	perror(what);
	return 1;
}

/* The result of an open: 0 when it gave a descriptor (or slot), 2 when it failed. */
static int opened(const char *how, long r)
{
	if (r < 0) {
		fprintf(stderr, "%s: %ld\n", how, r);
		return 2;
	}
	printf("%s %ld\n", how, r);
	return 0;
}

static long sys_ret(long r)
{
	return r < 0 ? -errno : r;
}

static int read_byte(int fd)
{
	char c;
	return read(fd, &c, 1) < 0 ? fail("read") : 0;
}

static int do_open(int argc, char **argv)
{
	int status = 0;
	for (int i = 2; i < argc; i++) {
#ifdef SYS_open
		long fd = sys_ret(syscall(SYS_open, argv[i], O_RDONLY));
#else
		long fd = -ENOSYS;
#endif
		int s = opened("open", fd);
		if (s == 0)
			s = read_byte((int)fd);
		if (s)
			status = s;
	}
	return status;
}

static int do_creat(const char *path)
{
#ifdef SYS_creat
	long fd = sys_ret(syscall(SYS_creat, path, 0644));
#else
	long fd = -ENOSYS;
#endif
	return opened("creat", fd);
}

static int do_handle(const char *path, int gone)
{
	struct file_handle *fh = malloc(sizeof(*fh) + MAX_HANDLE_SZ);
	if (!fh)
		return fail("malloc");
	fh->handle_bytes = MAX_HANDLE_SZ;
	int mount_id;
	if (name_to_handle_at(AT_FDCWD, path, fh, &mount_id, 0) < 0)
		return fail("name_to_handle_at");
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", path);
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	else
		snprintf(parent, sizeof(parent), ".");
	int dir = open(parent, O_RDONLY | O_DIRECTORY);
	if (dir < 0 || dup2(dir, 42) < 0)
		return fail("mount_fd");
	if (gone && unlink(path) < 0)
		return fail("unlink");
	long fd = sys_ret(syscall(SYS_open_by_handle_at, 42, fh, O_RDONLY));
	int s = opened("open_by_handle_at", fd);
	return s == 0 ? read_byte((int)fd) : s;
}

static int do_uring(int argc, char **argv)
{
	const char *path = argv[2];
	int openat2 = 0, async = 0, slot = 0, alloc = 0, skip = 0;
	for (int i = 3; i < argc; i++) {
		openat2 |= !strcmp(argv[i], "openat2");
		async |= !strcmp(argv[i], "async");
		slot |= !strcmp(argv[i], "slot");
		alloc |= !strcmp(argv[i], "alloc");
		skip |= !strcmp(argv[i], "skip");
	}
	int fixed = slot || alloc;
	if (skip && !fixed) {
		fprintf(stderr, "skip needs slot or alloc: nothing would tell when the open is done\n");
		return 1;
	}
	struct uring r;
	if (uring_setup(&r, 8))
		return fail("io_uring_setup");
	if (fixed) {
		int fds[4] = { -1, -1, -1, -1 };
		if (syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_FILES, fds, 4) < 0)
			return fail("IORING_REGISTER_FILES");
	}
	static struct open_how how = { .flags = O_RDONLY };
	struct io_uring_sqe *sqe = uring_sqe(&r);
	sqe->opcode = openat2 ? IORING_OP_OPENAT2 : IORING_OP_OPENAT;
	sqe->fd = AT_FDCWD;
	sqe->addr = (__u64)(uintptr_t)path;
	if (openat2) {
		sqe->addr2 = (__u64)(uintptr_t)&how;
		sqe->len = sizeof(how);
	} else {
		sqe->open_flags = O_RDONLY;
	}
	if (slot)
		sqe->file_index = 2; /* slot 1 */
	if (alloc)
		sqe->file_index = IORING_FILE_INDEX_ALLOC;
	sqe->flags = (async ? IOSQE_ASYNC : 0) | (skip ? IOSQE_CQE_SKIP_SUCCESS : 0) | (skip && fixed ? IOSQE_IO_LINK : 0);
	sqe->user_data = 1;
	static char buf[64];
	unsigned n = 1;
	if (skip && fixed) {
		/* The read of the fixed file, run once the open is done. */
		struct io_uring_sqe *rd = uring_sqe(&r);
		rd->opcode = IORING_OP_READ;
		rd->fd = alloc ? 0 : 1;
		rd->flags = IOSQE_FIXED_FILE;
		rd->addr = (__u64)(uintptr_t)buf;
		rd->len = sizeof(buf);
		rd->user_data = 2;
		n = 2;
	}
	if (uring_submit(&r, 0) != (int)n)
		return fail("io_uring_enter submit");
	int res;
	__u64 ud;
	if (uring_wait(&r, &res, &ud))
		return fail("io_uring_enter wait");
	if (skip && fixed) {
		/* The open posts nothing when it succeeds: the first completion is the read's. */
		if (ud == 1)
			return opened("uring", res);
		printf("uring skip read %d\n", res);
		return res < 0 ? 2 : 0;
	}
	int s = opened("uring", res);
	if (s)
		return s;
	if (!fixed)
		return read_byte(res);
	/* Read the fixed file through the ring. */
	struct io_uring_sqe *rd = uring_sqe(&r);
	rd->opcode = IORING_OP_READ;
	rd->fd = alloc ? res : 1;
	rd->flags = IOSQE_FIXED_FILE;
	rd->addr = (__u64)(uintptr_t)buf;
	rd->len = sizeof(buf);
	rd->user_data = 2;
	if (uring_submit(&r, 0) != 1)
		return fail("io_uring_enter submit");
	if (uring_wait(&r, &res, &ud))
		return fail("io_uring_enter wait");
	printf("uring read %d\n", res);
	return res < 0 ? 2 : 0;
}

static int do_statx(const char *path)
{
	struct statx st;
	if (statx(AT_FDCWD, path, 0, STATX_INO | STATX_MNT_ID, &st) < 0)
		return fail("statx");
	printf("%llu %u:%u %llu\n", (unsigned long long)st.stx_ino, st.stx_dev_major, st.stx_dev_minor,
	       (unsigned long long)st.stx_mnt_id);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: open-family open|creat|handle|uring|statx PATH ...\n");
		return 1;
	}
	const char *how = argv[1];
	if (!strcmp(how, "open"))
		return do_open(argc, argv);
	if (!strcmp(how, "creat"))
		return do_creat(argv[2]);
	if (!strcmp(how, "handle"))
		return do_handle(argv[2], argc > 3 && !strcmp(argv[3], "gone"));
	if (!strcmp(how, "uring"))
		return do_uring(argc, argv);
	if (!strcmp(how, "statx"))
		return do_statx(argv[2]);
	fprintf(stderr, "unknown way %s\n", how);
	return 1;
}
