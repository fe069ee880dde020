// SPDX-License-Identifier: GPL-2.0
/*
 * File opens through the open syscalls: openat, openat2, open, creat and open_by_handle_at.
 * Syscall hooks, on the tier the daemon chose: attached only while a session exists. io_uring
 * opens, which make none of these calls, are uring_file.bpf.c's. Failed opens are recorded too.
 *
 * open and creat exist on x86_64 only among the architectures agentwatch builds for (arm64
 * has openat alone): the daemon attaches their hooks where the tracepoints exist. A 32-bit
 * process's calls (ia32 emulation) reach no syscalls/ tracepoint, these or openat, and no
 * __x64_sys_ function: they have programs of their own below, on every tier.
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

/*
 * ia32 syscalls (a 32-bit program, or int $0x80 from a 64-bit one) reach none of the programs
 * above: no syscalls/ tracepoint fires for them and they call __ia32_* functions, not __x64_*.
 * Their opens are hooked on each tier too, where the kernel has ia32 emulation (the daemon loads
 * these only where its BTF has the functions), each record marked ia32. The arguments are in
 * the user registers bx, cx, dx, si, in the 64-bit calls' order, so open_args_of reads them
 * alike. On the tracepoint tier one raw tracepoint at every syscall's exit picks them out (the
 * syscall tracepoints already put every task on the slow path there; this adds one check).
 */
#if defined(__TARGET_ARCH_x86)
#define IA32_ARGS4(regs)                                                                           \
	(__u32)BPF_CORE_READ(regs, bx), (__u32)BPF_CORE_READ(regs, cx), (__u32)BPF_CORE_READ(regs, dx), \
		(__u32)BPF_CORE_READ(regs, si)

static __always_inline int open_from_ia32_regs(__u8 via, const struct pt_regs *regs, long ret)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	struct open_args a = {};
	open_args_of(&a, via, IA32_ARGS4(regs));
	a.ia32 = 1;
	return open_record(session, &a, ret);
}

static __always_inline int save_open_ia32(__u8 via, const struct pt_regs *regs)
{
	if (!current_session())
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct open_args a = {};
	open_args_of(&a, via, IA32_ARGS4(regs));
	a.ia32 = 1;
	bpf_map_update_elem(&open_inflight, &tid, &a, BPF_ANY);
	return 0;
}

/* ia32 syscall numbers of the open calls. */
#define IA32_NR_OPEN 5
#define IA32_NR_CREAT 8
#define IA32_NR_OPENAT 295
#define IA32_NR_OPEN_BY_HANDLE_AT 342
#define IA32_NR_OPENAT2 437
#define IA32_NR_EXECVE 11
#define IA32_NR_EXECVEAT 358
#define IA32_NR_IO_URING_ENTER 426
#define IA32_NR_SOCKETCALL 102
#define IA32_NR_CONNECT 362
#define SYS_CONNECT 3

static __always_inline int ia32_open_via(long nr)
{
	switch (nr) {
	case IA32_NR_OPEN: return AGENT_VIA_OPEN;
	case IA32_NR_CREAT: return AGENT_VIA_CREAT;
	case IA32_NR_OPENAT: return AGENT_VIA_OPENAT;
	case IA32_NR_OPEN_BY_HANDLE_AT: return AGENT_VIA_OPEN_BY_HANDLE_AT;
	case IA32_NR_OPENAT2: return AGENT_VIA_OPENAT2;
	default: return -1;
	}
}

SEC("tp_btf/sys_exit")
int BPF_PROG(ia32_sys_exit, struct pt_regs *regs, long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	if (!(task->thread_info.status & TS_COMPAT))
		return 0;
	long nr = regs->orig_ax;
	int via = ia32_open_via(nr);
	if (via >= 0)
		return open_from_ia32_regs((__u8)via, regs, ret);
	/* An ia32 connect: not decoded (the socket hook records an inet one), counted. */
	if (nr == IA32_NR_CONNECT || (nr == IA32_NR_SOCKETCALL && regs->bx == SYS_CONNECT)) {
		__u64 session = current_session();
		if (session)
			count_undecoded(session, AGENT_UNDECODED_IA32_CONNECT);
	}
	return 0;
}
#else
#define open_from_ia32_regs(via, regs, ret) 0
#define save_open_ia32(via, regs) 0
SEC("tp_btf/sys_exit")
int BPF_PROG(ia32_sys_exit, struct pt_regs *regs, long ret)
{
	return 0;
}
#endif

