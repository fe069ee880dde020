/*
 * openat + close loop.
 *   openat path  PATH (--ops N | --seconds S)   openat(AT_FDCWD, PATH)
 *   openat dirfd PATH (--ops N | --seconds S)   openat(dirfd of PATH's directory, PATH's name)
 * Every iteration is one openat (one expected record) and one close.
 */
#include "common.h"
#include <fcntl.h>
#include <libgen.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct limit lim;
	argc = parse_limit(argc, argv, &lim);
	if (argc != 3) {
		fprintf(stderr, "usage: openat path|dirfd PATH (--ops N | --seconds S)\n");
		return 2;
	}
	const char *mode = argv[1];
	int dirfd = AT_FDCWD;
	const char *name = argv[2];
	if (strcmp(mode, "dirfd") == 0) {
		char *dir = strdup(argv[2]), *base = strdup(argv[2]);
		dirfd = open(dirname(dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			die("open directory");
		name = basename(base);
	} else if (strcmp(mode, "path") != 0) {
		fprintf(stderr, "openat: unknown mode %s\n", mode);
		return 2;
	}

	long ops = 0;
	double start = now_s();
	while (!done(&lim, ops, start, 256)) {
		int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die("openat");
		close(fd);
		ops++;
	}
	report("openat", ops, now_s() - start, ops, 0);
	return 0;
}
