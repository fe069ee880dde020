/* The session gate: the first thing every handler does. */
#ifndef AGENTWATCH_SESSION_BPF_H
#define AGENTWATCH_SESSION_BPF_H

#include "common.bpf.h"

/*
 * The session of the current task computed from the hierarchy: the cgroup id of the child of a
 * session root that contains the task's cgroup, or 0 when the task is in no session. Any cgroup
 * below a root is a session, so a session created a moment ago is seen without waiting for the
 * daemon. Roots found through a pattern sit at the pattern's depth in dyn_roots.
 */
static __always_inline __u64 session_from_hierarchy(void)
{
#pragma unroll
	for (int i = 0; i < AGENT_MAX_ROOTS; i++) {
		if (i >= nroots)
			break;
		if (bpf_get_current_ancestor_cgroup_id(root_level[i]) == root_cgid[i])
			return bpf_get_current_ancestor_cgroup_id(root_level[i] + 1);
	}
#pragma unroll
	for (int i = 0; i < AGENT_MAX_PATTERNS; i++) {
		if (i >= npatterns)
			break;
		__u32 level = patterns[i].depth;
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (id && bpf_map_lookup_elem(&dyn_roots, &id))
			return bpf_get_current_ancestor_cgroup_id(level + 1);
	}
	return 0;
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
		return session_from_hierarchy();
	__u64 gen = *genp;
	if (e->cgid == cgid && e->gen == gen && e->check == (cgid ^ e->session ^ gen ^ GATE_CHECK))
		return e->session;
	__u64 session = session_from_hierarchy();
	e->cgid = cgid;
	e->session = session;
	e->gen = gen;
	e->check = cgid ^ session ^ gen ^ GATE_CHECK;
	return session;
}

#endif