/* Every tier's ia32 programs for the open call whose ia32 function is fn (x86_64 only). */
#define IA32_OPEN_HOOKS(name, fn, via)                                                             \
	SEC("fexit/" fn)                                                                           \
	int BPF_PROG(fexit_ia32_##name, const struct pt_regs *regs, long ret)                      \
	{                                                                                          \
		return open_from_ia32_regs(via, regs, ret);                                        \
	}                                                                                          \
	SEC("kprobe/" fn)                                                                          \
	int BPF_KPROBE(kprobe_ia32_##name, const struct pt_regs *regs)                             \
	{                                                                                          \
		return save_open_ia32(via, regs);                                                  \
	}                                                                                          \
	SEC("kretprobe/" fn)                                                                       \
	int BPF_KRETPROBE(kretprobe_ia32_##name, long ret)                                         \
	{                                                                                          \
		return emit_open(ret);                                                             \
	}

IA32_OPEN_HOOKS(openat, "__ia32_compat_sys_openat", AGENT_VIA_OPENAT)
IA32_OPEN_HOOKS(open, "__ia32_compat_sys_open", AGENT_VIA_OPEN)
IA32_OPEN_HOOKS(creat, "__ia32_sys_creat", AGENT_VIA_CREAT)
IA32_OPEN_HOOKS(openat2, "__ia32_sys_openat2", AGENT_VIA_OPENAT2)
IA32_OPEN_HOOKS(open_by_handle_at, "__ia32_compat_sys_open_by_handle_at", AGENT_VIA_OPEN_BY_HANDLE_AT)

/*
 * Every tier but the tracepoint one: file_open (the LSM hook on the LSM tier, security_file_open,
 * its caller, on the fentry and kprobe tiers), which the kernel runs for every file it opens,
 * however it was asked. An open the syscall programs above record (the five calls
 * from 64-bit code), io_uring's (uring_file.bpf.c) and an exec's own (the image and its
 * interpreter: the exec record) are left to them. Every other is a call no other tier sees or
 * decodes: an ia32 syscall (a 32-bit program, or int $0x80 from 64-bit code), a pty peer opened
 * by ioctl(TIOCGPTPEER), mq_open, uselib... It is recorded here, via other, from the file
 * itself: its path and identity, its flags, no requested path, and no result (the descriptor is
 * not installed yet, and may never be). It allows every open: enforcement is not done here.
 */
#if defined(__TARGET_ARCH_x86)
#define NR_OPEN 2
#define NR_CREAT 85
#define NR_EXECVE 59
#define NR_OPENAT 257
#define NR_OPEN_BY_HANDLE_AT 304
#define NR_EXECVEAT 322
#define NR_IO_URING_ENTER 426
#define NR_OPENAT2 437
#define SYSCALL_NR(regs) BPF_CORE_READ(regs, orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define NR_OPEN (-1)
#define NR_CREAT (-1)
#define NR_EXECVE 221
#define NR_OPENAT 56
#define NR_OPEN_BY_HANDLE_AT 265
#define NR_EXECVEAT 281
#define NR_IO_URING_ENTER 426
#define NR_OPENAT2 437
#define SYSCALL_NR(regs) BPF_CORE_READ(regs, syscallno)
#endif
#define PF_IO_WORKER 0x00000010
/* A file the kernel opens for its own use behind another (overlayfs' file on the layer below,
 * a backing file): never the one the caller gets; the caller's own open is recorded. */
#define FMODE_NOACCOUNT (1U << 29)

/* Whether the current task's open of a file is one another program records. */
static __always_inline bool open_recorded_elsewhere(struct task_struct *task)
{
	if (BPF_CORE_READ(task, flags) & PF_IO_WORKER)
		return true; /* io_uring's worker or SQPOLL thread: uring_file.bpf.c */
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return false;
	long nr = (long)SYSCALL_NR(regs);
#if defined(__TARGET_ARCH_x86)
	if (in_ia32_syscall(task))
		/* An ia32 syscall: the ia32 open programs', io_uring's or the exec's, else this one's. */
		return ia32_open_via(nr) >= 0 ? ia32_hooked : nr == IA32_NR_IO_URING_ENTER || nr == IA32_NR_EXECVE || nr == IA32_NR_EXECVEAT;
	nr &= ~0x40000000L; /* an x32 call is the 64-bit one's, and its programs ran */
#endif
	return nr == NR_OPENAT || nr == NR_OPENAT2 || nr == NR_OPEN || nr == NR_CREAT || nr == NR_OPEN_BY_HANDLE_AT ||
	       nr == NR_IO_URING_ENTER || nr == NR_EXECVE || nr == NR_EXECVEAT;
}

static __always_inline int other_open(struct file *file)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	if (BPF_CORE_READ(file, f_mode) & FMODE_NOACCOUNT)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (open_recorded_elsewhere(task))
		return 0;
	struct agent_open *o = open_begin(session, 0, BPF_CORE_READ(file, f_flags), 0, AT_FDCWD, AGENT_VIA_OTHER);
	if (!o)
		return 0;
	o->hdr.flags |= AGENT_F_RESULT_UNSEEN;
	open_finish(o, 0, file, false);
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(lsm_file_open, struct file *file)
{
	return other_open(file);
}

/* The same on the fentry and kprobe tiers: security_file_open, which calls the LSMs' hooks,
 * runs for every file the kernel opens whether or not BPF LSM is active. */
SEC("fentry/security_file_open")
int BPF_PROG(fentry_file_open, struct file *file)
{
	return other_open(file);
}

SEC("kprobe/security_file_open")
int BPF_KPROBE(kprobe_file_open, struct file *file)
{
	return other_open(file);
}
