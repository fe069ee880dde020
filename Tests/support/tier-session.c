/*
 * One scripted session for the cross-tier test (Tests/KernelTests/TierTests.swift, which
 * compiles it with cc and runs it in a session once per sensor tier): every kind of call the
 * tiers hook differently, in a fixed order, so their records can be compared field by field.
 *
 *   tier-session DIR
 *
 * In DIR (which holds a.txt and sub/b.txt): a relative openat, an openat relative to a
 * directory descriptor, open(2), creat(2), openat2(2), a failed openat (ENOENT), an io_uring
 * IORING_OP_OPENAT; a TCP connect to a listener of its own on 127.0.0.1; a UDP datagram sent
 * unconnected (sendto) to a socket of its own; a DNS query for tier.test sent to a server of its
 * own on 127.0.0.77:53, which answers it; then it executes /bin/true. Raw syscalls where glibc
 * would call something else (open, creat, openat2).
 *
 * Then two opens no syscall program decodes, which only the LSM tier records (file.via other):
 * a pty's peer opened by ioctl(TIOCGPTPEER), and on x86_64 an ia32 open(2) of a.txt made with
 * int $0x80 from this 64-bit program (a hostile agent's way past 64-bit syscall hooks), then an
 * ia32 connect(2) of a UDP socket to 127.0.0.1:9. When the kernel has no ia32 emulation (ENOSYS)
 * it writes no ia32.ok in DIR; otherwise it does.
 *
 * Exit status: 0 when every step did what it should, 1 when one did not (on stderr).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uring_ring.h"

static int fail(const char *what)
{
	fprintf(stderr, "tier-session: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void must_open(const char *what, long fd)
{
	if (fd < 0) {
		errno = (int)-fd;
		fail(what);
	}
	close((int)fd);
}

static long sys(long r)
{
	return r < 0 ? -errno : r;
}

/* A socket of type on 127.0.0.1 (or addr) bound to port (0: any), its port in *port. */
static int bound(int type, const char *addr, int port, int *bound_port)
{
	int s = socket(AF_INET, type, 0);
	if (s < 0)
		fail("socket");
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, addr, &a.sin_addr);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		fail("bind");
	socklen_t len = sizeof(a);
	getsockname(s, (struct sockaddr *)&a, &len);
	if (bound_port)
		*bound_port = ntohs(a.sin_port);
	return s;
}

static void files(void)
{
	must_open("openat a.txt", sys(syscall(SYS_openat, AT_FDCWD, "a.txt", O_RDONLY)));
	int dir = open("sub", O_RDONLY | O_DIRECTORY);
	if (dir < 0)
		fail("open sub");
	must_open("openat dirfd b.txt", sys(syscall(SYS_openat, dir, "b.txt", O_RDONLY)));
	close(dir);
#ifdef SYS_open
	must_open("open a.txt", sys(syscall(SYS_open, "a.txt", O_RDONLY)));
#endif
#ifdef SYS_creat
	must_open("creat c.txt", sys(syscall(SYS_creat, "c.txt", 0644)));
#endif
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC };
	must_open("openat2 sub/b.txt", sys(syscall(SYS_openat2, AT_FDCWD, "sub/b.txt", &how, sizeof(how))));
	long missing = sys(syscall(SYS_openat, AT_FDCWD, "missing.txt", O_RDONLY));
	if (missing != -ENOENT) {
		errno = missing < 0 ? (int)-missing : 0;
		fail("openat missing.txt did not fail with ENOENT");
	}

	struct uring r;
	if (uring_setup(&r, 4))
		fail("io_uring_setup");
	struct io_uring_sqe *sqe = uring_sqe(&r);
	sqe->opcode = IORING_OP_OPENAT;
	sqe->fd = AT_FDCWD;
	sqe->addr = (__u64)(uintptr_t)"a.txt";
	sqe->open_flags = O_RDONLY;
	sqe->user_data = 1;
	if (uring_submit(&r, 1) < 0)
		fail("io_uring_enter");
	int res = -EIO;
	__u64 ud = 0;
	uring_wait(&r, &res, &ud);
	must_open("io_uring openat a.txt", res);
	close(r.fd);
}

