/*
 * Unconnected UDP send loop: each iteration is one sendto(2) of a 512-byte datagram to the
 * workload's own loopback receiver (never connected, so no connect record exists for it). One
 * expected datagram per iteration, counted by a tool in its send records; the receiver drains
 * nothing (the datagrams that overflow its buffer are dropped by the kernel after they were sent).
 *   udp_send (--ops N | --seconds S)
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define DATAGRAM 512

int main(int argc, char **argv)
{
	struct limit lim;
	if (parse_limit(argc, argv, &lim) != 1) {
		fprintf(stderr, "usage: udp_send (--ops N | --seconds S)\n");
		return 2;
	}
	int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (rx < 0)
		die("socket");
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(rx, (struct sockaddr *)&to, sizeof(to)) < 0)
		die("bind");
	socklen_t len = sizeof(to);
	if (getsockname(rx, (struct sockaddr *)&to, &len) < 0)
		die("getsockname");
	int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (tx < 0)
		die("socket");
	char payload[DATAGRAM];
	memset(payload, 'u', sizeof(payload));
	long ops = 0;
	double start = now_s();
	while (!done(&lim, ops, start, 256)) {
		if (sendto(tx, payload, sizeof(payload), 0, (struct sockaddr *)&to, sizeof(to)) != sizeof(payload))
			die("sendto");
		ops++;
	}
	double seconds = now_s() - start;
	/* The final send record is written when the socket is released. */
	close(tx);
	close(rx);
	report("udp_send", ops, seconds, ops, ntohs(to.sin_port));
	return 0;
}
