// SPDX-License-Identifier: GPL-2.0
/*
 * File opens through the open syscalls: openat, openat2, open, creat and open_by_handle_at.
 * Syscall hooks: attached only while a session exists. io_uring opens, which make none of
 * these calls, are uring_file.bpf.c's. Failed opens are recorded too.
 *
 * open and creat exist on x86_64 only among the architectures agentwatch builds for (arm64
 * has openat alone): the daemon attaches their hooks where the tracepoints exist. A 32-bit
 * process's calls (ia32 emulation) reach no syscalls/ tracepoint, these or openat.
 */
#include "lib/open.bpf.h"

struct open_args {
	__u64 path;  /* user pointer to the path (0: the call takes none) */
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

	struct agent_open *o = open_begin(session, ret, a.flags, a.mode, a.dfd, a.via);
	if (!o)
		return 0;

	/* At exit the kernel has just copied the path, so its page is resident. */
	__u32 len = 0;
	if (a.path) {
		long n = bpf_probe_read_user_str(o->data, AGENT_PATH_MAX, (void *)a.path);
		if (n > 0) {
			len = (__u32)n - 1;
			if (len > AGENT_PATH_MAX - 1)
				len = AGENT_PATH_MAX - 1;
			if (n == AGENT_PATH_MAX)
				o->hdr.flags |= AGENT_F_PATH_TRUNCATED;
		}
	}
	/* The path the kernel resolved: that of the file now installed at the new descriptor. */
	struct file *f = ret >= 0 && resolve_paths ? current_file((int)ret) : NULL;
	open_finish(o, len, f, ret < 0);
	return 0;
}

/* Every open syscall's exit: the record, if its entry was seen. */
#define OPEN_EXIT(name)                                                    \
	SEC("tracepoint/syscalls/sys_exit_" #name)                         \
	int on_##name##_exit(struct trace_event_raw_sys_exit *ctx)         \
	{                                                                  \
		__u64 session = current_session();                         \
		if (!session)                                              \
			return 0;                                          \
		return emit_open(session, ctx->ret);                       \
	}

SEC("tracepoint/syscalls/sys_enter_openat")
int on_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!current_session())
		return 0;
	return save_open((__s32)ctx->args[0], ctx->args[1], ctx->args[2], (__u32)ctx->args[3], AGENT_VIA_OPENAT);
}
OPEN_EXIT(openat)

SEC("tracepoint/syscalls/sys_enter_openat2")
int on_openat2_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!current_session())
		return 0;
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return save_open((__s32)ctx->args[0], ctx->args[1], how.flags, (__u32)how.mode, AGENT_VIA_OPENAT2);
}
OPEN_EXIT(openat2)

/* open(path, flags, mode): openat relative to the working directory. */
SEC("tracepoint/syscalls/sys_enter_open")
int on_open_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!current_session())
		return 0;
	return save_open(AT_FDCWD, ctx->args[0], ctx->args[1], (__u32)ctx->args[2], AGENT_VIA_OPEN);
}
OPEN_EXIT(open)

/* creat(path, mode): open with O_CREAT | O_WRONLY | O_TRUNC, as the kernel does it. */
SEC("tracepoint/syscalls/sys_enter_creat")
int on_creat_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!current_session())
		return 0;
	return save_open(AT_FDCWD, ctx->args[0], O_CREAT | O_WRONLY | O_TRUNC, (__u32)ctx->args[1], AGENT_VIA_CREAT);
}
OPEN_EXIT(creat)

/*
 * open_by_handle_at(mount_fd, handle, flags): a file named by a handle (name_to_handle_at), no
 * path. The record's dirfd is mount_fd, its requested path empty; the path is the one resolved
 * from the descriptor installed. A failed one (EPERM without CAP_DAC_READ_SEARCH, ESTALE) has
 * only what the call was given: no path, no identity.
 */
SEC("tracepoint/syscalls/sys_enter_open_by_handle_at")
int on_open_by_handle_at_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!current_session())
		return 0;
	return save_open((__s32)ctx->args[0], 0, ctx->args[2], 0, AGENT_VIA_OPEN_BY_HANDLE_AT);
}
OPEN_EXIT(open_by_handle_at)
