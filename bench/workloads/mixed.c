/*
 * An agent-like mix. Every iteration: clone a local git repository, grep the clone, compile a
 * small C file, make a few loopback connections, remove the clone. An iteration is one op; the
 * expected records are the connects to the workload's listener (CONNECTS per iteration): the
 * rest (execs, opens) varies with git and the compiler and is reported, not expected.
 *   mixed REPO CSOURCE WORKDIR (--ops N | --seconds S)
 */
#include "loopback.h"
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#define CONNECTS 4

extern char **environ;

/* Runs argv to completion with its stdout discarded (the workload's stdout carries only the
 * result line); exit statuses up to max_ok count as success (grep: 1 = no match). */
static void run(char *const argv[], int max_ok)
{
	posix_spawn_file_actions_t quiet;
	posix_spawn_file_actions_init(&quiet);
	posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int err = posix_spawnp(&pid, argv[0], &quiet, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&quiet);
	if (err) {
		errno = err;
		die(argv[0]);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) > max_ok) {
		fprintf(stderr, "mixed: %s failed (status %d)\n", argv[0], status);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct limit lim;
	if (parse_limit(argc, argv, &lim) != 4) {
		fprintf(stderr, "usage: mixed REPO CSOURCE WORKDIR (--ops N | --seconds S)\n");
		return 2;
	}
	char *repo = argv[1], *csource = argv[2], *workdir = argv[3];
	char clone[4096], object[4096];
	snprintf(clone, sizeof(clone), "%s/clone", workdir);
	snprintf(object, sizeof(object), "%s/unit.o", workdir);

	struct loopback lb;
	loopback_listen(&lb);
	long ops = 0;
	double start = now_s();
	while (!done(&lim, ops, start, 1)) {
		run((char *const[]){ "git", "clone", "--quiet", "--no-hardlinks", repo, clone, NULL }, 0);
		run((char *const[]){ "grep", "-r", "-c", "-I", "TODO", clone, NULL }, 1);
		run((char *const[]){ "cc", "-O1", "-c", csource, "-o", object, NULL }, 0);
		for (int i = 0; i < CONNECTS; i++)
			loopback_connect_once(&lb);
		run((char *const[]){ "rm", "-rf", clone, object, NULL }, 0);
		ops++;
	}
	report("mixed", ops, now_s() - start, ops * CONNECTS, loopback_port(&lb));
	return 0;
}
