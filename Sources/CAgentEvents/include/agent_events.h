/*
 * agent_events.h — THE contract between the kernel programs (the .bpf.c files in bpf/) and the daemon.
 *
 * Every record that crosses the ring buffer is defined here, once. The BPF side includes this
 * header after vmlinux.h; Swift imports it as the module CAgentEvents. Fixed-width types,
 * explicit padding and static size asserts keep both sides in agreement; a Swift test checks
 * Swift's sizes and field offsets against the built object's BTF, the layout the programs were
 * compiled with (Tests/AgentCoreTests/RecordLayoutTests.swift).
 *
 * Every record starts with struct agent_hdr; hdr.kind picks the decoder and hdr.size is the
 * whole record, variable tail included. Variable tails are raw bytes, not NUL-terminated;
 * their lengths are fields of the record.
 */
#ifndef AGENTWATCH_AGENT_EVENTS_H
#define AGENTWATCH_AGENT_EVENTS_H

#if !defined(__bpf__)
#include <linux/types.h>
#endif

#define AGENT_ABI_VERSION 1
#define AGENT_COMM_LEN 16
/* Largest path copied for one field (PATH_MAX). */
#define AGENT_PATH_MAX 4096
/* Largest argv area copied for one exec; the runtime bound (setting args_max) is at most this. */
#define AGENT_ARGS_MAX 16384
/* Room for any sockaddr the connect hook copies: sockaddr_un is 110 bytes. */
#define AGENT_SOCKADDR_MAX 112
/* Room for the local address the kernel chose: sockaddr_in6 is 28 bytes. */
#define AGENT_LOCAL_ADDR_MAX 32
/* Session roots the kernel gate can tell apart. */
#define AGENT_MAX_ROOTS 4
/* Session-root patterns (session_roots entries with '*'), their components, and the bytes of
 * the literal text before and after the one '*' a component may hold. */
#define AGENT_MAX_PATTERNS 4
#define AGENT_PATTERN_DEPTH 8
#define AGENT_PATTERN_PART 64

enum agent_kind {
	AGENT_KIND_EXEC = 1,
	AGENT_KIND_FORK = 2,
	AGENT_KIND_EXIT = 3,
	AGENT_KIND_OPEN = 4,
	AGENT_KIND_CONNECT = 5,
	AGENT_KIND_LOSS = 6,
	AGENT_KIND_FLOW = 7,
	AGENT_KIND_CGROUP = 8,
	AGENT_KIND_SEND = 9,  /* unconnected sends, per socket and destination (struct agent_send) */
	AGENT_KIND_DNS = 10,  /* a DNS message a session sent or received (struct agent_dns) */
	/* One past the last kind: sizes the per-kind counters. */
	AGENT_KIND_COUNT = 11,
};

/* hdr.flags */
enum agent_flag {
	AGENT_F_ARGS_TRUNCATED = 1 << 0,  /* argv longer than args_max: the tail is cut */
	AGENT_F_PATH_TRUNCATED = 1 << 1,  /* a path field hit its bound */
	AGENT_F_ADDR_TRUNCATED = 1 << 2,  /* the sockaddr passed to connect was longer than we copy */
	AGENT_F_PATH_IS_BASE = 1 << 3,    /* open failed: path is the directory a relative request was made in */
	AGENT_F_FIXED_FILE = 1 << 4,      /* open (io_uring): into a fixed-file slot, no descriptor: ret is 0 or the slot */
	AGENT_F_RESULT_UNSEEN = 1 << 5,   /* open (io_uring, IOSQE_CQE_SKIP_SUCCESS): written at submission, ret not known */
	AGENT_F_IA32 = 1 << 6,            /* open: an ia32 syscall (a 32-bit program, or int $0x80) */
};

struct agent_hdr {
	__u8 kind;
	__u8 flags;
	__u16 size;         /* whole record in bytes, header and tail included */
	__u32 pid;          /* thread group id: the process */
	__u32 tid;          /* the thread that acted */
	__u32 _pad0;
	__u64 ktime_ns;     /* CLOCK_BOOTTIME at the event */
	__u64 session_cgid; /* cgroup id of the session: the child of a session root */
	__u64 cgroup_id;    /* cgroup id of the task itself: the session or a cgroup nested in it */
};
_Static_assert(sizeof(struct agent_hdr) == 40, "abi: agent_hdr");

/* The largest record there can be: the most hdr.size holds. A program that builds a record with
 * a variable tail asserts that its largest is no larger. */
