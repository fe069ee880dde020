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

/* include/uapi/linux/magic.h: filesystems whose files have no path (they live on an internal
 * mount, on a dentry of their own) and the shmem ones a memfd lives on. */
#define TMPFS_MAGIC 0x01021994
#define RAMFS_MAGIC 0x858458f6 /* shmem without CONFIG_SHMEM */
#define HUGETLBFS_MAGIC 0x958458f6
#define PIPEFS_MAGIC 0x50495045
#define SOCKFS_MAGIC 0x534F434B
#define ANON_INODE_FS_MAGIC 0x09041934
#define NSFS_MAGIC 0x6e736673
#define PID_FS_MAGIC 0x50494446
/* mm/memfd.c: memfd_create names its file "memfd:" + the name asked for. */
#define MFD_PREFIX_LEN 6

/*
 * Whether d is a pseudo file, named on demand: the kernel's own test in d_path (a dentry whose
 * d_op has d_dname, unless it is the root of a mount of that filesystem). Such a dentry (a memfd,
 * a pipe, an anonymous inode...) is its own parent on an internal mount, so walking up it gives
 * nothing: it is named from its filesystem and its own name, as its d_dname does.
 */
static __always_inline bool is_pseudo_dentry(struct dentry *d, struct vfsmount *vm)
{
	const struct dentry_operations *op = BPF_CORE_READ(d, d_op);
	if (!op || !BPF_CORE_READ(op, d_dname))
		return false;
	return d != BPF_CORE_READ(d, d_parent) || d != BPF_CORE_READ(vm, mnt_root);
}

/* Where put_decimal builds a number's digits, right-aligned, before copying them into place: the
 * end of the scratch buffer, which a pseudo-file name (at its start) never reaches. */
#define DIGITS_AT (PATH_BUF_SIZE - 32)

struct digits {
	struct path_buf *b;
	__u64 v;
	__u32 n;
};

/* One digit, lowest first, under bpf_loop: the verifier checks one step, not every length. */
static long digit_step(__u32 i, void *data)
{
	struct digits *d = data;
	if (d->n > 0 && d->v == 0)
		return 1;
	d->b->bytes[(DIGITS_AT + 19 - d->n) & (PATH_BUF_SIZE - 1)] = '0' + d->v % 10;
	d->v /= 10;
	d->n++;
	return 0;
}

/* Writes v in decimal at b->bytes[pos] (pos below 256) and returns the digits written. */
static __always_inline __u32 put_decimal(struct path_buf *b, __u32 pos, __u64 v)
{
	struct digits d = { .b = b, .v = v, .n = 0 };
	bpf_loop(20, digit_step, &d, 0);
	__u32 n = d.n;
	if (n < 1 || n > 20)
		return 0;
	bpf_probe_read_kernel(&b->bytes[pos & 255], n, &b->bytes[DIGITS_AT + 20 - n]);
	return n;
}

/* Short literals are written as immediates: a string literal copied into a map value would be a
 * .rodata string, and the object's .rodata holds the daemon's settings only. */
#define W8(a, b, c, d, e, f, g, h)                                                                  \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 |     \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

/* Writes the n (at most 8) low bytes of w at dst, lowest first. */
static __always_inline void put_word(char *dst, __u64 w, int n)
{
#pragma unroll
	for (int i = 0; i < 8; i++)
		if (i < n)
			dst[i] = (char)(w >> (8 * i));
}

/* "[INO]" at b->bytes[pos] (pos below 256); returns its length. */
static __always_inline __u32 put_ino(struct path_buf *b, __u32 pos, struct inode *inode)
{
	pos &= 255;
	b->bytes[pos] = '[';
	__u32 n = put_decimal(b, pos + 1, BPF_CORE_READ(inode, i_ino));
	n &= 31;
	b->bytes[pos + 1 + n] = ']';
	return n + 2;
}

/* Room the pseudo-file names below take at most: a prefix of up to 32 bytes and a name. */
#define PSEUDO_NAME_MAX (32 + NAME_MAX_LEN + 1)

/*
 * The name of pseudo dentry d, written at the start of b, as the kernel's d_dname of its
 * filesystem gives it: "memfd:NAME" (d_path adds a leading '/' and " (deleted)", which no memfd
 * can be anything but), "pipe:[INO]", "socket:[INO]", "anon_inode:NAME", "net:[INO]" (nsfs),
 * "anon_inode:[pidfd]"; any other such file by its dentry's name, or "FSTYPE:[INO]" when it has
 * none. Adds AGENT_EXE_MEMFD to *flags for a memfd, AGENT_EXE_ANON for the others.
 */
