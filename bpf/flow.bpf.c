// SPDX-License-Identifier: GPL-2.0
/*
 * The socket hooks, attached to the session roots (they run only for sockets of session
 * processes, and cost nothing elsewhere):
 * - Upload accounting: bytes sent and received per connected inet socket, counted in the
 *   kernel (cgroup_skb), reported at thresholds and when the socket is released. No record
 *   per send.
 * - Unconnected sends (UDP with a destination, raw and ping sockets, by any syscall or
 *   io_uring): counted per socket and destination from the packets themselves, reported at
 *   the first datagram to a destination, at thresholds and at release (net.send).
 * - DNS: each message a session socket sends to port 53 or receives from it is copied out for
 *   the daemon to parse (net.dns), which binds answered addresses to names.
 * - Connects no syscall exit reports (io_uring without a completion, sendto(MSG_FASTOPEN)):
 *   kept at cgroup/connect4|6 and reported at the socket's first payload or its close.
 */
#include "lib/session.bpf.h"
#include "lib/net.bpf.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* Where parse_packet finds what it reads: wire formats, the same on every kernel. The TCP data
 * offset is the high nibble of the byte after ack_seq (a bitfield, so no offsetof). */
#define IPV4_PROTOCOL_AT __builtin_offsetof(struct iphdr, protocol)
#define IPV4_SADDR_AT __builtin_offsetof(struct iphdr, saddr)
#define IPV6_NEXTHDR_AT __builtin_offsetof(struct ipv6hdr, nexthdr)
#define IPV6_SADDR_AT __builtin_offsetof(struct ipv6hdr, saddr)
#define IPV6_HEADER_SIZE sizeof(struct ipv6hdr)
#define TCP_DOFF_AT (__builtin_offsetof(struct tcphdr, ack_seq) + sizeof(__be32))
#define UDP_HEADER_SIZE sizeof(struct udphdr)
#define DNS_PORT 53
#define DNS_HEADER_SIZE 12
/* TCP_SYN_SENT, TCP_CLOSE: enum in vmlinux.h. ECONNREFUSED when a failed connect left no error. */
#define ECONNREFUSED 111

/* What a packet carries: payload bytes (IP and TCP/UDP headers excluded), where they start,
 * the ports and, for TCP, the sequence number of the first payload byte. */
struct packet {
	__u64 payload;
	__u32 data;     /* offset of the payload */
	__u32 seq;
	__u16 sport;    /* host order; 0 without ports */
	__u16 dport;
	__u8 proto;
	bool tcp;
	bool v6;
};

static __always_inline bool parse_packet(struct __sk_buff *skb, struct packet *p)
{
	__u32 hdr = 0;
	__u8 proto = 0;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u8 vihl;
		if (bpf_skb_load_bytes(skb, 0, &vihl, 1) || bpf_skb_load_bytes(skb, IPV4_PROTOCOL_AT, &proto, 1))
			return false;
		/* The header length, in 32-bit words, is the low nibble of the first byte. */
		hdr = (vihl & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		hdr = IPV6_HEADER_SIZE;
		p->v6 = true;
		if (bpf_skb_load_bytes(skb, IPV6_NEXTHDR_AT, &proto, 1))
			return false;
	} else {
		return false;
	}
	p->proto = proto;
	p->tcp = proto == IPPROTO_TCP;
	if (p->tcp) {
		/* Ports, sequence number, ack, data offset: the header's first 13 bytes. */
		__u8 th[13];
		if (bpf_skb_load_bytes(skb, hdr, th, sizeof(th)))
			return false;
		p->sport = (__u16)th[0] << 8 | th[1];
		p->dport = (__u16)th[2] << 8 | th[3];
		p->seq = (__u32)th[4] << 24 | (__u32)th[5] << 16 | (__u32)th[6] << 8 | th[7];
		/* The data offset, in 32-bit words. */
		hdr += (th[TCP_DOFF_AT] >> 4) * 4;
	} else if (proto == IPPROTO_UDP) {
		__u8 uh[4];
		if (bpf_skb_load_bytes(skb, hdr, uh, sizeof(uh)))
			return false;
		p->sport = (__u16)uh[0] << 8 | uh[1];
		p->dport = (__u16)uh[2] << 8 | uh[3];
		hdr += UDP_HEADER_SIZE;
	}
	p->data = hdr;
	p->payload = skb->len > hdr ? skb->len - hdr : 0;
	return true;
}

