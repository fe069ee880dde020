/*
 * Sockets as the net programs see them: the maps they share (connect(2) in flight, connects no
 * syscall exit reports, io_uring connects in flight, unconnected sends) and what they read of a
 * socket. Used by net.bpf.c (connect(2)), uring_net.bpf.c (IORING_OP_CONNECT) and flow.bpf.c
 * (the cgroup socket hooks).
 */
#ifndef AGENTWATCH_NET_BPF_H
#define AGENTWATCH_NET_BPF_H

#include "common.bpf.h"

/* connect(2) between its syscall entry and exit, by thread (net.bpf.c). The socket hook
 * (cgroup/connect4|6) tells a connect(2), which its syscall exit reports, from every other way
 * into the kernel by it. */
/*
 * Copies a sockaddr of len bytes (its first AGENT_SOCKADDR_MAX) from the caller's memory, or
 * the kernel's, into dst; returns the length to record (0 for a negative one).
 */
static __always_inline __u32 copy_sockaddr(__u8 *dst, const void *src, int len, bool user)
{
	__u32 copy = len < 0 ? 0 : (__u32)len;
	if (copy > AGENT_SOCKADDR_MAX)
		copy = AGENT_SOCKADDR_MAX;
	/* Keep the bound where the verifier sees it. */
	barrier_var(copy);
	if (copy > AGENT_SOCKADDR_MAX)
		return 0;
	if (copy > 0) {
		if (user)
			bpf_probe_read_user(dst, copy, src);
		else
			bpf_probe_read_kernel(dst, copy, src);
	}
	return len < 0 ? 0 : (__u32)len;
}

struct connect_args {
	__u8 addr[AGENT_SOCKADDR_MAX];
	__u32 addr_len; /* bytes the process passed */
	__s32 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct connect_args);
} connect_inflight SEC(".maps") __weak;

/*
 * An IORING_OP_CONNECT between its submission and its completion, by request (uring_net.bpf.c):
 * the address as the process passed it, read at submission as connect(2)'s is at entry, and the
 * submitter, which the completion (in a worker, or task work) may not run as. LRU, and only
 * 4096 connects are ever in flight at once in practice: an inet connect whose entry was evicted
 * is still reported, from the socket hook's pending connect; a unix one is counted as lost.
 */
struct uring_connect {
	__u8 addr[AGENT_SOCKADDR_MAX];
	__u32 addr_len;
	__s32 fd;              /* the descriptor, or the registered file's index (fixed) */
	__u64 session_cgid;
	__u64 cgroup_id;
	__u64 start_ns;
	__u64 submit_ns;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 gid;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct uring_connect);
} uring_connects SEC(".maps") __weak;

/* The io_uring connect a thread submitted last, for the socket hook when the connect is issued
 * in the submitting thread (the usual case): it then knows the connect came through io_uring. */
struct uring_issue {
	__u64 req;
	__u64 submit_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct uring_issue);
} uring_issuing SEC(".maps") __weak;

/* How long after its submission an io_uring connect is taken to be the one the socket hook sees
 * in the same thread: the issue follows the submission at once. */
#define URING_ISSUE_NS (100ULL * 1000 * 1000)

/*
 * Connects no syscall exit reports, by socket cookie: seen by cgroup/connect4|6 while an
 * IORING_OP_CONNECT's completion may never come (IOSQE_CQE_SKIP_SUCCESS), or on a path with no
 * hook of its own (sendto(MSG_FASTOPEN), a connect(2) before the syscall hooks were attached).
 * The record waits here with what the socket hook saw; whoever reports first (the io_uring
 * completion, the socket's first payload, its close) claims it (state 0 -> 1), so it is written
 * once. LRU: an entry nobody claims (a connect reported by its completion keeps none) cannot
 * fill the map; one evicted before it was reported is counted as a lost connect record when
 * its socket's first payload or close finds it gone (report_deferred).
 */
struct pending_connect {
	struct agent_connect c;
	__u32 state;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pending_connect);
} pending_connects SEC(".maps") __weak;

/*
 * Unconnected sends, per socket (by cookie) and destination: made at socket creation
 * (cgroup/sock_create: datagram and raw sockets) or at the first sendmsg with a destination,
 * counted by the egress program, reported and removed at release (flow.bpf.c). Not LRU: an
 * eviction would lose what was counted since the last record without a trace. When the map is
 * full a socket is not aggregated, and each packet it sends is counted as a lost send record
 * (count_drop), so agent.loss says how many went unreported.
 */
#define SEND_DESTS 8
struct send_dest {
	__u64 addr[2];  /* IPv4: the first 4 bytes */
	__u64 saddr[2];
	__u16 port;     /* host order */
	__u16 family;
	__u16 sport;
	__u8 protocol;
	__u8 _pad;
	__u64 first_ns;
	__u64 last_ns;
	__u64 bytes;
	__u64 datagrams;
	__u64 reported_bytes;
	__u64 reported_datagrams;
};

