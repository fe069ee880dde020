/*
 * Building a file.open record (struct agent_open) in the scratch area: shared by the syscall
 * hooks (file.bpf.c) and the io_uring ones (uring_file.bpf.c), so every way of opening a file
 * gives the same record.
 */
#ifndef AGENTWATCH_OPEN_BPF_H
#define AGENTWATCH_OPEN_BPF_H

#include "session.bpf.h"
#include "task.bpf.h"
#include "identity.bpf.h"

/* The open tail (requested | path) as the verifier sees it at most: the requested path is
 * read with its NUL, the resolved one is written after it. */
#define OPEN_RECORD_MAX (sizeof(struct agent_open) + 2 * AGENT_PATH_MAX)
_Static_assert(OPEN_RECORD_MAX <= SCRATCH_SIZE, "the largest open record fits the scratch area");
_Static_assert(OPEN_RECORD_MAX <= AGENT_RECORD_SIZE_MAX, "the largest open record's size fits hdr.size");

/* A record about the current task in the scratch area, its tail empty and its file unknown;
 * NULL when there is no scratch area. */
static __always_inline struct agent_open *open_begin(__u64 session, long ret, __u64 flags, __u32 mode, __s32 dfd,
						     __u8 via)
{
	struct agent_open *o = scratch_area();
	if (!o)
		return NULL;
	fill_hdr(&o->hdr, AGENT_KIND_OPEN, 0, session);
	o->start_ns = task_start_ns((struct task_struct *)bpf_get_current_task_btf());
	__u64 ugid = bpf_get_current_uid_gid();
	o->uid = (__u32)ugid;
	o->gid = ugid >> 32;
	o->ret = ret;
	o->flags = flags;
	o->mode = mode;
	o->dfd = dfd;
	o->requested_len = 0;
	o->path_len = 0;
	o->via = via;
	__builtin_memset(o->_pad0, 0, sizeof(o->_pad0));
	file_identity(NULL, &o->id);
	return o;
}

/*
 * Finishes and writes record o whose tail holds the requested path (len bytes). f: the file
 * the open installed (NULL: none, or not known); its absolute path is written after the
 * requested one and its identity into o->id. base: no file, and the request was relative: the
 * directory it was relative to (o->dfd or the working directory of the current task, which
 * must share the opener's descriptors and fs) is written instead, so the daemon can show the
 * path made absolute as well as can be done.
 */
static __always_inline void open_finish(struct agent_open *o, __u32 len, struct file *f, bool base)
{
	if (len > AGENT_PATH_MAX - 1)
		return;
	o->requested_len = len;
	bool cut = false;
	__u32 plen = 0;
	if (!resolve_paths) {
		/* Measuring mode: no dentry walk. */
	} else if (f) {
		plen = path_to_string(&f->f_path, o->data + len, &cut);
		file_identity(f, &o->id);
	} else if (base && len > 0 && o->data[0] != '/') {
		struct task_struct *task = bpf_get_current_task_btf();
		__s32 dfd = o->dfd;
		struct file *d = dfd == AT_FDCWD ? NULL : current_file(dfd);
		if (d)
			plen = path_to_string(&d->f_path, o->data + len, &cut);
		else if (dfd == AT_FDCWD)
			plen = path_to_string(&task->fs->pwd, o->data + len, &cut);
		if (plen)
			o->hdr.flags |= AGENT_F_PATH_IS_BASE;
	}
	if (cut)
		o->hdr.flags |= AGENT_F_PATH_TRUNCATED;
	if (plen > AGENT_PATH_MAX - 1)
		plen = AGENT_PATH_MAX - 1;
	o->path_len = plen;
	__u64 total = sizeof(*o) + len + plen;
	o->hdr.size = total;
	output_record(o, total, AGENT_KIND_OPEN);
}

/* The length of the requested path a string read (which returned n) just put in o's tail;
 * a path that filled the tail is marked truncated. */
static __always_inline __u32 requested_path_len(struct agent_open *o, long n)
{
	if (n <= 0)
		return 0;
	__u32 len = (__u32)n - 1;
	if (len > AGENT_PATH_MAX - 1)
		len = AGENT_PATH_MAX - 1;
	if (n == AGENT_PATH_MAX)
		o->hdr.flags |= AGENT_F_PATH_TRUNCATED;
	return len;
}

/* An open call as its entry saw it: what a record needs besides the result. */
struct open_args {
	__u64 path;  /* user pointer to the path (0: the call takes none) */
	__u64 flags;
	__u32 mode;
	__s32 dfd;
	__u8 via; /* enum agent_open_via */
	__u8 ia32; /* an ia32 syscall */
	__u8 _pad[6];
};

/*
 * The record of open call a, which returned ret, written at its exit (the syscall's, or on the
 * fentry tier the kernel function's), where the kernel has just copied the path, so its page
 * is resident. The path is read from the caller's memory as the call named it.
 */
static __always_inline int open_record(__u64 session, const struct open_args *a, long ret)
{
	struct agent_open *o = open_begin(session, ret, a->flags, a->mode, a->dfd, a->via);
	if (!o)
		return 0;
	if (a->ia32)
		o->hdr.flags |= AGENT_F_IA32;
	__u32 len = a->path ? requested_path_len(o, bpf_probe_read_user_str(o->data, AGENT_PATH_MAX, (void *)a->path)) : 0;
	/* The path the kernel resolved: that of the file now installed at the new descriptor. */
	struct file *f = ret >= 0 && resolve_paths ? current_file((int)ret) : NULL;
	open_finish(o, len, f, ret < 0);
	return 0;
}

#endif
