/* The session gate: the first thing every handler does. */
#ifndef AGENTWATCH_SESSION_BPF_H
#define AGENTWATCH_SESSION_BPF_H

#include "common.bpf.h"

/*
 * The session the current task belongs to: the cgroup id of the child of a session root that
 * contains the task's cgroup, or 0 when the task is in no session. Any cgroup below a root is a
 * session, so a session created a moment ago is seen without waiting for the daemon.
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
	return 0;
}

#endif