/* The packet's source and destination addresses (IPv4: in the first 4 bytes). */
static __always_inline bool packet_addrs(struct __sk_buff *skb, struct packet *p, __u64 *saddr, __u64 *daddr)
{
	if (p->v6)
		return !bpf_skb_load_bytes(skb, IPV6_SADDR_AT, saddr, 16) && !bpf_skb_load_bytes(skb, IPV6_SADDR_AT + 16, daddr, 16);
	__u32 a[2];
	if (bpf_skb_load_bytes(skb, IPV4_SADDR_AT, a, sizeof(a)))
		return false;
	saddr[0] = a[0];
	daddr[0] = a[1];
	return true;
}

/* New bytes in a packet: all of a datagram's; for TCP only those past the highest sequence
 * already counted, so retransmissions are not counted twice. */
static __always_inline __u64 new_bytes(struct packet *p, __u32 *next, __u8 *seen)
{
	if (!p->tcp)
		return p->payload;
	if (!*seen) {
		*next = p->seq;
		*seen = 1;
	}
	__u32 end = p->seq + (__u32)p->payload;
	__s32 ahead = (__s32)(end - *next);
	if (ahead <= 0)
		return 0;
	*next = end;
	/* Past the expected sequence by more than the payload: a SYN or FIN took a sequence
	 * number (the ACKs after a FIN carry FIN + 1). Only payload is counted. */
	if ((__u64)(__u32)ahead > p->payload)
		return p->payload;
	return (__u64)(__u32)ahead;
}

/* Who a socket's records name: socket programs have no current task. */
struct owner {
	__u64 session_cgid;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
};

/* Runs in socket programs, where there is no current task: the header names the process that
 * connected, as the flow state keeps it. */
static __always_inline void emit_flow(__u64 cookie, struct flow_state *f, bool final)
{
	struct agent_flow *r = reserve_record(sizeof(*r), AGENT_KIND_FLOW);
	if (!r)
		return;
	fill_hdr_of(&r->hdr, AGENT_KIND_FLOW, sizeof(*r), f->pid, f->tid, f->session_cgid, f->cgroup_id);
	r->cookie = cookie;
	r->start_ns = f->start_ns;
	__u64 sent = f->bytes_sent, received = f->bytes_received;
	/* Claim the deltas: two CPUs crossing a threshold at once report each byte once. */
	__u64 rs = f->reported_sent, rr = f->reported_received;
	r->sent_delta = __sync_val_compare_and_swap(&f->reported_sent, rs, sent) == rs ? sent - rs : 0;
	r->received_delta = __sync_val_compare_and_swap(&f->reported_received, rr, received) == rr ? received - rr : 0;
	r->bytes_sent = sent;
	r->bytes_received = received;
	r->final = final;
	__builtin_memset(r->_pad0, 0, sizeof(r->_pad0));
	submit_record(r);
}

/*
 * Reports the connect that registered a deferred flow, once (whoever claims it): ret is what
 * became of it, local the socket's address (a sockaddr, local_len bytes) when known.
 */
static __always_inline void report_deferred(__u64 cookie, struct flow_state *f, __s32 ret, const __u8 *local, __u16 local_len)
{
	f->deferred = 0;
	struct pending_connect *p = bpf_map_lookup_elem(&pending_connects, &cookie);
	if (!p) {
		/* Evicted from pending_connects before anyone reported it: a connect record lost. */
		count_drop(AGENT_KIND_CONNECT);
		return;
	}
	if (!claim_pending(p))
		return;
	struct agent_connect *c = reserve_record(sizeof(*c), AGENT_KIND_CONNECT);
	if (!c)
		return;
	__builtin_memcpy(c, &p->c, sizeof(*c));
	c->ret = ret;
	if (local && local_len <= AGENT_LOCAL_ADDR_MAX) {
		__builtin_memcpy(c->local, local, AGENT_LOCAL_ADDR_MAX);
		c->local_len = local_len;
	}
	submit_record(c);
}

