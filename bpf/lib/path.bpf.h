/* Absolute paths from the kernel's own objects (struct path), as d_path would build them. */
#ifndef AGENTWATCH_PATH_BPF_H
#define AGENTWATCH_PATH_BPF_H

#include "common.bpf.h"

/* Components walked per path at most (a PATH_MAX path of one-letter names has 2048); a deeper
 * path is cut at its root end and flagged. */
#define PATH_MAX_COMPONENTS 2048
#define NAME_MAX_LEN 255
/* Two halves: the path is built backwards ending at PATH_HALF - 1, and a name written at any
 * offset below PATH_HALF stays inside the buffer, which the verifier can see. */
#define PATH_HALF AGENT_PATH_MAX
#define PATH_BUF_SIZE (2 * AGENT_PATH_MAX)

struct path_buf {
	char bytes[PATH_BUF_SIZE];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_buf);
} path_scratch SEC(".maps") __weak;

static __always_inline struct mount *real_mount(struct vfsmount *vm)
{
	return (struct mount *)((void *)vm - bpf_core_field_offset(struct mount, mnt));
}

struct path_walk {
	struct dentry *d;
	struct vfsmount *vm;
	struct mount *mnt;
	struct path_buf *b;
	__u32 pos; /* where the path built so far begins; it ends at PATH_HALF - 1 */
	bool truncated;
	bool done;
};

/* One step up: prepend the current dentry's name, or cross to the parent mount. */
static long path_walk_step(__u32 i, void *data)
{
	struct path_walk *w = data;
	/* Locals, not w->...: CO-RE relocations apply to kernel types only. */
	struct dentry *d = w->d;
	struct vfsmount *vm = w->vm;
	struct mount *mnt = w->mnt;
	struct dentry *mnt_root = BPF_CORE_READ(vm, mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (d == mnt_root || d == parent) {
		struct mount *mparent = BPF_CORE_READ(mnt, mnt_parent);
		if (d == mnt_root && mnt != mparent) {
			/* The root of a mounted filesystem: go on from where it is mounted. */
			w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
			w->mnt = mparent;
			w->vm = &mparent->mnt;
			return 0;
		}
		w->done = true;
		return 1;
	}
	struct qstr name = BPF_CORE_READ(d, d_name);
	__u32 len = name.len;
	if (len > NAME_MAX_LEN)
		len = NAME_MAX_LEN;
	__u32 pos = w->pos;
	if (len + 1 > pos) {
		w->truncated = true;
		w->done = true;
		return 1;
	}
	pos -= len;
	bpf_probe_read_kernel(&w->b->bytes[pos & (PATH_HALF - 1)], len & NAME_MAX_LEN, name.name);
	pos -= 1;
	w->b->bytes[pos & (PATH_HALF - 1)] = '/';
	w->pos = pos;
	w->d = parent;
	return 0;
}

/*
 * Writes the absolute path of `p` into `out` (at most AGENT_PATH_MAX - 1 bytes, no NUL) and
 * returns its length; sets *truncated when components had to be left out. Walks dentries up to
 * the mount's root, then crosses to the parent mount, as the kernel's prepend_path does. The
 * walk runs under bpf_loop (5.17+), so the verifier checks one step, not every depth.
 */
static __always_inline __u32 path_to_string(const struct path *p, __u8 *out, bool *truncated)
{
	__u32 zero = 0;
	struct path_buf *b = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!b)
		return 0;
	struct path_walk w = {
		.d = BPF_CORE_READ(p, dentry),
		.vm = BPF_CORE_READ(p, mnt),
		.b = b,
		.pos = PATH_HALF - 1,
	};
	w.mnt = real_mount(w.vm);
	bpf_loop(PATH_MAX_COMPONENTS, path_walk_step, &w, 0);
	if (!w.done || w.truncated)
		*truncated = true;

	__u32 pos = w.pos;
	if (pos > PATH_HALF - 1)
		return 0;
	__u32 len = PATH_HALF - 1 - pos;
	if (len == 0) {
		/* The root itself. */
		out[0] = '/';
		return 1;
	}
	if (len > AGENT_PATH_MAX - 1)
		len = AGENT_PATH_MAX - 1;
	bpf_probe_read_kernel(out, len & (AGENT_PATH_MAX - 1), &b->bytes[pos & (PATH_HALF - 1)]);
	return len;
}

/* The file behind descriptor fd of the current task, or NULL. */
static __always_inline struct file *current_file(int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if (fd < 0 || (unsigned int)fd >= max)
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

#endif
