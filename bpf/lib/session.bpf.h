/* The session gate: the first thing every handler does. */
#ifndef AGENTWATCH_SESSION_BPF_H
#define AGENTWATCH_SESSION_BPF_H

#include "common.bpf.h"

/*
 * The session the current task belongs to: the cgroup id of the child of a session root that
 * contains the task's cgroup, or 0 when the task is in no session. Any cgroup below a root is a
 * session, so a session created a moment ago is seen without waiting for the daemon. Roots
 * found through a pattern sit at the pattern's depth: one ancestor and one hash lookup per
 * pattern, nothing when no pattern is configured.
 */
static __always_inline __u64 current_session(void)
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

#endif