static __always_inline __u32 pseudo_name(struct dentry *d, struct path_buf *b, __u32 *flags)
{
	char *out = b->bytes;
	struct inode *inode = BPF_CORE_READ(d, d_inode);
	struct super_block *sb = BPF_CORE_READ(d, d_sb);
	unsigned long magic = BPF_CORE_READ(sb, s_magic);
	struct qstr name = BPF_CORE_READ(d, d_name);
	__u32 nlen = name.len > NAME_MAX_LEN ? NAME_MAX_LEN : name.len;
	__u32 pos = 0;
	long n;

	switch (magic) {
	case PIPEFS_MAGIC:
		put_word(out, W8('p', 'i', 'p', 'e', ':', 0, 0, 0), 5);
		*flags |= AGENT_EXE_ANON;
		return 5 + put_ino(b, 5, inode);
	case SOCKFS_MAGIC:
		put_word(out, W8('s', 'o', 'c', 'k', 'e', 't', ':', 0), 7);
		*flags |= AGENT_EXE_ANON;
		return 7 + put_ino(b, 7, inode);
	case PID_FS_MAGIC:
		put_word(out, W8('a', 'n', 'o', 'n', '_', 'i', 'n', 'o'), 8);
		put_word(out + 8, W8('d', 'e', ':', '[', 'p', 'i', 'd', 'f'), 8);
		put_word(out + 16, W8('d', ']', 0, 0, 0, 0, 0, 0), 2);
		*flags |= AGENT_EXE_ANON;
		return 18;
	case NSFS_MAGIC: {
		/* ns_dname: the namespace type's name (its proc_ns_operations) and the inode. */
		struct ns_common *ns = BPF_CORE_READ(inode, i_private);
		const char *type = BPF_CORE_READ(ns, ops, name);
		n = bpf_probe_read_kernel_str(out, 16, type);
		pos = n > 1 ? (__u32)n - 1 : 0;
		pos &= 15;
		out[pos] = ':';
		pos += 1;
		*flags |= AGENT_EXE_ANON;
		return pos + put_ino(b, pos, inode);
	}
	case ANON_INODE_FS_MAGIC:
		put_word(out, W8('a', 'n', 'o', 'n', '_', 'i', 'n', 'o'), 8);
		put_word(out + 8, W8('d', 'e', ':', 0, 0, 0, 0, 0), 3);
		pos = 11;
		*flags |= AGENT_EXE_ANON;
		break;
	case TMPFS_MAGIC:
	case RAMFS_MAGIC:
	case HUGETLBFS_MAGIC: {
		/* Only memfd_create gives a shmem or hugetlbfs pseudo file a name it did not choose
		 * itself, and it prefixes that name "memfd:" (SysV segments are "SYSV%08x", shared
		 * /dev/zero maps "dev/zero", drivers' objects their own fixed names). */
		char prefix[MFD_PREFIX_LEN] = {};
		if (nlen >= MFD_PREFIX_LEN)
			bpf_probe_read_kernel(prefix, MFD_PREFIX_LEN, name.name);
		if (prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' && prefix[4] == 'd' &&
		    prefix[5] == ':')
			*flags |= AGENT_EXE_MEMFD;
		else
			*flags |= AGENT_EXE_ANON;
		break;
	}
	default:
		*flags |= AGENT_EXE_ANON;
		break;
	}
	/* A name of its own ("/" is the one d_alloc_anon gives). */
	char first = 0;
	if (nlen > 0)
		bpf_probe_read_kernel(&first, 1, name.name);
	if (nlen == 0 || (nlen == 1 && first == '/')) {
		if (pos == 0) {
			n = bpf_probe_read_kernel_str(out, 16, BPF_CORE_READ(sb, s_type, name));
			pos = n > 1 ? (__u32)n - 1 : 0;
			pos &= 15;
			out[pos] = ':';
			pos += 1;
		}
		pos &= 31;
		return pos + put_ino(b, pos, inode);
	}
	pos &= 31;
	bpf_probe_read_kernel(out + pos, nlen & NAME_MAX_LEN, name.name);
	return pos + nlen;
}

/* Where launder_len keeps a length for a moment: below the digits, out of any name's way. */
#define LEN_SPILL (DIGITS_AT - 8)

