/*
 * Shared by the benchmark workloads: the run limit (--ops N or --seconds S), the clock, and the
 * one JSON result line every workload prints on stdout:
 *   {"workload":"openat","ops":N,"seconds":S,"ops_per_s":R,"events":E,"port":P}
 * `ops` counts loop iterations; `events` counts the records a tool should produce for them
 * (one per open, exec or connect of the workload's target); `port` is the loopback listener's.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct limit {
	long ops;       /* stop after this many iterations, or */
	double seconds; /* after this long */
};

static inline double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline void die(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	exit(1);
}

/* Takes --ops N or --seconds S off the end of argv; returns the number of arguments left. */
static inline int parse_limit(int argc, char **argv, struct limit *l)
{
	l->ops = 0;
	l->seconds = 0;
	if (argc >= 3 && strcmp(argv[argc - 2], "--ops") == 0)
		l->ops = atol(argv[argc - 1]);
	else if (argc >= 3 && strcmp(argv[argc - 2], "--seconds") == 0)
		l->seconds = atof(argv[argc - 1]);
	if (l->ops <= 0 && l->seconds <= 0) {
		fprintf(stderr, "usage: %s ... (--ops N | --seconds S)\n", argv[0]);
		exit(2);
	}
	return argc - 2;
}

/* True once the limit is reached; the clock is read every `stride` iterations only. */
static inline int done(const struct limit *l, long ops, double start, long stride)
{
	if (l->ops > 0)
		return ops >= l->ops;
	return ops % stride == 0 && now_s() - start >= l->seconds;
}

static inline void report(const char *workload, long ops, double seconds, long events, int port)
{
	printf("{\"workload\":\"%s\",\"ops\":%ld,\"seconds\":%.6f,\"ops_per_s\":%.1f,\"events\":%ld,\"port\":%d}\n",
	       workload, ops, seconds, seconds > 0 ? ops / seconds : 0.0, events, port);
	fflush(stdout);
}

#endif
