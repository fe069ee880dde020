/*
 * fork + exec /bin/true loop: every iteration forks, the child executes /bin/true, the parent
 * waits for it. One expected exec record per iteration.
 *   exec (--ops N | --seconds S)
 */
#include "common.h"
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
	struct limit lim;
	if (parse_limit(argc, argv, &lim) != 1) {
		fprintf(stderr, "usage: exec (--ops N | --seconds S)\n");
		return 2;
	}
	char *const child_argv[] = { "true", NULL };
	long ops = 0;
	double start = now_s();
	while (!done(&lim, ops, start, 1)) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			execve("/bin/true", child_argv, environ);
			_exit(127);
		}
		int status;
		if (waitpid(pid, &status, 0) < 0)
			die("waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "exec: /bin/true failed (status %d)\n", status);
			return 1;
		}
		ops++;
	}
	report("exec", ops, now_s() - start, ops, 0);
	return 0;
}
