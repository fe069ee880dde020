// SPDX-License-Identifier: GPL-2.0
/*
 * io_uring opens: IORING_OP_OPENAT and IORING_OP_OPENAT2 make no open syscall, so the hooks of
 * file.bpf.c never see them. They give the same file.open record (via AGENT_VIA_IO_URING).
 *
 * Two raw tracepoints (tp_btf), which need no BPF trampoline (fentry on io_openat2 would, and
 * some kernels refuse those):
 * - submission: io_uring_submit_req (6.4 on), io_uring_submit_sqe before it; the daemon loads
 *   the one this kernel has. It fires once the request is prepared: the request's command area
 *   holds the prepared struct io_open, with the kernel's copy of the path (struct filename),
 *   dfd, how and file_slot. The path is copied then, keyed by the request: the kernel frees its
 *   copy as soon as the open is done.
 * - completion: io_uring_complete, in the task that posts the completion: the submitter, or an
 *   io-wq worker of its process (a thread: the same cgroup, its descriptors and fs shared). The
 *   request still holds dfd, how and file_slot; the result is its cqe.res. The installed
 *   descriptor is resolved there, as at an open syscall's exit. The flags are how.flags as the
 *   kernel keeps them: with O_LARGEFILE, which it adds on 64-bit (an openat record has the
 *   flags as passed).
 *
 * Attached only while a session exists, like the syscall hooks: both run for every request and
 * every completion of every io_uring user on the host, not only for opens, and a host busy with
 * io_uring (a database, a network server) would pay for that with no session to watch.
 *
 * What the record cannot have:
 * - a fixed-file-slot open (file_slot != 0: io_uring_prep_openat_direct) installs no
 *   descriptor: AGENT_F_FIXED_FILE, its result is 0 or the slot allocated. The path and the
 *   identity are read from the ring's fixed-file table at that slot.
 * - a request refused before it was prepared (a bad path pointer, bad flags) attempted no open:
 *   its command area holds nothing to trust, and it is not recorded. Nor is a failure whose
 *   submission was not seen (the hooks were attached after it, or its entry was evicted: LRU);
 *   a success whose submission was not seen is, without the requested path.
 * - a completion posted by a task of another process (the kernel's fallback worker when the
 *   submitter is exiting) is not in the session: not recorded. One posted in the session by a
 *   task of another process than the submitter's resolves nothing.
 * - a request with IOSQE_CQE_SKIP_SUCCESS posts no completion when it succeeds: recorded at
 *   submission (AGENT_F_RESULT_UNSEEN), before the open is made: the requested path only, its
 *   result 0 and not known. If it fails, a completion is posted but not recorded again.
 * - the descriptor or slot is read at completion: a thread of the process that closed and
 *   reused it in between (it must guess the number) makes the record name that file; the
 *   requested path, copied at submission, still says what was asked.
 * - kernels before 6.0 (no io_cmd_data: the request's layout differs) run these and record
 *   nothing.
 */
#include "lib/open.bpf.h"

/* include/uapi/linux/io_uring.h */
#define URING_OP_OPENAT 18
#define URING_OP_OPENAT2 28
/* file_index: let the kernel pick the fixed-file slot. */
#define URING_FILE_INDEX_ALLOC 0xffffffffU
/* io_uring/filetable.h: the flag bits kept in a fixed file's pointer (FFS_NOWAIT, FFS_ISREG,
 * FFS_SCM before 6.2). */
#define URING_FFS_MASK (~7UL)
/* IOSQE_CQE_SKIP_SUCCESS: the request's REQ_F_CQE_SKIP bit is the SQE flag's, bit 6. */
#define URING_REQ_F_CQE_SKIP (1U << 6)

/*
 * The kernel's io_uring types as read here, each a flavour (core_fixes.bpf.h) so this builds
 * against any vmlinux.h, an io_uring-less one included; libbpf matches them to the running
 * kernel's by name and field name, and bpf_core_*_exists checks what it has.
 */
struct io_cmd_data___aw {
	__u64 data[8];
} __attribute__((preserve_access_index));

struct io_cqe___aw {
	__s32 res;
} __attribute__((preserve_access_index));