#define AGENT_RECORD_SIZE_MAX 0xffff
_Static_assert((__typeof__(((struct agent_hdr *)0)->size))~0 == AGENT_RECORD_SIZE_MAX,
	       "abi: AGENT_RECORD_SIZE_MAX is the most hdr.size holds");

/*
 * What a file is, whatever it is called: an open of the same file under another name (a hard
 * link, a bind mount, another mount namespace, /proc/PID/root/...) has the same dev and ino.
 * All 0: not known (a failed open).
 */
struct agent_file_id {
	__u64 ino;     /* inode number (i_ino), as stat(2) shows it */
	__u32 dev;     /* the filesystem's device, the kernel's encoding (major << 20 | minor) */
	__u32 mnt_id;  /* id of the mount it was reached through, as /proc/PID/mountinfo shows it */
};
_Static_assert(sizeof(struct agent_file_id) == 16, "abi: agent_file_id");

/* Identity of a process, read from its task_struct. */
struct agent_proc {
	__u64 start_ns;        /* thread group leader's start, CLOCK_BOOTTIME: pid + start_ns names a process */
	__u64 parent_start_ns; /* the same for the real parent */
	__u32 ppid;            /* real parent's thread group id */
	__u32 uid;             /* real uid */
	__u32 gid;             /* real gid */
	__u32 euid;            /* effective uid */
	__u32 loginuid;        /* audit login uid ((u32)-1 when unset) */
	__u32 sessionid;       /* audit session id ((u32)-1 when unset) */
	char comm[AGENT_COMM_LEN];
};
_Static_assert(sizeof(struct agent_proc) == 56, "abi: agent_proc");

/* sched_process_exec. Tail: filename | exe | cwd | args (argv strings, each NUL-terminated). */
struct agent_exec {
	struct agent_hdr hdr;
	struct agent_proc proc;
	__u32 old_tid;         /* the thread that called execve (differs from pid for a non-leader thread) */
	__u16 filename_len;    /* the name passed to execve, as the kernel got it */
	__u16 exe_len;         /* absolute path of the executed file, resolved by the kernel (0: not known) */
	__u16 cwd_len;         /* absolute working directory (0: not known) */
	__u16 _pad0;
	__u32 args_len;        /* bytes of argv copied */
	__u32 args_size;       /* bytes of the whole argv area: larger than args_len when truncated */
	__u32 argc;            /* argument count as the kernel saw it */
	__u8 stdio_type[3];    /* what descriptors 0, 1, 2 are: enum agent_stdio */
	__u8 _pad1[5];
	__u64 stdin_ino;       /* inode of descriptor 0 when it is a pipe or socket, else 0 */
	__u64 stdout_ino;      /* inode of descriptor 1 when it is a pipe or socket, else 0 */
	struct agent_file_id exe_id; /* the executed file's identity */
	__u32 exe_flags;       /* enum agent_exe_flag */
	__u32 stdin_rdev;      /* device of descriptor 0 when it is a terminal (kernel encoding), else 0 */
	__u8 data[];
};
_Static_assert(sizeof(struct agent_exec) == 168, "abi: agent_exec");

/* What the executed image really is, when it is not an ordinary file on disk. */
enum agent_exe_flag {
	AGENT_EXE_MEMFD = 1 << 0,    /* a memfd (memfd_create): exe is "memfd:NAME" */
	AGENT_EXE_DELETED = 1 << 1,  /* unlinked (no name left on disk): exe ends " (deleted)" */
	AGENT_EXE_ANON = 1 << 2,     /* another file with no path (an internal mount) */
};

/* What a standard descriptor refers to at exec: a shell reading a socket is a reverse shell,
 * a shell reading the pipe a downloader writes is `curl | sh`. */
enum agent_stdio {
	AGENT_STDIO_NONE = 0,   /* not open */
	AGENT_STDIO_FILE = 1,   /* regular file */
	AGENT_STDIO_PIPE = 2,
	AGENT_STDIO_SOCKET = 3,
	AGENT_STDIO_TTY = 4,    /* terminal or pseudo-terminal */
	AGENT_STDIO_CHAR = 5,   /* other character device (/dev/null) */
	AGENT_STDIO_OTHER = 6,  /* directory, block device, anonymous inode */
};

/* sched_process_fork of a new process (threads are not reported). hdr names the parent. */
struct agent_fork {
	struct agent_hdr hdr;
	struct agent_proc proc;  /* the parent */
	__u64 child_start_ns;
	__u32 child_pid;
	__u32 _pad0;
};
_Static_assert(sizeof(struct agent_fork) == 112, "abi: agent_fork");