/* The deferred connect of a flow that moved payload: it is connected. local: the socket's end
 * of the packet (the source going out, the destination coming in). */
static __always_inline void report_deferred_packet(struct __sk_buff *skb, struct packet *p, __u64 cookie,
						   struct flow_state *f, bool egress)
{
	__u64 saddr[2] = {}, daddr[2] = {};
	__u8 local[AGENT_LOCAL_ADDR_MAX] = {};
	__u16 len = 0;
	if (packet_addrs(skb, p, saddr, daddr))
		len = make_sockaddr(local, p->v6 ? AF_INET6 : AF_INET, egress ? saddr : daddr, egress ? p->sport : p->dport);
	report_deferred(cookie, f, 0, len ? local : NULL, len);
}

/*
 * A DNS message of a session socket: a query it sends to port 53, or an answer it receives
 * from there. UDP: the datagram. TCP: the message after its 2-byte length, from a segment that
 * starts one (a message split over segments is cut at the first; one after another in a
 * segment is not seen). Reserved at its largest, so no scratch area is shared with another
 * program interrupting this one; hdr.size says how much is used.
 */
static __always_inline void copy_dns(struct __sk_buff *skb, struct packet *p, __u64 cookie, struct owner *o, __u8 direction)
{
	__u32 off = p->data;
	__u32 avail = (__u32)p->payload;
	__u32 msg_len = avail;
	if (p->tcp) {
		__u8 l[2];
		if (avail < 2 + DNS_HEADER_SIZE || bpf_skb_load_bytes(skb, off, l, 2))
			return;
		msg_len = (__u32)l[0] << 8 | l[1];
		off += 2;
		avail -= 2;
		if (avail > msg_len)
			avail = msg_len;
	}
	if (avail < DNS_HEADER_SIZE)
		return;
	__u32 len = avail > AGENT_DNS_MAX ? AGENT_DNS_MAX : avail;
	struct agent_dns *r = reserve_record(sizeof(*r) + AGENT_DNS_MAX, AGENT_KIND_DNS);
	if (!r)
		return;
	barrier_var(len);
	/* len is 12 to AGENT_DNS_MAX (a power of two) and stays so; written so that 6.1's verifier,
	 * which loses the lower bound of a spilled length, sees 1 to AGENT_DNS_MAX too. */
	_Static_assert((AGENT_DNS_MAX & (AGENT_DNS_MAX - 1)) == 0, "AGENT_DNS_MAX is a power of two");
	len = ((len - 1) & (AGENT_DNS_MAX - 1)) + 1;
	if (len > AGENT_DNS_MAX || bpf_skb_load_bytes(skb, off, r->data, len)) {
		bpf_ringbuf_discard(r, 0);
		return;
	}
	fill_hdr_of(&r->hdr, AGENT_KIND_DNS, sizeof(*r) + len, o->pid, o->tid, o->session_cgid, o->cgroup_id);
	r->cookie = cookie;
	r->family = p->v6 ? AF_INET6 : AF_INET;
	r->transport = p->proto;
	r->direction = direction;
	r->len = len;
	r->msg_len = msg_len > 0xffff ? 0xffff : msg_len;
	r->_pad0 = 0;
	__u64 saddr[2] = {}, daddr[2] = {};
	packet_addrs(skb, p, saddr, daddr);
	bool query = direction == AGENT_DNS_QUERY;
	/* The session's end first: the source of a query, the destination of an answer. */
	__builtin_memcpy(r->saddr, query ? saddr : daddr, 16);
	__builtin_memcpy(r->daddr, query ? daddr : saddr, 16);
	r->sport = query ? p->sport : p->dport;
	r->dport = query ? p->dport : p->sport;
	submit_record(r);
}

static __always_inline void flow_owner(struct flow_state *f, struct owner *o)
{
	o->session_cgid = f->session_cgid;
	o->cgroup_id = f->cgroup_id;
	o->pid = f->pid;
	o->tid = f->tid;
}

