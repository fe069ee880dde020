/*
 * Numbers of the kernel's user API that vmlinux.h does not carry: it holds the kernel's types
 * and enums (IPPROTO_TCP, TCP_CLOSE, BPF_ANY are there), not the macros of the uapi headers.
 * Values are the generic ones, the same on every architecture agentwatch builds for.
 */
#ifndef AGENTWATCH_UAPI_BPF_H
#define AGENTWATCH_UAPI_BPF_H

/* include/uapi/asm-generic/errno-base.h, errno.h: compared with -ret of a syscall. */
#define EBADF 9
#define ENOTSOCK 88
#define EINPROGRESS 115

/* include/linux/socket.h: address families. */
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10

/* include/uapi/linux/if_ether.h: skb->protocol, in network byte order there. */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* include/uapi/linux/fcntl.h: the dirfd meaning "relative to the working directory". */
#define AT_FDCWD (-100)

/* include/uapi/asm-generic/fcntl.h: the flags creat(2) opens with. */
#define O_WRONLY 00000001
#define O_CREAT 00000100
#define O_TRUNC 00001000

/* include/uapi/linux/stat.h: file types of i_mode. */
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFCHR 0020000
#define S_IFIFO 0010000

/* include/linux/kdev_t.h: the kernel's dev_t (i_rdev) keeps the minor in its low 20 bits. */
#define MINORBITS 20
/* include/uapi/linux/major.h: terminals. */
#define TTY_MAJOR 4
#define TTYAUX_MAJOR 5
#define UNIX98_PTY_SLAVE_MAJOR 136
#define UNIX98_PTY_MAJOR_COUNT 8

/* include/linux/audit.h: loginuid and sessionid of a task never logged in (AUDIT_UID_UNSET). */
#define AUDIT_UNSET ((__u32)-1)

#endif
