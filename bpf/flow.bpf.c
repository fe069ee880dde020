// SPDX-License-Identifier: GPL-2.0
/*
 * Upload accounting: bytes sent and received per connected inet socket of a session, counted in
 * the kernel (cgroup_skb on the session roots), reported at thresholds and when the socket is
 * released. No record per send. These are cgroup hooks, not syscall hooks: attached to the
 * session roots, they run only for sockets of session processes.
 */
#include "lib/common.bpf.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* Where parse_packet finds what it reads: wire formats, the same on every kernel. The TCP data
 * offset is the high nibble of the byte after ack_seq (a bitfield, so no offsetof). */
#define IPV4_PROTOCOL_AT __builtin_offsetof(struct iphdr, protocol)
#define IPV6_NEXTHDR_AT __builtin_offsetof(struct ipv6hdr, nexthdr)
#define IPV6_HEADER_SIZE sizeof(struct ipv6hdr)
#define TCP_SEQ_AT __builtin_offsetof(struct tcphdr, seq)
#define TCP_DOFF_AT (__builtin_offsetof(struct tcphdr, ack_seq) + sizeof(__be32))
#define UDP_HEADER_SIZE sizeof(struct udphdr)

/* Generates the socket's cookie during connect(2), so the syscall exit hook can key the flow. */
SEC("cgroup/connect4")
int flow_connect4(struct bpf_sock_addr *ctx)
{
	bpf_get_socket_cookie(ctx);
	return 1;
}

SEC("cgroup/connect6")
int flow_connect6(struct bpf_sock_addr *ctx)
{
	bpf_get_socket_cookie(ctx);
	return 1;
}

/* What a packet carries: payload bytes (IP and TCP/UDP headers excluded) and, for TCP, the
 * sequence number of its first payload byte. */
struct packet {
	__u64 payload;
	__u32 seq;
	bool tcp;
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
		if (bpf_skb_load_bytes(skb, IPV6_NEXTHDR_AT, &proto, 1))
			return false;
	} else {
		return false;
	}
	p->tcp = proto == IPPROTO_TCP;
	if (p->tcp) {
		__u8 doff;
		__be32 seq;
		if (bpf_skb_load_bytes(skb, hdr + TCP_SEQ_AT, &seq, sizeof(seq)) ||
		    bpf_skb_load_bytes(skb, hdr + TCP_DOFF_AT, &doff, 1))
			return false;
		p->seq = bpf_ntohl(seq);
		/* The data offset, in 32-bit words. */
		hdr += (doff >> 4) * 4;
	} else if (proto == IPPROTO_UDP) {
		hdr += UDP_HEADER_SIZE;
	}
	p->payload = skb->len > hdr ? skb->len - hdr : 0;
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

SEC("cgroup_skb/egress")
int flow_egress(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct flow_state *f = bpf_map_lookup_elem(&flows, &cookie);
	if (!f)
		return 1;
	struct packet p = {};
	if (!parse_packet(skb, &p))
		return 1;
	__u64 n = new_bytes(&p, &f->tx_next, &f->tx_seen);
	if (!n)
		return 1;
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
	if (!f || !parse_packet(skb, &p))
		return 1;
	__u64 n = new_bytes(&p, &f->rx_next, &f->rx_seen);
	if (n)
		__sync_fetch_and_add(&f->bytes_received, n);
	return 1;
}

/*
 * A datagram socket is going away: its last record, then forget it. A TCP socket still sends
 * what is queued after close(2), so its last record waits for the connection to close.
 */
SEC("cgroup/sock_release")
int flow_release(struct bpf_sock *sk)
{
	if (sk->protocol == IPPROTO_TCP)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct flow_state *f = bpf_map_lookup_elem(&flows, &cookie);
	if (!f)
		return 1;
	emit_flow(cookie, f, true);
	bpf_map_delete_elem(&flows, &cookie);
	return 1;
}

/* A TCP connection reached CLOSE: everything it will ever send has been sent. Fires for every
 * TCP socket on the host, but only a counted one (its cookie in the map) does more than a read. */
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
	emit_flow(cookie, f, true);
	bpf_map_delete_elem(&flows, &cookie);
	return 0;
}
