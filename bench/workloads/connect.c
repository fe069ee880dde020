/*
 * Loopback connect loop against the workload's own listener. One expected connect record per
 * iteration (destination 127.0.0.1, the port printed in the result line).
 *   connect (--ops N | --seconds S)
 */
#include "loopback.h"

int main(int argc, char **argv)
{
	struct limit lim;
	if (parse_limit(argc, argv, &lim) != 1) {
		fprintf(stderr, "usage: connect (--ops N | --seconds S)\n");
		return 2;
	}
	struct loopback lb;
	loopback_listen(&lb);
	long ops = 0;
	double start = now_s();
	while (!done(&lim, ops, start, 16)) {
		loopback_connect_once(&lb);
		ops++;
	}
	report("connect", ops, now_s() - start, ops, loopback_port(&lb));
	return 0;
}