static __always_inline void send_owner(struct send_sock *s, struct owner *o)
{
	o->session_cgid = s->session_cgid;
	o->cgroup_id = s->cgroup_id;
	o->pid = s->pid;
	o->tid = s->tid;
}

/* A net.send record for destination d of socket s. */
static __always_inline void emit_send(__u64 cookie, struct send_sock *s, struct send_dest *d, __u64 bytes_delta,
				      __u64 datagrams_delta, __u8 reason)
{
	struct agent_send *r = reserve_record(sizeof(*r), AGENT_KIND_SEND);
	if (!r)
		return;
	fill_hdr_of(&r->hdr, AGENT_KIND_SEND, sizeof(*r), s->pid, s->tid, s->session_cgid, s->cgroup_id);
	r->cookie = cookie;
	r->first_ns = d->first_ns;
	r->last_ns = d->last_ns;
	r->bytes = d->bytes;
	r->datagrams = d->datagrams;
	r->bytes_delta = bytes_delta;
	r->datagrams_delta = datagrams_delta;
	r->uid = s->uid;
	r->gid = s->gid;
	r->family = d->family;
	r->dport = d->port;
	r->sport = d->sport;
	r->sock_type = s->sock_type;
	r->protocol = d->protocol;
	r->reason = reason;
	__builtin_memset(r->_pad0, 0, sizeof(r->_pad0));
	__builtin_memcpy(r->daddr, d->addr, 16);
	__builtin_memcpy(r->saddr, d->saddr, 16);
	submit_record(r);
}

/*
 * A datagram of a socket that is not connected (or a raw or ping socket): counted for its
 * destination, the destination's record written when it is new and at each flow_report_bytes.
 * A socket has SEND_DESTS destinations at a time; a new one past that takes the least recently
 * used one's place, whose aggregate then ends with its last record (EVICTED). Two CPUs sending
 * on one socket take the socket's lock for the update; the records are written after it.
 */
static __always_inline void count_send(struct __sk_buff *skb, struct packet *p, __u64 cookie)
{
	struct send_sock *s = bpf_map_lookup_elem(&send_socks, &cookie);
	if (!s) {
		/* Made when send_socks was full (or before the hooks were attached): not aggregated. */
		count_drop(AGENT_KIND_SEND);
		return;
	}
	__u64 saddr[2] = {}, daddr[2] = {};
	if (!packet_addrs(skb, p, saddr, daddr))
		return;
	__u16 family = p->v6 ? AF_INET6 : AF_INET;
	__u64 segs = skb->gso_segs > 1 ? skb->gso_segs : 1;
	__u64 now = bpf_ktime_get_boot_ns();
	struct send_dest rep = {}, old = {};
	__u64 rep_bytes = 0, rep_datagrams = 0, old_bytes = 0, old_datagrams = 0;
	__u8 reason = 0;
	bool evicted = false;

	bpf_spin_lock(&s->lock);
	__u32 slot = SEND_DESTS, free = SEND_DESTS, lru = 0;
	__u64 oldest = ~0ULL;
	for (__u32 i = 0; i < SEND_DESTS; i++) {
		struct send_dest *d = &s->dest[i];
		if (d->datagrams == 0) {
			if (free == SEND_DESTS)
				free = i;
			continue;
		}
		if (d->port == p->dport && d->family == family && d->protocol == p->proto && d->addr[0] == daddr[0] &&
		    d->addr[1] == daddr[1]) {
			slot = i;
			break;
		}
		if (d->last_ns < oldest) {
			oldest = d->last_ns;
			lru = i;
		}
	}
	bool fresh = slot == SEND_DESTS;
	if (fresh) {
		slot = free;
		if (slot == SEND_DESTS) {
			slot = lru;
			evicted = true;
		}
	}
	if (slot < SEND_DESTS) {
		struct send_dest *d = &s->dest[slot];
		if (fresh) {
			if (evicted) {
				old = *d;
				old_bytes = d->bytes - d->reported_bytes;
				old_datagrams = d->datagrams - d->reported_datagrams;
			}
			d->addr[0] = daddr[0];
			d->addr[1] = daddr[1];
			d->saddr[0] = saddr[0];
			d->saddr[1] = saddr[1];
			d->port = p->dport;
			d->sport = p->sport;
			d->family = family;
			d->protocol = p->proto;
			d->first_ns = now;
			d->bytes = 0;
			d->datagrams = 0;
			d->reported_bytes = 0;
			d->reported_datagrams = 0;
		}
		d->bytes += p->payload;
		d->datagrams += segs;
		d->last_ns = now;
		if (fresh || d->bytes - d->reported_bytes >= flow_report_bytes) {
			reason = fresh ? AGENT_SEND_FIRST : AGENT_SEND_THRESHOLD;
			rep_bytes = d->bytes - d->reported_bytes;
			rep_datagrams = d->datagrams - d->reported_datagrams;
			d->reported_bytes = d->bytes;
			d->reported_datagrams = d->datagrams;
			rep = *d;
		}
	}
	bpf_spin_unlock(&s->lock);

	if (evicted)
		emit_send(cookie, s, &old, old_bytes, old_datagrams, AGENT_SEND_EVICTED);
	if (reason)
		emit_send(cookie, s, &rep, rep_bytes, rep_datagrams, reason);
}

