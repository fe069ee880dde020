// SPDX-License-Identifier: GPL-2.0
/*
 * Outgoing connections: connect(2). Syscall hooks, on the tier the daemon chose (file.bpf.c
 * tells the tiers): attached only while a session exists. Every tier saves the arguments at
 * entry, by thread, before the socket hook runs (flow.bpf.c tells a connect(2) from every other
 * way in by that entry), and writes the record at exit.
 */
#include "lib/session.bpf.h"
#include "lib/task.bpf.h"
#include "lib/path.bpf.h"
#include "lib/net.bpf.h"

static __always_inline int save_connect(__s32 fd, __u64 uaddr, __u32 len)
{
	if (!current_session())
		return 0;
	struct connect_args a = {};
	/* The address is read at entry: the kernel copies it in before connecting. */
	a.addr_len = copy_sockaddr(a.addr, (void *)uaddr, (int)len, true);
	a.fd = fd;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&connect_inflight, &tid, &a, BPF_ANY);
	return 0;
}

/* The socket behind fd in the current task, or NULL. */
static __always_inline struct socket *socket_of_fd(int fd)
{
	return socket_of_file(current_file(fd));
}

static __always_inline int emit_connect(long ret)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct connect_args *a = bpf_map_lookup_elem(&connect_inflight, &tid);
	if (!a)
		return 0;

	struct agent_connect *c = reserve_record(sizeof(*c), AGENT_KIND_CONNECT);
	if (!c) {
		bpf_map_delete_elem(&connect_inflight, &tid);
		return 0;
	}
	fill_hdr(&c->hdr, AGENT_KIND_CONNECT, sizeof(*c), session);
	c->start_ns = task_start_ns((struct task_struct *)bpf_get_current_task_btf());
	__u64 ugid = bpf_get_current_uid_gid();
	c->uid = (__u32)ugid;
	c->gid = ugid >> 32;
	c->ret = (__s32)ret;
	c->fd = a->fd;
	c->addr_len = a->addr_len > AGENT_SOCKADDR_MAX ? AGENT_SOCKADDR_MAX : a->addr_len;
	if (a->addr_len > AGENT_SOCKADDR_MAX)
		c->hdr.flags |= AGENT_F_ADDR_TRUNCATED;
	__builtin_memcpy(c->addr, a->addr, AGENT_SOCKADDR_MAX);
	__builtin_memset(c->local, 0, AGENT_LOCAL_ADDR_MAX);
	c->local_len = 0;
	c->sock_type = 0;
	c->protocol = 0;
	c->cookie = 0;
	c->via = AGENT_CONNECT_VIA_CONNECT;
	__builtin_memset(c->_pad0, 0, sizeof(c->_pad0));
	bpf_map_delete_elem(&connect_inflight, &tid);

	/* fd names no socket, so there is nothing to read behind it. */
	struct socket *sock = (c->ret == -EBADF || c->ret == -ENOTSOCK) ? NULL : socket_of_fd(c->fd);
	struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
	if (sk) {
		describe_socket(c, sk);
		register_flow(c, sk, true);
	}
	submit_record(c);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int on_connect_enter(struct trace_event_raw_sys_enter *ctx)
{
	return save_connect((__s32)ctx->args[0], ctx->args[1], (__u32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int on_connect_exit(struct trace_event_raw_sys_exit *ctx)
{
	return emit_connect(ctx->ret);
}

/* fentry, not only fexit: the socket hook runs inside the call and looks for the entry. */
SEC("fentry/" SYSCALL_FUNCTION(connect))
int BPF_PROG(fentry_connect, const struct pt_regs *regs)
{
	return save_connect((__s32)PT_REGS_PARM1_CORE_SYSCALL(regs), PT_REGS_PARM2_CORE_SYSCALL(regs),
			    (__u32)PT_REGS_PARM3_CORE_SYSCALL(regs));
}

SEC("fexit/" SYSCALL_FUNCTION(connect))
int BPF_PROG(fexit_connect, const struct pt_regs *regs, long ret)
{
	return emit_connect(ret);
}

SEC("ksyscall/connect")
int BPF_KPROBE(kprobe_connect, const struct pt_regs *regs)
{
	return save_connect((__s32)PT_REGS_PARM1_CORE_SYSCALL(regs), PT_REGS_PARM2_CORE_SYSCALL(regs),
			    (__u32)PT_REGS_PARM3_CORE_SYSCALL(regs));
}

SEC("kretsyscall/connect")
int BPF_KRETPROBE(kretprobe_connect, long ret)
{
	return emit_connect(ret);
}

/* A connect no syscall program saw enter: an ia32 one is counted (io_uring's and the socket
 * hook's own are recorded elsewhere). */
static __always_inline void other_connect(__u64 session)
{
#if defined(__TARGET_ARCH_x86)
	struct task_struct *task = bpf_get_current_task_btf();
	if (!in_ia32_syscall(task))
		return;
	/* ia32 connect(2) (362) or socketcall(2) (102) itself, not an io_uring_enter that connects. */
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	long nr = regs ? (long)BPF_CORE_READ(regs, orig_ax) : -1;
	if (nr == 362 || nr == 102)
		count_undecoded(session, AGENT_UNDECODED_IA32_CONNECT);
#endif
}

/* At the socket's connect hook, in a session's process: the connect in flight on this thread,
 * or NULL when no syscall program saw it enter (then counted by other_connect). */
static __always_inline struct connect_args *connect_at_socket(void)
{
	__u64 session = current_session();
	if (!session)
		return NULL;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct connect_args *a = bpf_map_lookup_elem(&connect_inflight, &tid);
	if (!a)
		other_connect(session);
	return a;
}

/*
 * The LSM tier: the fentry tier's programs, and socket_connect, which runs inside connect(2)
 * once the kernel has its own copy of the address. A connect in flight (fentry_connect saved
 * it) takes that copy, so the record names the address the kernel connected to, not what the
 * caller's memory held when the call began: a thread that rewrote it in between cannot make
 * the record lie. It allows every connect.
 */
SEC("lsm/socket_connect")
int BPF_PROG(lsm_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen)
{
	struct connect_args *a = connect_at_socket();
	if (!a)
		return 0;
	__builtin_memset(a->addr, 0, AGENT_SOCKADDR_MAX);
	a->addr_len = copy_sockaddr(a->addr, address, addrlen, false);
	return 0;
}

/* The fentry and kprobe tiers count ia32 connects at security_socket_connect, which every
 * connect calls whether or not BPF LSM is active. */
SEC("fentry/security_socket_connect")
int BPF_PROG(fentry_socket_connect, struct socket *sock)
{
	connect_at_socket();
	return 0;
}

SEC("kprobe/security_socket_connect")
int BPF_KPROBE(kprobe_socket_connect, struct socket *sock)
{
	connect_at_socket();
	return 0;
}