/*
 * `len` as the verifier sees it after a round trip through the scratch map value, whose contents
 * it does not track: any number, then bounded. A path can be built in many ways (a walk, a
 * pseudo file of each kind, the root), each ending with a length the verifier would otherwise
 * know exactly; after this they all continue as one state, so a program that builds two paths
 * (exec: the image and the working directory) is checked for the sum of their ways, not their
 * product.
 */
static __always_inline __u32 launder_len(struct path_buf *b, __u32 len)
{
	*(volatile __u32 *)&b->bytes[LEN_SPILL] = len;
	len = *(volatile __u32 *)&b->bytes[LEN_SPILL];
	return len > AGENT_PATH_MAX - 1 ? AGENT_PATH_MAX - 1 : len;
}

/*
 * Writes the absolute path of `p` into `out` (at most AGENT_PATH_MAX - 1 bytes, no NUL) and
 * returns its length; sets *truncated when components had to be left out. Walks dentries up to
 * the mount's root, then crosses to the parent mount, as the kernel's prepend_path does. The
 * walk runs under bpf_loop (5.17+), so the verifier checks one step, not every depth.
 *
 * A file with no path (a memfd, a pipe reopened through /proc/self/fd...) is named as d_path
 * names it instead (pseudo_name). Adds to *flags what the file is when it is not an ordinary
 * file with a name (enum agent_exe_flag): AGENT_EXE_MEMFD, AGENT_EXE_ANON, and AGENT_EXE_DELETED
 * for a name that was unlinked (d_path's own test, d_unlinked: the dentry is unhashed and not a
 * root; a file that keeps another hard link still has its executed name gone). With
 * `name_deleted` such a path ends " (deleted)", as /proc/PID/exe shows it.
 */
static __always_inline __u32 path_to_string_flags(const struct path *p, __u8 *out, bool *truncated, __u32 *flags,
						  bool name_deleted)
{
	__u32 zero = 0;
	struct path_buf *b = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!b)
		return 0;
	struct dentry *d = BPF_CORE_READ(p, dentry);
	struct vfsmount *vm = BPF_CORE_READ(p, mnt);
	if (is_pseudo_dentry(d, vm)) {
		__u32 plen = pseudo_name(d, b, flags);
		if (plen > PSEUDO_NAME_MAX)
			plen = PSEUDO_NAME_MAX;
		bpf_probe_read_kernel(out, plen & (AGENT_PATH_MAX - 1), b->bytes);
		return launder_len(b, plen);
	}
	bool deleted = !BPF_CORE_READ(d, d_hash.pprev) && d != BPF_CORE_READ(d, d_parent);
	if (deleted)
		*flags |= AGENT_EXE_DELETED;

	struct path_walk w = {
		.d = d,
		.vm = vm,
		.b = b,
		.pos = PATH_HALF - 1,
	};
	w.mnt = real_mount(w.vm);
	bpf_loop(PATH_MAX_COMPONENTS, path_walk_step, &w, 0);
	if (!w.done || w.truncated)
		*truncated = true;

	__u32 pos = w.pos;
	if (pos > PATH_HALF - 1)
		return launder_len(b, 0);
	__u32 len = PATH_HALF - 1 - pos;
	if (len == 0) {
		/* The root itself. */
		out[0] = '/';
		return launder_len(b, 1);
	}
	if (deleted && name_deleted) {
		/* The path ends at PATH_HALF - 1; the second half has room for the suffix. */
		put_word(&b->bytes[PATH_HALF - 1], W8(' ', '(', 'd', 'e', 'l', 'e', 't', 'e'), 8);
		put_word(&b->bytes[PATH_HALF + 7], W8('d', ')', 0, 0, 0, 0, 0, 0), 2);
		len += 10;
		if (len > AGENT_PATH_MAX - 1) {
			/* Cut at the root end, as a path too deep is. */
			pos += len - (AGENT_PATH_MAX - 1);
			len = AGENT_PATH_MAX - 1;
			*truncated = true;
		}
	}
	if (len > AGENT_PATH_MAX - 1)
		len = AGENT_PATH_MAX - 1;
	bpf_probe_read_kernel(out, len & (AGENT_PATH_MAX - 1), &b->bytes[pos & (PATH_HALF - 1)]);
	return launder_len(b, len);
}

/* path_to_string_flags without what the file is: its path, or its d_dname name. */
static __always_inline __u32 path_to_string(const struct path *p, __u8 *out, bool *truncated)
{
	__u32 flags = 0;
	return path_to_string_flags(p, out, truncated, &flags, false);
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