SEC("cgroup_skb/egress")
int flow_egress(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct flow_state *f = bpf_map_lookup_elem(&flows, &cookie);
	struct packet p = {};
	if (!parse_packet(skb, &p))
		return 1;
	if (!f) {
		/* Not connected: an unconnected send (TCP sockets not counted here are accepted ones). */
		if (p.tcp)
			return 1;
		count_send(skb, &p, cookie);
		if (p.dport == DNS_PORT && p.proto == IPPROTO_UDP) {
			struct send_sock *s = bpf_map_lookup_elem(&send_socks, &cookie);
			struct owner o = {};
			if (s) {
				send_owner(s, &o);
				copy_dns(skb, &p, cookie, &o, AGENT_DNS_QUERY);
			}
		}
		return 1;
	}
	__u64 n = new_bytes(&p, &f->tx_next, &f->tx_seen);
	if (!n)
		return 1;
	if (f->deferred)
		report_deferred_packet(skb, &p, cookie, f, true);
	if (p.dport == DNS_PORT) {
		struct owner o = {};
		flow_owner(f, &o);
		copy_dns(skb, &p, cookie, &o, AGENT_DNS_QUERY);
	}
	__u64 sent = __sync_fetch_and_add(&f->bytes_sent, n) + n;
	if (sent - f->reported_sent >= flow_report_bytes)
		emit_flow(cookie, f, false);
	return 1;
}

SEC("cgroup_skb/ingress")
int flow_ingress(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct flow_state *f = bpf_map_lookup_elem(&flows, &cookie);
	struct packet p = {};
	if (!parse_packet(skb, &p))
		return 1;
	if (!f) {
		/* An answer to an unconnected UDP socket. */
		if (p.sport != DNS_PORT || p.proto != IPPROTO_UDP)
			return 1;
		struct send_sock *s = bpf_map_lookup_elem(&send_socks, &cookie);
		struct owner o = {};
		if (s) {
			send_owner(s, &o);
			copy_dns(skb, &p, cookie, &o, AGENT_DNS_ANSWER);
		}
		return 1;
	}
	__u64 n = new_bytes(&p, &f->rx_next, &f->rx_seen);
	if (!n)
		return 1;
	__sync_fetch_and_add(&f->bytes_received, n);
	if (f->deferred)
		report_deferred_packet(skb, &p, cookie, f, false);
	if (p.sport == DNS_PORT) {
		struct owner o = {};
		flow_owner(f, &o);
		copy_dns(skb, &p, cookie, &o, AGENT_DNS_ANSWER);
	}
	return 1;
}

/*
 * A datagram or raw socket is going away: the last record of each destination it sent to,
 * and its flow's last record, then forget it. A TCP socket still sends what is queued after
 * close(2), so its last record waits for the connection to close.
 */
