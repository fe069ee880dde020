#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
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