/* sched_process_exit of the last thread of a process. */
struct agent_exit {
	struct agent_hdr hdr;
	struct agent_proc proc;
	__s32 exit_code;  /* wait(2) status: (code << 8) | signal, core dump bit included */
	__u32 _pad0;
};
_Static_assert(sizeof(struct agent_exit) == 104, "abi: agent_exit");

/*
 * An open (via says how: a syscall at its exit, an io_uring request at its completion). Tail:
 * requested path | path. path is the absolute path of the file the new descriptor (or fixed
 * file) refers to, resolved by the kernel; for a failed open of a relative request it is the
 * directory (dirfd or cwd) the request was relative to (AGENT_F_PATH_IS_BASE).
 * open_by_handle_at has no requested path, and dfd is its mount_fd.
 */
struct agent_open {
	struct agent_hdr hdr;
	__u64 start_ns;        /* the process's start, as in agent_proc */
	__u32 uid;
	__u32 gid;
	__s64 ret;             /* the new fd, or -errno */
	__u64 flags;           /* open flags (O_*) */
	__u32 mode;
	__s32 dfd;             /* dirfd argument (AT_FDCWD = -100) */
	__u16 requested_len;   /* the path argument, as the process passed it */
	__u16 path_len;        /* absolute path of the opened file (0: not resolved) */
	__u8 via;              /* how it was asked: enum agent_open_via */
	__u8 _pad0[3];
	struct agent_file_id id; /* the opened file's identity (0s when the open failed) */
	__u8 data[];
};
_Static_assert(sizeof(struct agent_open) == 104, "abi: agent_open");

/* How an open entered the kernel (file.via). */
enum agent_open_via {
	AGENT_VIA_OPENAT = 0,
	AGENT_VIA_OPENAT2 = 1,
	AGENT_VIA_OPEN = 2,
	AGENT_VIA_CREAT = 3,
	AGENT_VIA_OPEN_BY_HANDLE_AT = 4,
	AGENT_VIA_IO_URING = 5,   /* IORING_OP_OPENAT or IORING_OP_OPENAT2 */
	AGENT_VIA_OTHER = 6,      /* LSM tier: a file opened by no hooked call (ia32, ioctl, ...): ret not known */
};

/* connect at syscall exit. */
struct agent_connect {
	struct agent_hdr hdr;
	__u64 start_ns;
	__u32 uid;
	__u32 gid;
	__s32 ret;             /* 0 or -errno (-EINPROGRESS for a non-blocking socket) */
	__s32 fd;
	__u16 addr_len;        /* bytes of addr copied (the sockaddr passed to connect) */
	__u16 local_len;       /* bytes of local (sockaddr_in/in6 the kernel chose), 0 if none */
	__u16 sock_type;       /* SOCK_STREAM, SOCK_DGRAM, ... (0: not known) */
	__u16 protocol;        /* IPPROTO_TCP, IPPROTO_UDP, ... (0: not known) */
	__u8 addr[AGENT_SOCKADDR_MAX];
	__u8 local[AGENT_LOCAL_ADDR_MAX];
	__u64 cookie;          /* socket cookie of an inet socket whose bytes are counted (0: none) */
	__u8 via;              /* how it entered the kernel: enum agent_connect_via */
	__u8 _pad0[7];
};
_Static_assert(sizeof(struct agent_connect) == 232, "abi: agent_connect");

/* Channels a session used that the programs saw but could not decode into records: counted per
 * session in the undecoded map (key struct agent_undecoded_key), reported in session.end. */
enum agent_undecoded {
	AGENT_UNDECODED_IA32_CONNECT = 0, /* an ia32 connect (connect, or socketcall SYS_CONNECT) */
	AGENT_UNDECODED_COUNT = 1,
};

struct agent_undecoded_key {
	__u64 session;  /* the session's cgroup id */
	__u32 channel;  /* enum agent_undecoded */
	__u32 _pad0;
};

/* How a connect entered the kernel (net.via). */
enum agent_connect_via {
	AGENT_CONNECT_VIA_CONNECT = 0,   /* connect(2): its syscall exit */
	AGENT_CONNECT_VIA_IO_URING = 1,  /* IORING_OP_CONNECT: its completion, or, for a success whose
					  * completion was skipped (IOSQE_CQE_SKIP_SUCCESS), the
					  * socket's first payload or its close */
	AGENT_CONNECT_VIA_OTHER = 2,     /* seen only by the socket hook (cgroup/connect4|6): a
					  * sendto(MSG_FASTOPEN), or a connect(2) made before the
					  * syscall hooks were attached; reported at the socket's
					  * first payload or its close */
};