SEC("cgroup/sock_release")
int flow_release(struct bpf_sock *sk)
{
	if (sk->protocol == IPPROTO_TCP)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct send_sock *s = bpf_map_lookup_elem(&send_socks, &cookie);
	if (s) {
		/* Nothing sends on a socket being released: its destinations are read without the lock. */
		for (__u32 i = 0; i < SEND_DESTS; i++) {
			struct send_dest d = s->dest[i];
			if (d.datagrams == 0)
				continue;
			emit_send(cookie, s, &d, d.bytes - d.reported_bytes, d.datagrams - d.reported_datagrams, AGENT_SEND_FINAL);
		}
		bpf_map_delete_elem(&send_socks, &cookie);
	}
	struct flow_state *f = bpf_map_lookup_elem(&flows, &cookie);
	if (!f)
		return 1;
	/* Its local address is not readable here (a release program sees no src_* of the socket). */
	if (f->deferred)
		report_deferred(cookie, f, 0, NULL, 0);
	emit_flow(cookie, f, true);
	bpf_map_delete_elem(&flows, &cookie);
	return 1;
}

/* A TCP connection reached CLOSE: everything it will ever send has been sent. Fires for every
 * TCP socket on the host, but only a counted one (its cookie in the map) does more than a read.
 * A deferred connect that never got past SYN_SENT failed: it is reported with the socket's
 * error, and its flow, which never carried a byte, ends without a record. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(flow_tcp_close, const struct sock *sk, int oldstate, int newstate)
{
	if (newstate != TCP_CLOSE)
		return 0;
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	struct flow_state *f = bpf_map_lookup_elem(&flows, &cookie);
	if (!f)
		return 0;
	if (f->deferred) {
		__u8 local[AGENT_LOCAL_ADDR_MAX] = {};
		__u16 len = local_address(sk, local);
		if (oldstate == TCP_SYN_SENT) {
			int err = BPF_CORE_READ(sk, sk_err);
			report_deferred(cookie, f, err > 0 ? -err : -ECONNREFUSED, len ? local : NULL, len);
			bpf_map_delete_elem(&flows, &cookie);
			return 0;
		}
		report_deferred(cookie, f, 0, len ? local : NULL, len);
	}
	emit_flow(cookie, f, true);
	bpf_map_delete_elem(&flows, &cookie);
	return 0;
}

/* Datagram and raw sockets are made with an owner, so what they send has a process from the
 * first packet: the one that made it, until one sends on it (send_owner_update). */
static __always_inline void send_sock_new(__u64 cookie, __u16 type, __u64 session)
{
	__u32 zero = 0;
	struct send_sock_init *t = bpf_map_lookup_elem(&send_sock_template, &zero);
	if (!t)
		return;
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	t->pid = id >> 32;
	t->tid = (__u32)id;
	t->uid = (__u32)ugid;
	t->gid = ugid >> 32;
	t->session_cgid = session;
	t->cgroup_id = bpf_get_current_cgroup_id();
	t->sock_type = type;
	/* The destinations of the template are never written: each new socket starts with none. */
	bpf_map_update_elem(&send_socks, &cookie, t, BPF_NOEXIST);
}

SEC("cgroup/sock_create")
int send_sock_create(struct bpf_sock *sk)
{
	if (sk->type != SOCK_DGRAM && sk->type != SOCK_RAW)
		return 1;
	__u64 session = current_session();
	if (session)
		send_sock_new(bpf_get_socket_cookie(sk), sk->type, session);
	return 1;
}

/* A datagram with a destination (UDP sendto/sendmsg/sendmmsg, the same through io_uring), in
 * the sender's context: the socket's records name this process from now on. */
static __always_inline int send_owner_update(struct bpf_sock_addr *ctx)
{
	__u64 session = current_session();
	if (!session)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct send_sock *s = bpf_map_lookup_elem(&send_socks, &cookie);
	if (!s) {
		send_sock_new(cookie, ctx->type, session);
		return 1;
	}
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32, tid = (__u32)id;
	if (s->tid == tid && s->pid == pid)
		return 1;
	__u64 ugid = bpf_get_current_uid_gid();
	s->pid = pid;
	s->tid = tid;
	s->uid = (__u32)ugid;
	s->gid = ugid >> 32;
	s->cgroup_id = bpf_get_current_cgroup_id();
	return 1;
}