static void tcp(void)
{
	int port;
	int l = bound(SOCK_STREAM, "127.0.0.1", 0, &port);
	if (listen(l, 1) < 0)
		fail("listen");
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
		fail("connect");
	close(c);
	close(l);
}

static void udp(void)
{
	int port;
	int rx = bound(SOCK_DGRAM, "127.0.0.1", 0, &port);
	int tx = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	static const char payload[100] = "tier";
	if (sendto(tx, payload, sizeof(payload), 0, (struct sockaddr *)&a, sizeof(a)) != sizeof(payload))
		fail("sendto");
	char buf[128];
	if (recv(rx, buf, sizeof(buf), 0) != sizeof(payload))
		fail("recv udp");
	close(tx);
	close(rx);
}

/* A query for tier.test A, id 0x7a11, and the answer 127.0.0.1 to it. */
static void dns(void)
{
	int server = bound(SOCK_DGRAM, "127.0.0.77", 53, NULL);
	int client = socket(AF_INET, SOCK_DGRAM, 0);
	static const unsigned char query[] = {
		0x7a, 0x11, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		4, 't', 'i', 'e', 'r', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1,
	};
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(53) };
	inet_pton(AF_INET, "127.0.0.77", &a.sin_addr);
	if (sendto(client, query, sizeof(query), 0, (struct sockaddr *)&a, sizeof(a)) != sizeof(query))
		fail("sendto dns");
	unsigned char buf[512];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(server, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
	if (n != sizeof(query))
		fail("recvfrom dns query");
	buf[2] = 0x81; /* QR, RD */
	buf[3] = 0x80; /* RA */
	buf[7] = 1;    /* one answer */
	static const unsigned char answer[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1 };
	memcpy(buf + n, answer, sizeof(answer));
	if (sendto(server, buf, (size_t)n + sizeof(answer), 0, (struct sockaddr *)&from, flen) != n + (ssize_t)sizeof(answer))
		fail("sendto dns answer");
	if (recv(client, buf, sizeof(buf), 0) != n + (ssize_t)sizeof(answer))
		fail("recv dns answer");
	close(client);
	close(server);
}

static void beyond(void)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY);
	if (master < 0)
		fail("open /dev/ptmx");
	if (unlockpt(master) < 0)
		fail("unlockpt");
	must_open("ioctl TIOCGPTPEER", sys(ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY)));
	close(master);
#if defined(__x86_64__)
	/* ia32 syscalls take 32-bit pointers: the path in memory below 4 GiB. */
	char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED)
		fail("mmap MAP_32BIT");
	strcpy(low, "a.txt");
	long fd;
	/* ia32 open is 5; int $0x80 clobbers r8-r11 in the kernel's 64-bit entry on some kernels. */
	__asm__ volatile("int $0x80" : "=a"(fd) : "a"(5L), "b"(low), "c"((long)O_RDONLY) : "memory", "r8", "r9", "r10", "r11");
	if (fd == -ENOSYS)
		return;
	must_open("int $0x80 open a.txt", fd);
	/* An ia32 connect(2) (362) of a UDP socket to 127.0.0.1:9: the socket hook records it,
	 * session.end counts it as undecoded. */
	int udp = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in *to = (struct sockaddr_in *)(low + 64);
	to->sin_family = AF_INET;
	to->sin_port = htons(9);
	inet_pton(AF_INET, "127.0.0.1", &to->sin_addr);
	long rc;
	__asm__ volatile("int $0x80" : "=a"(rc) : "a"(362L), "b"((long)udp), "c"(to), "d"((long)sizeof(*to)) : "memory", "r8", "r9", "r10", "r11");
	if (rc != 0) {
		errno = (int)-rc;
		fail("int $0x80 connect");
	}
	close(udp);
	int ok = open("ia32.ok", O_WRONLY | O_CREAT, 0644);
	if (ok < 0)
		fail("open ia32.ok");
	close(ok);
#endif
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: tier-session DIR\n");
		return 1;
	}
	if (chdir(argv[1]) < 0)
		fail("chdir");
	files();
	tcp();
	udp();
	dns();
	beyond();
	execl("/bin/true", "true", (char *)NULL);
	return fail("exec /bin/true");
}