struct io_kiocb___aw {
	struct io_cmd_data___aw cmd; /* the operation's own state: struct io_open here */
	__u8 opcode;
	__u32 flags;                 /* REQ_F_*: u32 before 6.10, u64 (io_req_flags_t) since */
	struct io_cqe___aw cqe;
	void *ctx;
} __attribute__((preserve_access_index));

struct io_open___aw {
	int dfd;
	__u32 file_slot; /* 0: a descriptor; slot + 1, or URING_FILE_INDEX_ALLOC: a fixed file */
	struct filename *filename;
	struct open_how how;
} __attribute__((preserve_access_index));

/* The fixed-file table since 6.13: ctx->file_table.data.nodes[slot]->file_ptr. */
struct io_rsrc_node___aw {
	unsigned long file_ptr;
} __attribute__((preserve_access_index));

struct io_rsrc_data___aw {
	unsigned int nr;
	struct io_rsrc_node___aw **nodes;
} __attribute__((preserve_access_index));

struct io_file_table___nodes {
	struct io_rsrc_data___aw data;
} __attribute__((preserve_access_index));

struct io_ring_ctx___nodes {
	struct io_file_table___nodes file_table;
} __attribute__((preserve_access_index));

/* Before it: ctx->file_table.files[slot].file_ptr, ctx->nr_user_files slots. */
struct io_fixed_file___aw {
	unsigned long file_ptr;
} __attribute__((preserve_access_index));

struct io_file_table___files {
	struct io_fixed_file___aw *files;
} __attribute__((preserve_access_index));

struct io_ring_ctx___files {
	struct io_file_table___files file_table;
	unsigned int nr_user_files;
} __attribute__((preserve_access_index));

/* A request's submission, kept until its completion. */
struct uring_open {
	__u64 session;
	__u32 tgid;      /* the submitter's process */
	__u32 len;       /* bytes of path */
	__u8 truncated;  /* the path was cut at AGENT_PATH_MAX */
	__u8 _pad[7];
	char path[AGENT_PATH_MAX];
};
_Static_assert(sizeof(struct uring_open) <= SCRATCH_SIZE, "a submission is staged in the scratch area");

/* Submissions of session opens, by request (struct io_kiocb *). LRU: a request whose
 * completion is never seen (hooks detached, the ring torn down) cannot fill it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct uring_open);
} uring_inflight SEC(".maps");

/* The request's struct io_open, or NULL on a kernel whose requests have no command area. */
static __always_inline struct io_open___aw *uring_open_of(struct io_kiocb___aw *req)
{
	if (!bpf_core_type_exists(struct io_open___aw) || !bpf_core_field_exists(req->cmd))
		return NULL;
	return (void *)req + bpf_core_field_offset(req->cmd);
}

/* Whether req is an open. */
static __always_inline bool uring_is_open(struct io_kiocb___aw *req)
{
	__u8 op = BPF_CORE_READ(req, opcode);
	return op == URING_OP_OPENAT || op == URING_OP_OPENAT2;
}

/* The file in fixed-file slot `slot` of ring ctx, or NULL. */
static __noinline struct file *uring_fixed_file(void *ctx, __u32 slot)
{
	unsigned long ptr = 0;
	if (bpf_core_field_exists(struct io_file_table___nodes, data)) {
		struct io_ring_ctx___nodes *c = ctx;
		if (slot >= BPF_CORE_READ(c, file_table.data.nr))
			return NULL;
		struct io_rsrc_node___aw **nodes = BPF_CORE_READ(c, file_table.data.nodes);
		struct io_rsrc_node___aw *node = NULL;
		if (bpf_probe_read_kernel(&node, sizeof(node), &nodes[slot]) || !node)
			return NULL;
		ptr = BPF_CORE_READ(node, file_ptr);
	} else if (bpf_core_field_exists(struct io_file_table___files, files)) {
		struct io_ring_ctx___files *c = ctx;
		if (slot >= BPF_CORE_READ(c, nr_user_files))
			return NULL;
		struct io_fixed_file___aw *files = BPF_CORE_READ(c, file_table.files);
		if (bpf_probe_read_kernel(&ptr, sizeof(ptr), &files[slot].file_ptr))
			return NULL;
	}
	return (struct file *)(ptr & URING_FFS_MASK);
}