SEC("cgroup/sendmsg4")
int send_sendmsg4(struct bpf_sock_addr *ctx)
{
	return send_owner_update(ctx);
}

SEC("cgroup/sendmsg6")
int send_sendmsg6(struct bpf_sock_addr *ctx)
{
	return send_owner_update(ctx);
}

/*
 * Every inet connect of a session passes here, however it entered the kernel; the cookie
 * generated here keys the flow. A connect(2) is reported by its syscall exit (net.bpf.c). Any
 * other is kept as a pending connect and its socket counted from now (a deferred flow): the
 * io_uring completion reports it with its result, and if that never comes (a success with
 * IOSQE_CQE_SKIP_SUCCESS, or no completion hook at all: sendto(MSG_FASTOPEN)), the socket's
 * first payload or its close does. The address is the one the kernel connects to.
 */
static __always_inline int connect_seen(struct bpf_sock_addr *ctx, bool v6)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	if (bpf_map_lookup_elem(&connect_inflight, &tid))
		return 1;
	__u64 session = current_session();
	if (!session || !cookie)
		return 1;
	struct pending_connect pc = {};
	struct agent_connect *c = &pc.c;
	fill_hdr(&c->hdr, AGENT_KIND_CONNECT, sizeof(*c), session);
	__u64 ugid = bpf_get_current_uid_gid();
	c->uid = (__u32)ugid;
	c->gid = ugid >> 32;
	c->fd = -1;
	__u64 addr[2] = {};
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	if (v6) {
		__u32 a[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
		__builtin_memcpy(addr, a, 16);
	} else {
		addr[0] = ctx->user_ip4;
	}
	c->addr_len = make_sockaddr(c->addr, v6 ? AF_INET6 : AF_INET, addr, port);
	c->sock_type = ctx->type;
	c->protocol = ctx->protocol;
	c->cookie = cookie;
	c->via = AGENT_CONNECT_VIA_OTHER;
	/* Issued in the thread that submitted it a moment ago: an io_uring connect. */
	struct uring_issue *mark = bpf_map_lookup_elem(&uring_issuing, &tid);
	if (mark && c->hdr.ktime_ns - mark->submit_ns < URING_ISSUE_NS) {
		__u64 req = mark->req;
		struct uring_connect *u = bpf_map_lookup_elem(&uring_connects, &req);
		c->via = AGENT_CONNECT_VIA_IO_URING;
		if (u) {
			c->fd = u->fd;
			c->start_ns = u->start_ns;
		}
		bpf_map_delete_elem(&uring_issuing, &tid);
	} else {
		/* An io_uring worker thread (iou-wrk-PID) issuing a connect queued to it. */
		char comm[8] = {};
		bpf_get_current_comm(comm, sizeof(comm));
		if (comm[0] == 'i' && comm[1] == 'o' && comm[2] == 'u' && comm[3] == '-')
			c->via = AGENT_CONNECT_VIA_IO_URING;
	}
	bpf_map_update_elem(&pending_connects, &cookie, &pc, BPF_ANY);
	/* The socket is counted from now: its connect may never be reported otherwise. */
	struct flow_state f = {
		.session_cgid = session,
		.cgroup_id = c->hdr.cgroup_id,
		.start_ns = c->start_ns,
		.pid = c->hdr.pid,
		.tid = c->hdr.tid,
		.deferred = 1,
	};
	if (bpf_map_update_elem(&flows, &cookie, &f, BPF_ANY)) {
		/* Full: neither its bytes nor its connect will be reported, and both are counted. */
		count_drop(AGENT_KIND_FLOW);
		count_drop(AGENT_KIND_CONNECT);
		bpf_map_delete_elem(&pending_connects, &cookie);
	}
	return 1;
}

SEC("cgroup/connect4")
int flow_connect4(struct bpf_sock_addr *ctx)
{
	return connect_seen(ctx, false);
}

SEC("cgroup/connect6")
int flow_connect6(struct bpf_sock_addr *ctx)
{
	return connect_seen(ctx, true);
}