/*
 * Bytes through a connected inet socket of a session, counted in the kernel per socket (no
 * record per send). Written each time flow_report_bytes more were sent, and once when the
 * socket is released (final). hdr names the process that connected; the daemon joins the
 * record to that connect by cookie.
 */
struct agent_flow {
	struct agent_hdr hdr;
	__u64 cookie;
	__u64 start_ns;        /* start of the process that connected */
	__u64 bytes_sent;      /* payload bytes, IP and TCP/UDP headers excluded; a TCP retransmission counts once */
	__u64 bytes_received;
	__u64 sent_delta;      /* bytes_sent since the previous record of this socket */
	__u64 received_delta;
	__u8 final;            /* 1: the socket was released, this is its last record */
	__u8 _pad0[7];
};
_Static_assert(sizeof(struct agent_flow) == 96, "abi: agent_flow");

/*
 * Datagrams a session socket sent without being connected (UDP sendto/sendmsg/sendmmsg with a
 * destination, raw and ping sockets, the same through io_uring), aggregated in the kernel per
 * socket and destination: counted by the cgroup_skb egress program from the packets themselves,
 * so every way into the kernel is counted. Written at the first datagram to a destination, each
 * time flow_report_bytes more were sent to it, and a last time when the socket is released (or
 * when the socket's table of destinations is full and this one, the least recently used, makes
 * room for another: its aggregate ends there). Never one record per datagram. hdr names the
 * process that last sent on the socket (cgroup/sendmsg4|6) or, before any, the one that made it.
 */
struct agent_send {
	struct agent_hdr hdr;
	__u64 cookie;
	__u64 first_ns;        /* CLOCK_BOOTTIME of the first datagram to this destination */
	__u64 last_ns;         /* and of the last one so far */
	__u64 bytes;           /* payload bytes sent to it, IP and UDP headers excluded */
	__u64 datagrams;       /* datagrams sent to it (a UDP GSO send counts its segments) */
	__u64 bytes_delta;     /* since the previous record of this socket and destination */
	__u64 datagrams_delta;
	__u32 uid;             /* of the process in hdr, when it sent (or made the socket) */
	__u32 gid;
	__u16 family;          /* AF_INET, AF_INET6 */
	__u16 dport;           /* host order; 0 for a protocol without ports (ICMP, raw) */
	__u16 sport;           /* the socket's own port, host order */
	__u16 sock_type;       /* SOCK_DGRAM, SOCK_RAW */
	__u16 protocol;        /* IPPROTO_UDP, IPPROTO_ICMP, ... as the packet carries it */
	__u8 reason;           /* enum agent_send_reason */
	__u8 _pad0[5];
	__u8 daddr[16];        /* the destination (IPv4: the first 4 bytes), from the packet */
	__u8 saddr[16];        /* the source address of the packet */
};
_Static_assert(sizeof(struct agent_send) == 152, "abi: agent_send");

/* Why a net.send record was written. */
enum agent_send_reason {
	AGENT_SEND_FIRST = 1,      /* the first datagram to this destination */
	AGENT_SEND_THRESHOLD = 2,  /* flow_report_bytes more were sent to it */
	AGENT_SEND_FINAL = 3,      /* the socket was released: its last record for this destination */
	AGENT_SEND_EVICTED = 4,    /* its slot was taken by a new destination: the last record of this aggregate */
};

/* Bytes of a DNS message an agent_dns record carries at most; a longer one is cut. */
#define AGENT_DNS_MAX 1024

/*
 * A DNS message a session socket sent to port 53 (a query) or received from it (an answer),
 * UDP or TCP (the message after TCP's 2-byte length, from a segment that starts one), copied
 * by the cgroup_skb programs for the daemon to parse. Tail: the message, len bytes. hdr names
 * the process the socket is counted for (its connect, or its last sender).
 */
struct agent_dns {
	struct agent_hdr hdr;
	__u64 cookie;
	__u16 family;          /* AF_INET, AF_INET6 */
	__u16 sport;           /* the session socket's port, host order */
	__u16 dport;           /* the server's port (53), host order */
	__u8 direction;        /* enum agent_dns_direction */
	__u8 transport;        /* IPPROTO_UDP, IPPROTO_TCP */
	__u16 len;             /* bytes of the message copied (the tail) */
	__u16 msg_len;         /* bytes of the message in the packet: larger than len when cut */
	__u32 _pad0;
	__u8 saddr[16];        /* the session socket's address (IPv4: the first 4 bytes) */
	__u8 daddr[16];        /* the server's address */
	__u8 data[];
};
_Static_assert(sizeof(struct agent_dns) == 96, "abi: agent_dns");

