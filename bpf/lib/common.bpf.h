/* Shared by every program: the record contract, settings, the ring buffer and loss counting. */
#ifndef AGENTWATCH_COMMON_BPF_H
#define AGENTWATCH_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "agent_events.h"
#include "uapi.bpf.h"

/* The kernel function behind syscall name, as fentry/fexit attach to it: the architecture's
 * syscall wrapper, which takes the user registers. */
#if defined(__TARGET_ARCH_x86)
#define SYSCALL_FUNCTION(name) "__x64_sys_" #name
#elif defined(__TARGET_ARCH_arm64)
#define SYSCALL_FUNCTION(name) "__arm64_sys_" #name
#else
#error "SYSCALL_FUNCTION: no syscall wrapper prefix for this architecture"
#endif

/*
 * Settings, written by the daemon before load (the object's .rodata). Defined __weak here so
 * every program file can include this header and the static linker keeps one copy.
 */
const volatile __u64 root_cgid[AGENT_MAX_ROOTS] __weak = {};
const volatile __u32 root_level[AGENT_MAX_ROOTS] __weak = {};
const volatile __u32 nroots __weak = 0;
/* Session-root patterns (systemd user scopes): roots matching them are found at run time and
 * kept in dyn_roots, by the cgroup_mkdir program (roots.bpf.c) and by the daemon. */
const volatile struct agent_pattern patterns[AGENT_MAX_PATTERNS] __weak = {};
const volatile __u32 npatterns __weak = 0;
/* Bytes of argv copied per exec, at most AGENT_ARGS_MAX. */
const volatile __u32 args_max __weak = 4096;
/* Wake the reader only once this much is waiting; it polls on a timer otherwise. */
const volatile __u64 wakeup_bytes __weak = 64 * 1024;

/* 0: file.open records carry the requested path only (for measuring what resolution costs). */
const volatile __u32 resolve_paths __weak = 1;
/* The ia32 open programs are loaded (file.bpf.c): the LSM tier leaves ia32 opens to them. */
const volatile __u32 ia32_hooked __weak = 0;

/* A flow record is written each time a socket has sent this many more bytes. */
const volatile __u64 flow_report_bytes __weak = 1024 * 1024;

/* Sized by the daemon before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} events SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct agent_loss_counters);
} loss_counters SEC(".maps") __weak;

/*
 * Connected inet sockets of sessions, by socket cookie: registered at connect (net.bpf.c,
 * uring_net.bpf.c, the socket hook in flow.bpf.c), counted by the cgroup_skb programs and
 * reported at thresholds and at release (flow.bpf.c). Not LRU: an eviction would end a
 * socket's count without its final record and lose what it sent since its last one, with no
 * trace. Every entry is removed: a TCP socket always reaches TCP_CLOSE before it is destroyed
 * (flow_tcp_close), and a datagram socket counted here was made in a session, whose root's
 * sock_release hook sees it go (a socket made elsewhere gets no cookie from the connect hook,
 * which runs for the socket's own cgroup, so it is never registered). When the map is full a
 * socket is not counted, and that is counted as a lost flow record (agent.loss).
 */
struct flow_state {
	__u64 session_cgid;
	__u64 cgroup_id;
	__u64 start_ns;
	__u32 pid;
	__u32 tid;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 reported_sent;
	__u64 reported_received;
	/* TCP: the next sequence number expected in each direction, so a retransmitted segment
	 * is not counted twice (0 in *_seen: no segment seen yet). */
	__u32 tx_next;
	__u32 rx_next;
	__u8 tx_seen;
	__u8 rx_seen;
	/* 1: the connect that registered it is not reported yet (pending_connects holds it): its
	 * first payload or its close reports it (flow.bpf.c). */
	__u8 deferred;
	__u8 _pad[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct flow_state);
} flows SEC(".maps") __weak;

/* Roots found through a pattern: cgroup id -> index of the pattern it matched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} dyn_roots SEC(".maps") __weak;

/* Bumped whenever a root is added or removed: the gate's cached answers are then stale. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} roots_gen SEC(".maps") __weak;

/* Each CPU's last gate answer (session.bpf.h). */
#define GATE_CHECK 0x9e3779b97f4a7c15ULL
struct gate_entry {
	__u64 cgid;
	__u64 session;
	__u64 gen;
	__u64 check;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gate_entry);
} gate_cache SEC(".maps") __weak;

static __always_inline void bump_roots_gen(void)
{
	__u32 zero = 0;
	__u64 *gen = bpf_map_lookup_elem(&roots_gen, &zero);
	if (gen)
		__sync_fetch_and_add(gen, 1);
}

/* Room to build one variable-size record before copying it into the ring. Each program that
 * builds one asserts that its largest fits (process.bpf.c, file.bpf.c). */
#define SCRATCH_SIZE 32768
/*
 * The scratch area's value names every record that crosses the ring (and the iterator's), so
 * the object's BTF, which keeps the types of maps and globals but not of locals, carries the
 * layout each was compiled with: RecordLayoutTests compares Swift's with it.
 */
