// SPDX-License-Identifier: GPL-2.0
/* Process lifecycle: exec, fork and exit of session processes. Always attached: these are not
 * syscall hooks and cost nothing measurable outside sessions. */
#include "lib/session.bpf.h"
#include "lib/task.bpf.h"
#include "lib/identity.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Keeps a length the verifier can see is within [0, max]. */
#define BOUND(v, max) ((v) > (max) ? (max) : (v))

/*
 * The exec tail (filename | exe | cwd | args) is built in the scratch area at offsets the
 * verifier sees bounded by whole AGENT_PATH_MAXs; this is the most it can write there, and so
 * the most hdr.size can be asked to hold.
 */
#define EXEC_RECORD_MAX (sizeof(struct agent_exec) + 3 * AGENT_PATH_MAX + AGENT_ARGS_MAX)
_Static_assert(EXEC_RECORD_MAX <= SCRATCH_SIZE, "the largest exec record fits the scratch area");
_Static_assert(EXEC_RECORD_MAX <= AGENT_RECORD_SIZE_MAX, "the largest exec record's size fits hdr.size");

/* A terminal: the console and tty majors, or a pseudo-terminal's slave side. */
static __always_inline bool is_tty_major(__u32 major)
{
	return major == TTY_MAJOR || major == TTYAUX_MAJOR ||
	       (major >= UNIX98_PTY_SLAVE_MAJOR && major < UNIX98_PTY_SLAVE_MAJOR + UNIX98_PTY_MAJOR_COUNT);
}

/* Classifies standard descriptor fd of the current task; pipes and sockets also give their
 * inode, terminals their device (the kernel's encoding, major << 20 | minor: a pseudo-terminal's
 * slave is major 136, its minor the pts index). */
