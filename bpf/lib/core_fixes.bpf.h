/*
 * Kernel fields that differ between the kernels the programs load on (5.15 to today), each read
 * through one helper here with the kernel commit it stems from (bcc's core_fixes.bpf.h).
 *
 * A `struct name___flavour` spells one kernel's layout of `struct name`: libbpf matches it to
 * the running kernel's type by the name before the three underscores. bpf_core_field_exists
 * is resolved at load, so the branch for the other layout is dead code the verifier never
 * walks. Spelling every layout as a flavour keeps this building against any kernel's vmlinux.h.
 *
 * A helper that reads a field some kernels lack is __noinline: inlined into a caller's loop,
 * the compiler hoists the field's offset (a constant to it) out of the loop, above the
 * bpf_core_field_exists test, and on a kernel without the field libbpf's poisoned stand-in
 * for that offset is then reached and the program refused (CoreFixesTests caught exactly
 * that in roots.bpf.c's pattern loop).
 *
 * Checked and needing nothing here (the programs do not read the field, or it changed before
 * 5.15, or CO-RE matches it by name as it is):
 * - task_struct::state became __state in 2f064a59a11f "sched: Change task_struct::state"
 *   (v5.14); not read.
 * - kernfs_node::parent became __parent, and ::name an RCU pointer of the same name and type, in
 *   633488947ef6 "kernfs: Use RCU to access kernfs_node::parent." and 741c10b096bc "kernfs:
 *   Use RCU to access kernfs_node::name." (v6.15); parent is not read, name reads as before.
 * - kernfs_node::id, which cgroup ids are, is a u64 since 67c0496e87d1 "kernfs: convert
 *   kernfs_node->id from union kernfs_node_id to u64" (v5.5).
 * - task_struct::start_boottime since cf25e24db61c "time: Rename tsk->real_start_time to
 *   ->start_boottime" (v5.5).
 * - sock::sk_protocol and ::sk_type are plain u16 since bf9765145b85 "sock: Make sk_protocol a
 *   16-bit value" (v5.6), so BPF_CORE_READ reads them (it cannot read a bitfield).
 */
#ifndef AGENTWATCH_CORE_FIXES_BPF_H
#define AGENTWATCH_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/*
 * 7f203bc89eb6 "cgroup: Replace cgroup->ancestor_ids[] with ->ancestors[]" (v6.1). Before it a
 * cgroup kept the ids of its ancestors, indexed by level; since, pointers to the ancestors.
 */
struct cgroup___ancestors {
	struct cgroup *ancestors[0];
} __attribute__((preserve_access_index));

struct cgroup___ancestor_ids {
	__u64 ancestor_ids[0];
} __attribute__((preserve_access_index));

/* Steps up the hierarchy a kernel before 6.1 is walked at most to find an ancestor. */
#define CGROUP_WALK_MAX 16

/* The ancestor of cgrp at level (cgrp itself at its own level); NULL past its depth. */
static __noinline struct cgroup *core_cgroup_ancestor(struct cgroup *cgrp, __u32 level)
{
	__u32 at = BPF_CORE_READ(cgrp, level);
	struct cgroup *anc = NULL;
	if (level > at)
		return NULL;
	if (bpf_core_field_exists(struct cgroup___ancestors, ancestors)) {
		void *slot = (void *)cgrp + bpf_core_field_offset(struct cgroup___ancestors, ancestors) +
			     level * sizeof(anc);
		if (bpf_probe_read_kernel(&anc, sizeof(anc), slot))
			return NULL;
		return anc;
	}
	/* Before 6.1: up through the parents, as the kernel's own cgroup_ancestor() went then. */
	anc = cgrp;
	for (int i = 0; i < CGROUP_WALK_MAX && at > level; i++, at--) {
		struct cgroup_subsys_state *parent = BPF_CORE_READ(anc, self.parent);
		if (!parent)
			return NULL;
		anc = (void *)parent - bpf_core_field_offset(struct cgroup, self);
	}
	return at == level ? anc : NULL;
}

/* The id of the ancestor of cgrp at level (its kernfs node id); 0 past its depth. */
static __noinline __u64 core_cgroup_ancestor_id(struct cgroup *cgrp, __u32 level)
{
	if (bpf_core_field_exists(struct cgroup___ancestor_ids, ancestor_ids)) {
		__u64 id = 0;
		if (level > (__u32)BPF_CORE_READ(cgrp, level))
			return 0;
		void *slot = (void *)cgrp + bpf_core_field_offset(struct cgroup___ancestor_ids, ancestor_ids) +
			     level * sizeof(id);
		if (bpf_probe_read_kernel(&id, sizeof(id), slot))
			return 0;
		return id;
	}
	struct cgroup *anc = core_cgroup_ancestor(cgrp, level);
	return anc ? BPF_CORE_READ(anc, kn, id) : 0;
}

#endif