enum agent_dns_direction {
	AGENT_DNS_QUERY = 1,   /* sent by the session's socket */
	AGENT_DNS_ANSWER = 2,  /* received by it, from port 53 */
};

/*
 * Records this CPU could not reserve since its last loss record, per kind. Written into the
 * stream by the next record that fits, so the loss sits where it happened. Its header names no
 * process (pid, tid and cgroups 0). dropped[AGENT_KIND_LOSS] counts loss records that could not
 * be written when due, once until one is: what they would have said is in this one.
 */
struct agent_loss {
	struct agent_hdr hdr;
	__u64 dropped[AGENT_KIND_COUNT];
};
_Static_assert(sizeof(struct agent_loss) == 128, "abi: agent_loss");

/*
 * A cgroup the daemon must look at now (written with a forced wakeup, never a record of the
 * stream): a directory that matches a session-root pattern was made (the kernel added it to
 * the gate's roots already), a session directory was made below such a root, or a process was
 * moved between cgroups (rare: a unit start, `agentwatch run`, an escape). A systemd
 * scope's directory goes the moment its last process exits, often before the daemon can look:
 * the notice carries what the daemon needs to name the session anyway.
 */
enum agent_cgroup_op {
	AGENT_CGROUP_ROOT_ADDED = 1,
	AGENT_CGROUP_SESSION_ADDED = 2,
	/* A process was moved to another cgroup (cgroup_attach_task). The daemon tells a session
	 * process that left its session from an ordinary move. */
	AGENT_CGROUP_MOVED = 3,
};

/* Bytes of a cgroup name or path a notice carries; a longer one sets AGENT_F_PATH_TRUNCATED. */
#define AGENT_CGROUP_NAME 256

struct agent_cgroup {
	struct agent_hdr hdr;
	__u64 cgid;        /* the directory made, or the cgroup a process was moved to */
	__u64 parent_cgid; /* the directory it was made in; MOVED: the session holding cgid (0: none) */
	__u32 op;          /* enum agent_cgroup_op */
	__u32 pattern;     /* index of the session-root pattern it (or its root) matched */
	__u32 uid;         /* real uid of the task that acted: a user's manager for a user scope */
	__u32 moved_pid;   /* MOVED: thread group id of the process moved */
	char comm[AGENT_COMM_LEN]; /* the task that acted */
	__u32 name_len;
	__u32 _pad0;
	char name[AGENT_CGROUP_NAME]; /* the directory's name; MOVED: the cgroup path moved to */
};
_Static_assert(sizeof(struct agent_cgroup) == 352, "abi: agent_cgroup");

/*
 * A session-root pattern as the daemon writes it into .rodata (patterns[]). Component d is
 * matched against the name of the cgroup at level d + 1: exactly `prefix` when `wildcard` is
 * 0, else any name that starts with `prefix` and ends with `suffix` (lengths in bytes).
 */
struct agent_pattern_part {
	__u8 prefix_len;
	__u8 suffix_len;
	__u8 wildcard;
	__u8 _pad[5];
	char prefix[AGENT_PATTERN_PART];
	char suffix[AGENT_PATTERN_PART];
};
_Static_assert(sizeof(struct agent_pattern_part) == 136, "abi: agent_pattern_part");

struct agent_pattern {
	__u32 depth;     /* components: the level of a matching root below the hierarchy root */
	__u32 _pad;
	struct agent_pattern_part parts[AGENT_PATTERN_DEPTH];
};
_Static_assert(sizeof(struct agent_pattern) == 1096, "abi: agent_pattern");

/*
 * Written by the task iterator (not the ring buffer) for every process on the host when the
 * daemon adopts running sessions: the exact start time /proc rounds to clock ticks, so an
 * adopted process gets the same entity id it had under an earlier daemon.
 */
struct agent_task_start {
	__u32 pid;       /* thread group id */
	__u32 ppid;      /* real parent's thread group id */
	__u64 start_ns;  /* CLOCK_BOOTTIME start of the thread group leader */
};
_Static_assert(sizeof(struct agent_task_start) == 16, "abi: agent_task_start");

/* Per-CPU loss accounting (map loss_counters). dropped only grows; reported trails it. */
struct agent_loss_counters {
	__u64 dropped[AGENT_KIND_COUNT];
	__u64 reported[AGENT_KIND_COUNT];
};

#endif /* AGENTWATCH_AGENT_EVENTS_H */
