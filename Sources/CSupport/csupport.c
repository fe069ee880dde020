#define _GNU_SOURCE
#include <malloc.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "csupport.h"

struct aw_gnu_open_flags aw_gnu_open_flags(void)
{
	struct aw_gnu_open_flags f = {
		/* glibc defines O_LARGEFILE as 0 on 64-bit; the kernel's bit is what a 32-bit
		 * program passes, so name that (asm-generic: 0100000; arm64: 0400000). */
#if defined(__aarch64__)
		.direct = O_DIRECT, .largefile = 0400000, .noatime = O_NOATIME,
#else
		.direct = O_DIRECT, .largefile = 0100000, .noatime = O_NOATIME,
#endif
		.path = O_PATH, .tmpfile = O_TMPFILE & ~O_DIRECTORY,
	};
	return f;
}

const char *aw_errno_name(int e)
{
	return strerrorname_np(e);
}

int aw_peer_cred(int fd, int *pid, unsigned *uid, unsigned *gid)
{
	struct ucred c;
	socklen_t len = sizeof(c);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0)
		return -1;
	*pid = c.pid;
	*uid = c.uid;
	*gid = c.gid;
	return 0;
}

int aw_send_datagrams(int fd, const struct iovec *iov, unsigned n, int flags)
{
	struct mmsghdr msgs[64];
	if (n > 64)
		n = 64;
	memset(msgs, 0, sizeof(msgs[0]) * n);
	for (unsigned i = 0; i < n; i++) {
		msgs[i].msg_hdr.msg_iov = (struct iovec *)&iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	return sendmmsg(fd, msgs, n, flags);
}

/* asm-generic and x86 value; alpha, mips, parisc and sparc number socket options differently,
 * and their C libraries define it where their kernels have it. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

int aw_peer_pidfd(int fd)
{
	int pidfd = -1;
	socklen_t len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0)
		return -1;
	return pidfd;
}

int aw_pidfd_open(int pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int aw_pidfd_send_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int aw_accept_nonblock(int fd)
{
	return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void aw_release_free_memory(void)
{
	malloc_trim(0);
}
