/* glibc values that Swift's Glibc module hides behind _GNU_SOURCE, read in a C unit built with it. */
#ifndef AGENTWATCH_CSUPPORT_H
#define AGENTWATCH_CSUPPORT_H

#include "fatal_signals.h"

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

#endif
