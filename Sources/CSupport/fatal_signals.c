#define _GNU_SOURCE
#include "fatal_signals.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int fatal[] = {
	SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGUSR1, SIGUSR2, SIGALRM,
	SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSYS,
};
#define NFATAL (sizeof(fatal) / sizeof(fatal[0]))

static struct sigaction previous[NSIG];
static char prefix_text[64];

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		buf[at++] = *s++;
	return at;
}

static void on_fatal(int sig)
{
	/* Only async-signal-safe calls: write(2), sigaction(2), raise(3). */
	char line[160], digits[12];
	size_t n = 0, d = 0;
	int v = sig;
	do {
		digits[d++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && d < sizeof(digits));
	n = append(line, n, sizeof(line), prefix_text);
	n = append(line, n, sizeof(line), ": terminated by signal ");
	while (d && n < sizeof(line))
		line[n++] = digits[--d];
	const char *name = sigabbrev_np(sig);
	if (name) {
		n = append(line, n, sizeof(line), " (SIG");
		n = append(line, n, sizeof(line), name);
		n = append(line, n, sizeof(line), ")");
	}
	n = append(line, n, sizeof(line) - 1, ": no agent.stop is written; the next start reports this run as unclean");
	line[n++] = '\n';
	ssize_t unused = write(STDERR_FILENO, line, n);
	(void)unused;
	/* Blocked while this handler runs: delivered to the previous handler when it returns (a
	 * fault re-executes and faults again there). */
	sigaction(sig, &previous[sig], NULL);
	raise(sig);
}

int aw_log_fatal_signals(const char *prefix)
{
	strncpy(prefix_text, prefix, sizeof(prefix_text) - 1);
	/* A stack of its own, so a stack overflow is reported too. */
	static char altstack[64 * 1024];
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack), .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) != 0)
		return -1;
	for (size_t i = 0; i < NFATAL; i++) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_fatal;
		sa.sa_flags = SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		if (sigaction(fatal[i], &sa, &previous[fatal[i]]) != 0)
			return -1;
	}
	return 0;
}
