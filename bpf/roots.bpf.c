// SPDX-License-Identifier: GPL-2.0
/*
 * Session roots that appear while the daemon runs (session_roots entries with '*', such as
 * user.slice/user-*.slice/user@*.service/agentwatch.slice for systemd user scopes). A root is
 * matched here, at mkdir, and added to the gate's dyn_roots before any process can be moved
 * below it, so a session's first exec is never missed; the daemon is woken to attach its
 * syscall and socket hooks. Attached only when a pattern is configured.
 */
#include "lib/session.bpf.h"

/* Cgroup names are kernfs names: at most NAME_MAX bytes. */
#define NAME_BUF 256

struct name_buf {
	char b[NAME_BUF];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct name_buf);
} root_name SEC(".maps");

/*
 * 1 when the name in this CPU's root_name buffer (n bytes) fits component d of pattern p.
 * A global function: verified once, not once per call site.
 */
__noinline int root_part_matches(__u32 p, __u32 d, __u32 n)
{
	__u32 zero = 0;
	struct name_buf *buf = bpf_map_lookup_elem(&root_name, &zero);
	if (!buf || p >= AGENT_MAX_PATTERNS || d >= AGENT_PATTERN_DEPTH || n >= NAME_BUF)
		return 0;
	const volatile struct agent_pattern_part *part = &patterns[p].parts[d];
	__u32 plen = part->prefix_len, slen = part->suffix_len;
	if (plen > AGENT_PATTERN_PART || slen > AGENT_PATTERN_PART)
		return 0;
	if (part->wildcard ? n < plen + slen : n != plen)
		return 0;
	for (__u32 i = 0; i < AGENT_PATTERN_PART; i++) {
		if (i >= plen)
			break;
		if (buf->b[i] != part->prefix[i])
			return 0;
	}
	for (__u32 i = 0; i < AGENT_PATTERN_PART; i++) {
		if (i >= slen)
			break;
		if (buf->b[(n - slen + i) & (NAME_BUF - 1)] != part->suffix[i])
			return 0;
	}
	return 1;
}

/* Reads the name of the ancestor of cgrp at level into root_name; its length, or -1. */
static __always_inline long read_ancestor_name(struct cgroup *cgrp, __u32 level)
{
	__u32 zero = 0;
	struct name_buf *buf = bpf_map_lookup_elem(&root_name, &zero);
	struct cgroup *anc = core_cgroup_ancestor(cgrp, level);
	if (!buf || !anc)
		return -1;
	long n = bpf_probe_read_kernel_str(buf->b, NAME_BUF, BPF_CORE_READ(anc, kn, name));
	return n > 0 ? n - 1 : -1;
}

/* name: the cgroup's own name, or (path given) the path the tracepoint rendered. */
static __always_inline void notify(__u32 op, struct cgroup *cgrp, const char *path, __u64 cgid, __u64 parent_cgid,
				   __u32 pattern, __u32 moved_pid)
{
	struct agent_cgroup *c = reserve_record(sizeof(*c), AGENT_KIND_CGROUP);
	if (!c)
		return;
	fill_hdr(&c->hdr, AGENT_KIND_CGROUP, sizeof(*c), 0);
	c->cgid = cgid;
	c->parent_cgid = parent_cgid;
	c->op = op;
	c->pattern = pattern;
	c->uid = (__u32)bpf_get_current_uid_gid();
	c->moved_pid = moved_pid;
	c->_pad0 = 0;
	bpf_get_current_comm(c->comm, sizeof(c->comm));
	long n = path ? bpf_probe_read_kernel_str(c->name, AGENT_CGROUP_NAME, path)
		      : bpf_probe_read_kernel_str(c->name, AGENT_CGROUP_NAME, BPF_CORE_READ(cgrp, kn, name));
	c->name_len = n > 0 ? (__u32)n - 1 : 0;
	if (n == AGENT_CGROUP_NAME)
		c->hdr.flags |= AGENT_F_PATH_TRUNCATED;
	/* A root or session made: the daemon has a race to win, wake it now. A move can wait. */
	if (op == AGENT_CGROUP_MOVED)
		submit_record(c);
	else
		submit_record_now(c);
}

/* Only the cgroup2 hierarchy (hierarchy id 0): a hybrid host mirrors the same tree in v1. */
static __always_inline int on_default_hierarchy(struct cgroup *cgrp)
{
	return BPF_CORE_READ(cgrp, root, hierarchy_id) == 0;
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(on_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	if (!npatterns || !on_default_hierarchy(cgrp))
		return 0;
	__u32 level = BPF_CORE_READ(cgrp, level);
	__u64 id = BPF_CORE_READ(cgrp, kn, id);

	/* A session made below a root found through a pattern. */
	__u64 parent_id = level > 0 ? ancestor_id(cgrp, level - 1) : 0;
	__u32 *root = parent_id ? bpf_map_lookup_elem(&dyn_roots, &parent_id) : NULL;
	if (root) {
		notify(AGENT_CGROUP_SESSION_ADDED, cgrp, NULL, id, parent_id, *root, 0);
		return 0;
	}

	for (__u32 p = 0; p < AGENT_MAX_PATTERNS; p++) {
		if (p >= npatterns)
			break;
		if (patterns[p].depth != level)
			continue;
		int matched = 1;
		for (__u32 d = 0; d < AGENT_PATTERN_DEPTH; d++) {
			if (d >= level)
				break;
			long n = read_ancestor_name(cgrp, d + 1);
			if (n < 0 || !root_part_matches(p, d, (__u32)n)) {
				matched = 0;
				break;
			}
		}
		if (matched) {
			bpf_map_update_elem(&dyn_roots, &id, &p, BPF_ANY);
			bump_roots_gen();
			notify(AGENT_CGROUP_ROOT_ADDED, cgrp, NULL, id, parent_id, p, 0);
			return 0;
		}
	}
	return 0;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(on_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	if (!npatterns || !on_default_hierarchy(cgrp))
		return 0;
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	if (bpf_map_delete_elem(&dyn_roots, &id) == 0)
		bump_roots_gen();
	return 0;
}

/*
 * A process moved to another cgroup. Always attached (a cgroup tracepoint, no syscall slow
 * path); moves are rare. The daemon knows which processes are in sessions and tells an escape
 * (a session process moved out of its session) from an ordinary move.
 */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(on_cgroup_attach_task, struct cgroup *dst, const char *path, struct task_struct *task, bool threadgroup)
{
	if (!on_default_hierarchy(dst))
		return 0;
	__u64 id = BPF_CORE_READ(dst, kn, id);
	notify(AGENT_CGROUP_MOVED, dst, path, id, session_of(dst), 0, BPF_CORE_READ(task, tgid));
	return 0;
}