union scratch_buf {
	__u8 bytes[SCRATCH_SIZE];
	struct agent_exec exec;
	struct agent_open open;
	struct agent_fork fork;
	struct agent_exit exit;
	struct agent_connect connect;
	struct agent_flow flow;
	struct agent_loss loss;
	struct agent_cgroup cgroup;
	struct agent_task_start task_start;
	struct agent_send send;
	struct agent_dns dns;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union scratch_buf);
} scratch SEC(".maps") __weak;

static __always_inline void *scratch_area(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

/* No wakeup per record: the reader polls on a short timer and is woken only when a lot waits. */
static __always_inline __u64 ring_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									      : BPF_RB_NO_WAKEUP;
}

/* A record's header: about process pid (thread tid) in cgroup cgid of session; 0s for none. */
static __always_inline void fill_hdr_of(struct agent_hdr *h, __u8 kind, __u16 size, __u32 pid, __u32 tid,
					__u64 session, __u64 cgid)
{
	h->kind = kind;
	h->flags = 0;
	h->size = size;
	h->pid = pid;
	h->tid = tid;
	h->_pad0 = 0;
	h->ktime_ns = bpf_ktime_get_boot_ns();
	h->session_cgid = session;
	h->cgroup_id = cgid;
}

/* A record's header about the current task. */
static __always_inline void fill_hdr(struct agent_hdr *h, __u8 kind, __u16 size, __u64 session)
{
	__u64 id = bpf_get_current_pid_tgid();
	fill_hdr_of(h, kind, size, id >> 32, (__u32)id, session, bpf_get_current_cgroup_id());
}

/*
 * A record of kind could not be written. A loss record that could not be written loses nothing
 * (what it would have said stays owed and the next one says it), so it is counted once until
 * one is written: a full ring does not count each attempt to report into it.
 */
static __always_inline void count_drop(__u8 kind)
{
	__u32 zero = 0;
	struct agent_loss_counters *c = bpf_map_lookup_elem(&loss_counters, &zero);
	if (!c || kind >= AGENT_KIND_COUNT)
		return;
	if (kind == AGENT_KIND_LOSS && c->dropped[kind] != c->reported[kind])
		return;
	__sync_fetch_and_add(&c->dropped[kind], 1);
}

/*
 * Room in the ring for a record of size bytes (a constant), or NULL. The one place the programs
 * reserve ring space, so no reservation can fail uncounted.
 */
static __always_inline void *ring_reserve(__u64 size, __u8 kind)
{
	void *r = bpf_ringbuf_reserve(&events, size, 0);
	if (!r)
		count_drop(kind);
	return r;
}

static __always_inline void submit_record(void *r)
{
	bpf_ringbuf_submit(r, ring_flags());
}

/* Submit and wake the reader now: for what the daemon has a race to win. */
static __always_inline void submit_record_now(void *r)
{
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
}

/*
 * If this CPU dropped records since its last loss record, put a loss record into the stream
 * now, ahead of the record about to be written. Each kind's share is claimed with a
 * compare-and-swap so two programs interleaved on one CPU never report the same drop twice.
 * It reserves through ring_reserve like any record, so a loss record that does not fit is
 * counted (count_drop), and never through reserve_record, which would call back here. Its
 * header names no process: it runs in socket programs too, which have no current task.
 */
static __always_inline void report_loss(void)
{
	__u32 zero = 0;
	struct agent_loss_counters *c = bpf_map_lookup_elem(&loss_counters, &zero);
	if (!c)
		return;
	int pending = 0;
#pragma unroll
	for (int k = 1; k < AGENT_KIND_COUNT; k++)
		pending |= c->dropped[k] != c->reported[k];
	if (!pending)
		return;
	struct agent_loss *l = ring_reserve(sizeof(*l), AGENT_KIND_LOSS);
	if (!l)
		return;
	fill_hdr_of(&l->hdr, AGENT_KIND_LOSS, sizeof(*l), 0, 0, 0, 0);
	l->dropped[0] = 0;
#pragma unroll
	for (int k = 1; k < AGENT_KIND_COUNT; k++) {
		__u64 d = c->dropped[k], r = c->reported[k], delta = 0;
		if (d != r && __sync_val_compare_and_swap(&c->reported[k], r, d) == r)
			delta = d - r;
		l->dropped[k] = delta;
	}
	submit_record(l);
}

/* Reserve a fixed-size record, after any loss record owed; a failed reservation is counted. */
static __always_inline void *reserve_record(__u64 size, __u8 kind)
{
	report_loss();
	return ring_reserve(size, kind);
}

/*
 * Copy a record built in the scratch area into the ring, after any loss record owed: only its
 * real size is used. The one place the programs copy into the ring; a failure is counted.
 */
static __always_inline void output_record(void *buf, __u64 size, __u8 kind)
{
	report_loss();
	if (size > SCRATCH_SIZE)
		size = SCRATCH_SIZE;
	/* Checked again where the call takes it: 6.1's verifier lost the bound when the compiler
	 * compared one copy of size and passed another (on_uring_complete was refused). */
	barrier_var(size);
	if (size > SCRATCH_SIZE)
		return;
	if (bpf_ringbuf_output(&events, buf, size, ring_flags()))
		count_drop(kind);
}

#endif
