/* Reading a process's identity out of its task_struct (CO-RE). */
#ifndef AGENTWATCH_TASK_BPF_H
#define AGENTWATCH_TASK_BPF_H

#include "common.bpf.h"

static __always_inline __u64 task_start_ns(struct task_struct *t)
{
	return BPF_CORE_READ(t, group_leader, start_boottime);
}

/* Whether the current task is in an ia32 syscall (a 32-bit program, or int $0x80 from a
 * 64-bit one): x86_64's TS_COMPAT, set at ia32 entry and cleared on the way back to user
 * space, after the syscall's exit hooks. */
#define TS_COMPAT 0x0002
static __always_inline bool in_ia32_syscall(struct task_struct *t)
{
#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(t, thread_info.status) & TS_COMPAT;
#else
	return false;
#endif
}

static __always_inline void fill_proc(struct agent_proc *p, struct task_struct *t)
{
	struct task_struct *leader = BPF_CORE_READ(t, group_leader);
	struct task_struct *parent = BPF_CORE_READ(leader, real_parent);

	p->start_ns = BPF_CORE_READ(leader, start_boottime);
	p->parent_start_ns = BPF_CORE_READ(parent, group_leader, start_boottime);
	p->ppid = BPF_CORE_READ(parent, tgid);
	p->uid = BPF_CORE_READ(t, real_cred, uid.val);
	p->gid = BPF_CORE_READ(t, real_cred, gid.val);
	p->euid = BPF_CORE_READ(t, real_cred, euid.val);
	/* loginuid and sessionid exist only with CONFIG_AUDITSYSCALL. */
	if (bpf_core_field_exists(t->loginuid)) {
		p->loginuid = BPF_CORE_READ(t, loginuid.val);
		p->sessionid = BPF_CORE_READ(t, sessionid);
	} else {
		p->loginuid = AUDIT_UNSET;
		p->sessionid = AUDIT_UNSET;
	}
	bpf_probe_read_kernel_str(p->comm, sizeof(p->comm), &t->comm);
}

#endif
