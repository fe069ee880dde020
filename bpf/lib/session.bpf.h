/* The session gate: the first thing every handler does. */
#ifndef AGENTWATCH_SESSION_BPF_H
#define AGENTWATCH_SESSION_BPF_H

#include "common.bpf.h"
#include "core_fixes.bpf.h"

/* The id of the ancestor of cgrp at level, 0 past its depth; cgrp NULL: of the current task
 * (the helper, which needs no fix for the kernel's layout). */
static __always_inline __u64 ancestor_id(struct cgroup *cgrp, __u32 level)
{
	if (!cgrp)
		return bpf_get_current_ancestor_cgroup_id(level);
	return core_cgroup_ancestor_id(cgrp, level);
}

/*
 * The session holding cgroup cgrp (NULL: the current task's), computed from the hierarchy:
 * the id of the child of a session root that contains it, or 0 when it is in no session. Any
 * cgroup below a root is a session, so a session created a moment ago is seen without waiting
 * for the daemon. Roots found through a pattern sit at the pattern's depth in dyn_roots. The
 * gate inlines this with cgrp NULL, which leaves only the helper calls.
 */
static __always_inline __u64 session_of(struct cgroup *cgrp)
{
#pragma unroll
	for (int i = 0; i < AGENT_MAX_ROOTS; i++) {
		if (i >= nroots)
			break;
		if (ancestor_id(cgrp, root_level[i]) == root_cgid[i])
			return ancestor_id(cgrp, root_level[i] + 1);
	}
#pragma unroll
	for (int i = 0; i < AGENT_MAX_PATTERNS; i++) {
		if (i >= npatterns)
			break;
		__u32 level = patterns[i].depth;
		__u64 id = ancestor_id(cgrp, level);
		if (id && bpf_map_lookup_elem(&dyn_roots, &id))
			return ancestor_id(cgrp, level + 1);
	}
	return 0;
}

/* Uses of channels the programs see but do not decode, by session and channel (session.end). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct agent_undecoded_key);
	__type(value, __u64);
} undecoded SEC(".maps") __weak;

static __always_inline void count_undecoded(__u64 session, __u32 channel)
{
	struct agent_undecoded_key k = { .session = session, .channel = channel };
	__u64 *n = bpf_map_lookup_elem(&undecoded, &k);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	__u64 one = 1;
	if (bpf_map_update_elem(&undecoded, &k, &one, BPF_NOEXIST) != 0) {
		n = bpf_map_lookup_elem(&undecoded, &k);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
}

/*
 * The gate, the first thing every handler does: the session of the current task, or 0.
 * A cgroup's ancestors never change (cgroup2 renames within a parent only), so the answer for
 * a cgroup id changes only when a root is added or removed, which bumps roots_gen. Each CPU
 * keeps its last answer: a task that keeps running on a CPU (a tight syscall loop) pays one
 * cgroup-id read and two array lookups instead of the ancestor walks and the hash lookup.
 * The check word makes a torn entry a miss.
 */
static __always_inline __u64 current_session(void)
{
	__u32 zero = 0;
	__u64 cgid = bpf_get_current_cgroup_id();
	__u64 *genp = bpf_map_lookup_elem(&roots_gen, &zero);
	struct gate_entry *e = bpf_map_lookup_elem(&gate_cache, &zero);
	if (!genp || !e)
		return session_of(NULL);
	__u64 gen = *genp;
	if (e->cgid == cgid && e->gen == gen && e->check == (cgid ^ e->session ^ gen ^ GATE_CHECK))
		return e->session;
	__u64 session = session_of(NULL);
	e->cgid = cgid;
	e->session = session;
	e->gen = gen;
	e->check = cgid ^ session ^ gen ^ GATE_CHECK;
	return session;
}

#endif
