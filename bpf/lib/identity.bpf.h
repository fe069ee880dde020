/* What a file is, whatever it is called (struct agent_file_id). */
#ifndef AGENTWATCH_IDENTITY_BPF_H
#define AGENTWATCH_IDENTITY_BPF_H

#include "path.bpf.h"

/* The identity of file f: its inode, its filesystem's device and the mount it was reached
 * through. A NULL f gives 0s. */
static __always_inline void file_identity(struct file *f, struct agent_file_id *id)
{
	id->ino = 0;
	id->dev = 0;
	id->mnt_id = 0;
	if (!f)
		return;
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	id->ino = BPF_CORE_READ(inode, i_ino);
	id->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	struct vfsmount *vm = BPF_CORE_READ(f, f_path.mnt);
	struct mount *mnt = real_mount(vm);
	id->mnt_id = BPF_CORE_READ(mnt, mnt_id);
}

#endif
