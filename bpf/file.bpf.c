// SPDX-License-Identifier: GPL-2.0
/* File opens: openat and openat2. Syscall hooks: attached only while a session exists. */
#include "lib/session.bpf.h"
#include "lib/task.bpf.h"
#include "lib/identity.bpf.h"

/* The open tail (requested | path) as the verifier sees it at most: the requested path is
 * read with its NUL, the resolved one is written after it. */
#define OPEN_RECORD_MAX (sizeof(struct agent_open) + 2 * AGENT_PATH_MAX)
_Static_assert(OPEN_RECORD_MAX <= SCRATCH_SIZE, "the largest open record fits the scratch area");
_Static_assert(OPEN_RECORD_MAX <= AGENT_RECORD_SIZE_MAX, "the largest open record's size fits hdr.size");

struct open_args {
	__u64 path;  /* user pointer to the path */
	__u64 flags;
	__u32 mode;
	__s32 dfd;
	__u8 via; /* enum agent_open_via */
	__u8 _pad[7];
};

/* Arguments saved at entry, keyed by thread id, taken at exit. LRU: a thread killed in the
 * syscall never leaks an entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct open_args);
} open_inflight SEC(".maps");

static __always_inline int save_open(__s32 dfd, __u64 path, __u64 flags, __u32 mode, __u8 via)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct open_args a = { .path = path, .flags = flags, .mode = mode, .dfd = dfd, .via = via };
	bpf_map_update_elem(&open_inflight, &tid, &a, BPF_ANY);
	return 0;
}

static __always_inline int emit_open(__u64 session, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct open_args *saved = bpf_map_lookup_elem(&open_inflight, &tid);
	if (!saved)
		return 0;
	struct open_args a = *saved;
	bpf_map_delete_elem(&open_inflight, &tid);

	struct agent_open *o = scratch_area();
	if (!o)
		return 0;
	fill_hdr(&o->hdr, AGENT_KIND_OPEN, 0, session);
	o->start_ns = task_start_ns((struct task_struct *)bpf_get_current_task_btf());
	__u64 ugid = bpf_get_current_uid_gid();
	o->uid = (__u32)ugid;
	o->gid = ugid >> 32;
	o->ret = ret;
	o->flags = a.flags;
	o->mode = a.mode;
	o->dfd = a.dfd;
	o->path_len = 0;
	o->via = a.via;
	__builtin_memset(o->_pad0, 0, sizeof(o->_pad0));
	file_identity(NULL, &o->id);

	/* At exit the kernel has just copied the path, so its page is resident. */
	long n = bpf_probe_read_user_str(o->data, AGENT_PATH_MAX, (void *)a.path);
	__u32 len = 0;
	if (n > 0) {
		len = (__u32)n - 1;
		if (len > AGENT_PATH_MAX - 1)
			len = AGENT_PATH_MAX - 1;
		if (n == AGENT_PATH_MAX)
			o->hdr.flags |= AGENT_F_PATH_TRUNCATED;
	}
	o->requested_len = len;
	if (len > AGENT_PATH_MAX - 1)
		return 0;

	/* The path the kernel resolved: that of the file now installed at the new descriptor. */
	bool cut = false;
	__u32 plen = 0;
	if (!resolve_paths) {
		/* Measuring mode: no dentry walk. */
	} else if (ret >= 0) {
		struct file *f = current_file((int)ret);
		if (f)
			plen = path_to_string(&f->f_path, o->data + len, &cut);
		file_identity(f, &o->id);
	} else if (len > 0 && o->data[0] != '/') {
		/* A failed relative open: the directory it was relative to, so the daemon can show
		 * the path made absolute as well as can be done. */
		struct task_struct *task = bpf_get_current_task_btf();
		struct file *f = a.dfd == AT_FDCWD ? NULL : current_file(a.dfd);
		if (f)
			plen = path_to_string(&f->f_path, o->data + len, &cut);
		else if (a.dfd == AT_FDCWD)
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
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int on_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!current_session())
		return 0;
	return save_open((__s32)ctx->args[0], ctx->args[1], ctx->args[2], (__u32)ctx->args[3], AGENT_VIA_OPENAT);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int on_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	return emit_open(session, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int on_openat2_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!current_session())
		return 0;
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return save_open((__s32)ctx->args[0], ctx->args[1], how.flags, (__u32)how.mode, AGENT_VIA_OPENAT2);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int on_openat2_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	return emit_open(session, ctx->ret);
}