/* A record of open request req (command area open) about the current task, its tail empty. */
static __always_inline struct agent_open *uring_record(__u64 session, struct io_open___aw *open, long ret)
{
	struct agent_open *o = open_begin(session, ret, BPF_CORE_READ(open, how.flags), (__u32)BPF_CORE_READ(open, how.mode),
					  BPF_CORE_READ(open, dfd), AGENT_VIA_IO_URING);
	if (o && BPF_CORE_READ(open, file_slot))
		o->hdr.flags |= AGENT_F_FIXED_FILE;
	return o;
}

static __always_inline int uring_submit(struct io_kiocb___aw *req)
{
	struct io_open___aw *open = uring_open_of(req);
	if (!open)
		return 0;
	__u64 session = current_session();
	if (!session || !uring_is_open(req))
		return 0;

	/* No completion will come if it succeeds: the record now, with what is asked. */
	if (BPF_CORE_READ_BITFIELD_PROBED(req, flags) & URING_REQ_F_CQE_SKIP) {
		struct agent_open *o = uring_record(session, open, 0);
		if (!o)
			return 0;
		o->hdr.flags |= AGENT_F_RESULT_UNSEEN;
		__u32 len = requested_path_len(o, bpf_probe_read_kernel_str(o->data, AGENT_PATH_MAX, BPF_CORE_READ(open, filename, name)));
		open_finish(o, len, NULL, true);
		return 0;
	}

	struct uring_open *u = scratch_area();
	if (!u)
		return 0;
	u->session = session;
	u->tgid = bpf_get_current_pid_tgid() >> 32;
	u->len = 0;
	u->truncated = 0;
	__builtin_memset(u->_pad, 0, sizeof(u->_pad));
	long n = bpf_probe_read_kernel_str(u->path, AGENT_PATH_MAX, BPF_CORE_READ(open, filename, name));
	if (n > 0) {
		u->len = (__u32)n - 1;
		u->truncated = n == AGENT_PATH_MAX;
	}
	__u64 key = (__u64)req;
	bpf_map_update_elem(&uring_inflight, &key, u, BPF_ANY);
	return 0;
}

/* 6.4 on. */
SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(on_uring_submit_req, void *req)
{
	return uring_submit(req);
}

/* 6.0 to 6.3: the same, with an argument since dropped. */
SEC("tp_btf/io_uring_submit_sqe")
int BPF_PROG(on_uring_submit_sqe, void *req)
{
	return uring_submit(req);
}

/* (ring, request, cqe) since 6.12, (ring, request, user_data, res, ...) before: the result is
 * read from the request on both. A completion of no request (an overflow flush) has req NULL. */
SEC("tp_btf/io_uring_complete")
int BPF_PROG(on_uring_complete, void *ring, void *request)
{
	struct io_kiocb___aw *req = request;
	if (!req)
		return 0;
	struct io_open___aw *open = uring_open_of(req);
	if (!open)
		return 0;
	__u64 session = current_session();
	if (!session || !uring_is_open(req))
		return 0;

	__u64 key = (__u64)req;
	struct uring_open *u = bpf_map_lookup_elem(&uring_inflight, &key);
	long ret = BPF_CORE_READ(req, cqe.res);
	/* Not seen submitted and failed: perhaps never prepared, nothing in it to trust. */
	if (!u && ret < 0)
		return 0;

	struct agent_open *o = uring_record(session, open, ret);
	__u32 len = 0;
	bool same = true;
	if (u) {
		if (o) {
			len = u->len;
			if (len > AGENT_PATH_MAX - 1)
				len = AGENT_PATH_MAX - 1;
			bpf_probe_read_kernel(o->data, len & (AGENT_PATH_MAX - 1), u->path);
			if (u->truncated)
				o->hdr.flags |= AGENT_F_PATH_TRUNCATED;
			/* Only a task of the submitter's process shares its descriptors. */
			same = u->tgid == bpf_get_current_pid_tgid() >> 32;
		}
		bpf_map_delete_elem(&uring_inflight, &key);
	}
	if (!o)
		return 0;

	struct file *f = NULL;
	if (ret >= 0 && same && resolve_paths) {
		__u32 slot = BPF_CORE_READ(open, file_slot);
		if (!slot)
			f = current_file((int)ret);
		else
			f = uring_fixed_file(BPF_CORE_READ(req, ctx), slot == URING_FILE_INDEX_ALLOC ? (__u32)ret : slot - 1);
	}
	open_finish(o, len, f, ret < 0 && same);
	return 0;
}
