/* glibc values that Swift's Glibc module hides behind _GNU_SOURCE, read in a C unit built with it. */
#ifndef AGENTWATCH_CSUPPORT_H
#define AGENTWATCH_CSUPPORT_H

#include "fatal_signals.h"
#include "file_identity.h"

/* Open flags that are GNU extensions, with this architecture's values. */
struct aw_gnu_open_flags {
	int direct, largefile, noatime, path, tmpfile;
};
struct aw_gnu_open_flags aw_gnu_open_flags(void);

/* "ENOENT" for ENOENT; NULL for a value glibc has no name for. */
const char *aw_errno_name(int e);


/* The pid, uid and gid of a unix socket's peer (SO_PEERCRED), as the kernel recorded them at
 * connect. 0 on success, -1 with errno set. */
int aw_peer_cred(int fd, int *pid, unsigned *uid, unsigned *gid);


/* sendmmsg(2) of up to 64 datagrams, one iovec each (the Glibc module does not show the GNU
 * struct mmsghdr). Returns how many were sent, or -1 with errno set. */
struct iovec;
int aw_send_datagrams(int fd, const struct iovec *iov, unsigned n, int flags);

/* A pidfd for a unix socket's peer process (SO_PEERPIDFD, Linux 6.5+; the value is defined here
 * when the C library lacks it), close-on-exec. Returns the fd, or -1 with errno set (ENOPROTOOPT
 * on an older kernel). */
int aw_peer_pidfd(int fd);

/* pidfd_open(2) of `pid`, close-on-exec by the kernel's rule. The fd, or -1 with errno set. */
int aw_pidfd_open(int pid);

/* pidfd_send_signal(2) of `sig` (0: only "is it still alive") with no siginfo and no flags.
 * 0 on success, -1 with errno set (ESRCH once the process has exited). */
int aw_pidfd_send_signal(int pidfd, int sig);

/* accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC (a GNU name the Glibc module hides): the fd, or
 * -1 with errno set. */
int aw_accept_nonblock(int fd);

/* Gives the memory glibc's arenas hold free back to the kernel (malloc_trim(0), in <malloc.h>,
 * which the Glibc module does not show). */
void aw_release_free_memory(void);

#endif
