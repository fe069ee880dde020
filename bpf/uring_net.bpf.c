// SPDX-License-Identifier: GPL-2.0
/*
 * Connects through io_uring (IORING_OP_CONNECT): the same net.connect as connect(2), with
 * net.via io_uring. The submission (in the submitting task: io_uring_enter or the SQPOLL
 * thread) gives the address as the process passed it and who asked; the completion gives the
 * result and, through the request's file, the socket: its type, protocol, local address and
 * cookie, so its bytes are counted as a connect(2)'s are. A success whose completion is never
 * posted (IOSQE_CQE_SKIP_SUCCESS) is reported by the socket hook's pending connect instead
 * (flow.bpf.c). Sends through io_uring need nothing here: the socket hooks see their datagrams.
 *
 * The submission is io_uring_submit_req from 6.4, io_uring_submit_sqe from 6.0 to 6.3 (both
 * pass the request first); the daemon loads the pair this kernel has, with the io_uring open
 * programs (Sensor.uringChoice). Only io_uring_complete's request argument (its second, a
 * void * on every kernel) is read: its other arguments changed (6.1 passes res and flags,
 * later kernels the cqe), the request's cqe.res is the result on all of them. Attached only
 * while a session exists, as the syscall hooks are: they run for every io_uring request on the
 * host. A kernel whose requests have no command area (before 6.0) or no struct io_connect
 * keeps nothing: its inet io_uring connects are reported by the socket hook (net.via other),
 * its unix ones are not seen, and agent.start does not list io_uring_connect.
 */
#include "lib/session.bpf.h"
#include "lib/task.bpf.h"
#include "lib/net.bpf.h"

static __always_inline int uring_net_submit(struct io_kiocb *req)
{
	if (!bpf_core_field_exists(req->cmd) || !bpf_core_type_exists(struct io_connect))
		return 0;
	if (BPF_CORE_READ(req, opcode) != IORING_OP_CONNECT)
		return 0;
	__u64 session = current_session();
	if (!session)
		return 0;
	/* The request's command area holds the connect's arguments as the prep read them from the SQE. */
	struct io_connect *conn = (void *)__builtin_preserve_access_index(&req->cmd);
	struct uring_connect u = {};
	void *uaddr = BPF_CORE_READ(conn, addr);
	int len = BPF_CORE_READ(conn, addr_len);
	u.addr_len = copy_sockaddr(u.addr, uaddr, len, true);
	u.fd = BPF_CORE_READ(req, cqe.fd);
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	u.pid = id >> 32;
	u.tid = (__u32)id;
	u.uid = (__u32)ugid;
	u.gid = ugid >> 32;
	u.session_cgid = session;
	u.cgroup_id = bpf_get_current_cgroup_id();
	u.start_ns = task_start_ns((struct task_struct *)bpf_get_current_task_btf());
	u.submit_ns = bpf_ktime_get_boot_ns();
	__u64 key = (__u64)req;
	bpf_map_update_elem(&uring_connects, &key, &u, BPF_ANY);
	struct uring_issue mark = { .req = key, .submit_ns = u.submit_ns };
	bpf_map_update_elem(&uring_issuing, &u.tid, &mark, BPF_ANY);
	return 0;
}

/* 6.4 on. */
SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(uring_net_submit_req, struct io_kiocb *req)
{
	return uring_net_submit(req);
}

/* 6.0 to 6.3: the same, with an argument since dropped. */
SEC("tp_btf/io_uring_submit_sqe")
int BPF_PROG(uring_net_submit_sqe, struct io_kiocb *req)
{
	return uring_net_submit(req);
}

SEC("tp_btf/io_uring_complete")
int BPF_PROG(uring_net_complete, void *ring, void *request)
{
	struct io_kiocb *req = request;
	/* Nothing was kept at submission there, and the reads below need 6.0's request. */
	if (!req || !bpf_core_field_exists(req->cmd) || !bpf_core_type_exists(struct io_connect))
		return 0;
	__u64 key = (__u64)request;
	struct uring_connect *u = bpf_map_lookup_elem(&uring_connects, &key);
	if (!u) {
		/* A session's connect whose submission was not kept (evicted, or submitted before the
		 * hooks were attached): an inet one is still reported, from the socket hook's pending
		 * connect; a unix one has nothing else, and is counted as lost. */
		if (BPF_CORE_READ(req, opcode) == IORING_OP_CONNECT && current_session()) {
			struct socket *sock = socket_of_file(BPF_CORE_READ(req, file));
			struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
			if (sk && BPF_CORE_READ(sk, __sk_common.skc_family) == AF_UNIX)
				count_drop(AGENT_KIND_CONNECT);
		}
		return 0;
	}
	__s32 res = BPF_CORE_READ(req, cqe.res);
	/* The file stays with the request until it is freed, after its completion is posted. */
	struct socket *sock = (res == -EBADF || res == -ENOTSOCK) ? NULL : socket_of_file(BPF_CORE_READ(req, file));
	struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
	__u64 cookie = sk ? BPF_CORE_READ(sk, __sk_common.skc_cookie.counter) : 0;
	struct pending_connect *p = cookie ? bpf_map_lookup_elem(&pending_connects, &cookie) : NULL;
	if (p && !claim_pending(p)) {
		/* The socket hook saw it and its first payload or close reported it already. */
		bpf_map_delete_elem(&pending_connects, &cookie);
		goto done;
	}

	/* Built here, then copied to the ring: the socket is counted even if the ring is full. */
	struct agent_connect rec = {};
	struct agent_connect *c = &rec;
	fill_hdr_of(&c->hdr, AGENT_KIND_CONNECT, sizeof(*c), u->pid, u->tid, u->session_cgid, u->cgroup_id);
	c->start_ns = u->start_ns;
	c->uid = u->uid;
	c->gid = u->gid;
	c->ret = res;
	c->fd = u->fd;
	c->addr_len = u->addr_len > AGENT_SOCKADDR_MAX ? AGENT_SOCKADDR_MAX : u->addr_len;
	if (u->addr_len > AGENT_SOCKADDR_MAX)
		c->hdr.flags |= AGENT_F_ADDR_TRUNCATED;
	__builtin_memcpy(c->addr, u->addr, AGENT_SOCKADDR_MAX);
	c->via = AGENT_CONNECT_VIA_IO_URING;
	if (sk) {
		describe_socket(c, sk);
		if (res == 0) {
			register_flow(c, sk, false);
		} else if (cookie) {
			/* Failed: a flow the socket hook registered for it counts nothing. */
			bpf_map_delete_elem(&flows, &cookie);
		}
	}
	struct agent_connect *r = reserve_record(sizeof(*r), AGENT_KIND_CONNECT);
	if (r) {
		__builtin_memcpy(r, c, sizeof(*r));
		submit_record(r);
	}
	/* Only now, with the flow no longer deferred: its packets never look for it in between. */
	if (p)
		bpf_map_delete_elem(&pending_connects, &cookie);
done:
	bpf_map_delete_elem(&uring_connects, &key);
	return 0;
}