static __always_inline __u8 stdio_kind(int fd, __u64 *ino, __u32 *rdev)
{
	struct file *file = current_file(fd);
	if (!file)
		return AGENT_STDIO_NONE;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	__u16 mode = BPF_CORE_READ(inode, i_mode) & S_IFMT;
	switch (mode) {
	case S_IFREG:
		return AGENT_STDIO_FILE;
	case S_IFIFO:
		*ino = BPF_CORE_READ(inode, i_ino);
		return AGENT_STDIO_PIPE;
	case S_IFSOCK:
		*ino = BPF_CORE_READ(inode, i_ino);
		return AGENT_STDIO_SOCKET;
	case S_IFCHR: {
		__u32 dev = BPF_CORE_READ(inode, i_rdev);
		if (is_tty_major(dev >> MINORBITS)) {
			*rdev = dev;
			return AGENT_STDIO_TTY;
		}
		return AGENT_STDIO_CHAR;
	}
	default:
		return AGENT_STDIO_OTHER;
	}
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	struct agent_exec *e = scratch_area();
	if (!e)
		return 0;

	fill_hdr(&e->hdr, AGENT_KIND_EXEC, 0, session);
	fill_proc(&e->proc, task);
	e->old_tid = old_pid;
	e->_pad0 = 0;
	e->argc = BPF_CORE_READ(bprm, argc);
	__builtin_memset(e->_pad1, 0, sizeof(e->_pad1));
	e->stdin_ino = 0;
	e->stdout_ino = 0;
	e->exe_flags = 0;
	e->stdin_rdev = 0;
	__u64 unused = 0;
	__u32 unused_rdev = 0;
	e->stdio_type[0] = stdio_kind(0, &e->stdin_ino, &e->stdin_rdev);
	e->stdio_type[1] = stdio_kind(1, &e->stdout_ino, &unused_rdev);
	e->stdio_type[2] = stdio_kind(2, &unused, &unused_rdev);

	__u32 off = 0;
	long n = bpf_probe_read_kernel_str(e->data, AGENT_PATH_MAX, BPF_CORE_READ(bprm, filename));
	if (n > 0) {
		off = BOUND((__u32)n - 1, AGENT_PATH_MAX - 1);
		if (n == AGENT_PATH_MAX)
			e->hdr.flags |= AGENT_F_PATH_TRUNCATED;
	}
	e->filename_len = off;

	/* The executed image as /proc/PID/exe names it (for a script: its interpreter), and the
	 * working directory, both resolved from the kernel's objects. An image with no path is
	 * named as d_path names it ("memfd:NAME"), an unlinked one ends " (deleted)"; exe_flags
	 * says which. */
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	bool cut = false;
	struct file *exe = BPF_CORE_READ(mm, exe_file);
	__u32 exe_len = 0;
	if (exe)
		exe_len = path_to_string_flags(&exe->f_path, e->data + off, &cut, &e->exe_flags, true);
	file_identity(exe, &e->exe_id);
	exe_len = BOUND(exe_len, AGENT_PATH_MAX - 1);
	e->exe_len = exe_len;
	off += exe_len;
	off = BOUND(off, 2 * AGENT_PATH_MAX);
	__u32 cwd_len = path_to_string(&task->fs->pwd, e->data + off, &cut);
	cwd_len = BOUND(cwd_len, AGENT_PATH_MAX - 1);
	e->cwd_len = cwd_len;
	off += cwd_len;
	off = BOUND(off, 3 * AGENT_PATH_MAX); /* so at most EXEC_RECORD_MAX below */
	if (cut)
		e->hdr.flags |= AGENT_F_PATH_TRUNCATED;

	__u64 arg_start = BPF_CORE_READ(mm, arg_start);
	__u64 arg_end = BPF_CORE_READ(mm, arg_end);
	__u64 size = arg_end > arg_start ? arg_end - arg_start : 0;
	__u32 want = BOUND(size, (__u64)args_max);
	want = BOUND(want, AGENT_ARGS_MAX);
	e->args_size = BOUND(size, 0xffffffffULL);
	e->args_len = 0;
	if (want > 0 && bpf_probe_read_user(e->data + off, want, (void *)arg_start) == 0)
		e->args_len = want;
	if (size > want)
		e->hdr.flags |= AGENT_F_ARGS_TRUNCATED;

	__u64 total = sizeof(*e) + off + e->args_len;
	e->hdr.size = total;
	output_record(e, total, AGENT_KIND_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	/* A new thread joins its process; only new processes change the process table. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	struct agent_fork *f = reserve_record(sizeof(*f), AGENT_KIND_FORK);
	if (!f)
		return 0;
	fill_hdr(&f->hdr, AGENT_KIND_FORK, sizeof(*f), session);
	fill_proc(&f->proc, parent);
	f->child_pid = BPF_CORE_READ(child, tgid);
	f->child_start_ns = BPF_CORE_READ(child, start_boottime);
	f->_pad0 = 0;
	submit_record(f);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task)
{
	__u64 session = current_session();
	if (!session)
		return 0;
	/* Report a process once, when its last thread goes. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	struct agent_exit *x = reserve_record(sizeof(*x), AGENT_KIND_EXIT);
	if (!x)
		return 0;
	fill_hdr(&x->hdr, AGENT_KIND_EXIT, sizeof(*x), session);
	fill_proc(&x->proc, task);
	x->exit_code = BPF_CORE_READ(task, exit_code);
	x->_pad0 = 0;
	submit_record(x);
	return 0;
}

/* Every process on the host with its exact start time, read by the daemon once when it adopts
 * sessions that were running before it (bpf_iter_create + read). */
SEC("iter/task")
int task_starts(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	if (!task || task->pid != task->tgid)
		return 0;
	struct agent_task_start t = {
		.pid = task->tgid,
		.ppid = BPF_CORE_READ(task, real_parent, tgid),
		.start_ns = task->start_boottime,
	};
	bpf_seq_write(ctx->meta->seq, &t, sizeof(t));
	return 0;
}
