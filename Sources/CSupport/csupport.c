#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include "csupport.h"

struct aw_gnu_open_flags aw_gnu_open_flags(void)
{
	struct aw_gnu_open_flags f = {
		.direct = O_DIRECT, .largefile = O_LARGEFILE, .noatime = O_NOATIME,
		.path = O_PATH, .tmpfile = O_TMPFILE & ~O_DIRECTORY,
	};
	return f;
}

const char *aw_errno_name(int e)
{
	return strerrorname_np(e);
}