/* The socket's owner: the process that last sent on it, or the one that made it. */
#define SEND_SOCK_OWNER          \
	__u32 pid;               \
	__u32 tid;               \
	__u32 uid;               \
	__u32 gid;               \
	__u64 session_cgid;      \
	__u64 cgroup_id;         \
	__u16 sock_type;         \
	__u16 _pad[3];

struct send_sock {
	struct bpf_spin_lock lock;
	__u32 _pad0;
	SEND_SOCK_OWNER
	struct send_dest dest[SEND_DESTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct send_sock);
} send_socks SEC(".maps") __weak;

/* A new send_sock is built here, not on the stack (it is larger than the stack): the same
 * layout, with room where the lock is (a per-CPU map may not hold one). */
struct send_sock_init {
	__u32 lock;
	__u32 _pad0;
	SEND_SOCK_OWNER
	struct send_dest dest[SEND_DESTS];
};
_Static_assert(sizeof(struct send_sock_init) == sizeof(struct send_sock), "send_sock_init mirrors send_sock");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct send_sock_init);
} send_sock_template SEC(".maps") __weak;

/* The struct socket behind file, or NULL: a socket file's private_data. */
static __always_inline struct socket *socket_of_file(struct file *file)
{
	return file ? BPF_CORE_READ(file, private_data) : NULL;
}

/* The local address the kernel chose for the socket, as a sockaddr_in or sockaddr_in6. */
static __always_inline __u16 local_address(const struct sock *sk, __u8 *out)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
	__be16 nport = __builtin_bswap16(port);
	if (family == AF_INET) {
		struct sockaddr_in sin = {};
		sin.sin_family = AF_INET;
		sin.sin_port = nport;
		sin.sin_addr.s_addr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(out, &sin, sizeof(sin));
		return sizeof(sin);
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 sin6 = {};
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = nport;
		BPF_CORE_READ_INTO(&sin6.sin6_addr, sk, __sk_common.skc_v6_rcv_saddr);
		__builtin_memcpy(out, &sin6, sizeof(sin6));
		return sizeof(sin6);
	}
	return 0;
}

/* A sockaddr_in or sockaddr_in6 for family, address (network order) and port (host order). */
static __always_inline __u16 make_sockaddr(__u8 *out, __u16 family, const __u64 *addr, __u16 port)
{
	if (family == AF_INET) {
		struct sockaddr_in sin = {};
		sin.sin_family = AF_INET;
		sin.sin_port = __builtin_bswap16(port);
		sin.sin_addr.s_addr = (__u32)addr[0];
		__builtin_memcpy(out, &sin, sizeof(sin));
		return sizeof(sin);
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 sin6 = {};
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = __builtin_bswap16(port);
		__builtin_memcpy(&sin6.sin6_addr, addr, 16);
		__builtin_memcpy(out, &sin6, sizeof(sin6));
		return sizeof(sin6);
	}
	return 0;
}

/* The socket type, protocol and local address of sk into c. */
static __always_inline void describe_socket(struct agent_connect *c, const struct sock *sk)
{
	c->sock_type = BPF_CORE_READ(sk, sk_type);
	c->protocol = BPF_CORE_READ(sk, sk_protocol);
	c->local_len = local_address(sk, c->local);
}

/*
 * Starts counting bytes for a connected (or connecting) inet socket. The cookie was generated by
 * the cgroup/connect program during the connect; a socket without one (a session root the
 * connect hook is not attached to) is not counted. `again`: a second connect(2) on the same
 * socket (UDP re-targeting) starts a new count; otherwise a flow the socket hook registered
 * already (its connect waiting in pending_connects) keeps its count and is no longer deferred.
 */
static __always_inline void register_flow(struct agent_connect *c, const struct sock *sk, bool again)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if ((family != AF_INET && family != AF_INET6) || (c->ret != 0 && c->ret != -EINPROGRESS))
		return;
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return;
	if (!again) {
		struct flow_state *old = bpf_map_lookup_elem(&flows, &cookie);
		if (old) {
			old->deferred = 0;
			old->start_ns = c->start_ns;
			c->cookie = cookie;
			return;
		}
	}
	struct flow_state f = {
		.session_cgid = c->hdr.session_cgid,
		.cgroup_id = c->hdr.cgroup_id,
		.start_ns = c->start_ns,
		.pid = c->hdr.pid,
		.tid = c->hdr.tid,
	};
	if (bpf_map_update_elem(&flows, &cookie, &f, BPF_ANY) == 0)
		c->cookie = cookie;
	else
		count_drop(AGENT_KIND_FLOW); /* full: this socket's bytes go uncounted, and that is said */
}

/* Claims the pending connect of cookie for the caller to write: true once, for the first. */
static __always_inline bool claim_pending(struct pending_connect *p)
{
	return __sync_val_compare_and_swap(&p->state, 0, 1) == 0;
}

#endif
