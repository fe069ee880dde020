// SPDX-License-Identifier: GPL-2.0
/*
 * File opens through the open syscalls: openat, openat2, open, creat and open_by_handle_at.
 * Syscall hooks, on the tier the daemon chose: attached only while a session exists. io_uring
 * opens, which make none of these calls, are uring_file.bpf.c's. Failed opens are recorded too.
 *
 * open and creat exist on x86_64 only among the architectures agentwatch builds for (arm64
 * has openat alone): the daemon attaches their hooks where the tracepoints exist. A 32-bit
 * process's calls (ia32 emulation) reach no syscalls/ tracepoint, these or openat, and no
 * __x64_sys_ function: they are not hooked on any tier.
 */
#include "lib/open.bpf.h"

/*
 * The same five calls are hooked on each tier (Sensor.Tier), and each tier's record is built
 * from the same arguments by open_args_of and open_record, so the tiers agree field by field:
 *
 * - tracepoint: sys_enter_X saves the arguments by thread, sys_exit_X writes the record. Any
 *   syscall tracepoint puts every task on the host on the slow syscall path while attached.
 * - fentry: one fexit program on the syscall's own function (__x64_sys_X), which has the
 *   arguments and the result at once: no map, and only callers of X pay.
 * - kprobe: ksyscall/X saves the arguments, kretsyscall/X writes the record, as on the
 *   tracepoint tier; only callers of X pay. The kprobe is on the same syscall wrapper, whose
 *   one argument is the user registers (every kernel agentwatch runs on has the wrappers:
 *   x86_64 since 4.17, arm64 since 4.19), so no BPF_KSYSCALL and its kconfig extern.
 */

/* Arguments saved at entry, keyed by thread id, taken at exit. LRU: a thread killed in the
 * syscall never leaks an entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct open_args);
} open_inflight SEC(".maps");

/*
 * The arguments of open call via from its first four syscall arguments:
 *   openat(dfd, path, flags, mode), openat2(dfd, path, how, size), open(path, flags, mode),
 *   creat(path, mode): open with O_CREAT | O_WRONLY | O_TRUNC, as the kernel does it,
 *   open_by_handle_at(mount_fd, handle, flags): a file named by a handle (name_to_handle_at),
 *   no path. The record's dirfd is mount_fd, its requested path empty; the path is the one
 *   resolved from the descriptor installed. A failed one (EPERM without CAP_DAC_READ_SEARCH,
 *   ESTALE) has only what the call was given: no path, no identity.
 */
static __always_inline void open_args_of(struct open_args *a, __u8 via, __u64 a0, __u64 a1, __u64 a2, __u64 a3)
{
	a->via = via;
	a->dfd = (__s32)a0;
	a->path = a1;
	a->flags = a2;
	a->mode = (__u32)a3;
	if (via == AGENT_VIA_OPENAT2) {
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (void *)a2);
		a->flags = how.flags;
		a->mode = (__u32)how.mode;
	} else if (via == AGENT_VIA_OPEN) {
		a->dfd = AT_FDCWD;
		a->path = a0;
		a->flags = a1;
		a->mode = (__u32)a2;
	} else if (via == AGENT_VIA_CREAT) {
		a->dfd = AT_FDCWD;
		a->path = a0;
		a->flags = O_CREAT | O_WRONLY | O_TRUNC;
		a->mode = (__u32)a1;
	} else if (via == AGENT_VIA_OPEN_BY_HANDLE_AT) {
		a->path = 0;
		a->mode = 0;
	}
}

static __always_inline int save_open(__u8 via, __u64 a0, __u64 a1, __u64 a2, __u64 a3)
{
	if (!current_session())
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct open_args a = {};
	open_args_of(&a, via, a0, a1, a2, a3);
	bpf_map_update_elem(&open_inflight, &tid, &a, BPF_ANY);
	return 0;
}

static __always_inline int emit_open(long ret)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct open_args *saved = bpf_map_lookup_elem(&open_inflight, &tid);
	if (!saved)
		return 0;
	struct open_args a = *saved;
	bpf_map_delete_elem(&open_inflight, &tid);
	return open_record(session, &a, ret);
}

/* The syscall's first four arguments from its user registers (the fentry and kprobe tiers). */
#define SYSCALL_ARGS4(regs)                                                                        \
	PT_REGS_PARM1_CORE_SYSCALL(regs), PT_REGS_PARM2_CORE_SYSCALL(regs), PT_REGS_PARM3_CORE_SYSCALL(regs), \
		PT_REGS_PARM4_CORE_SYSCALL(regs)

/* The record straight from the syscall's registers and result (the fentry tier). */
static __always_inline int open_from_regs(__u8 via, const struct pt_regs *regs, long ret)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	struct open_args a = {};
	open_args_of(&a, via, SYSCALL_ARGS4(regs));
	return open_record(session, &a, ret);
}

/* Every tier's programs for open call name. */
#define OPEN_HOOKS(name, via)                                                                      \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                \
	int on_##name##_enter(struct trace_event_raw_sys_enter *ctx)                               \
	{                                                                                          \
		return save_open(via, ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3]);     \
	}                                                                                          \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                                 \
	int on_##name##_exit(struct trace_event_raw_sys_exit *ctx)                                 \
	{                                                                                          \
		return emit_open(ctx->ret);                                                        \
	}                                                                                          \
	SEC("fexit/" SYSCALL_FUNCTION(name))                                                       \
	int BPF_PROG(fexit_##name, const struct pt_regs *regs, long ret)                           \
	{                                                                                          \
		return open_from_regs(via, regs, ret);                                             \
	}                                                                                          \
	SEC("ksyscall/" #name)                                                                     \
	int BPF_KPROBE(kprobe_##name, const struct pt_regs *regs)                                  \
	{                                                                                          \
		return save_open(via, SYSCALL_ARGS4(regs));                                        \
	}                                                                                          \
	SEC("kretsyscall/" #name)                                                                  \
	int BPF_KRETPROBE(kretprobe_##name, long ret)                                              \
	{                                                                                          \
		return emit_open(ret);                                                             \
	}

OPEN_HOOKS(openat, AGENT_VIA_OPENAT)
OPEN_HOOKS(openat2, AGENT_VIA_OPENAT2)
OPEN_HOOKS(open, AGENT_VIA_OPEN)
OPEN_HOOKS(creat, AGENT_VIA_CREAT)
OPEN_HOOKS(open_by_handle_at, AGENT_VIA_OPEN_BY_HANDLE_AT)
