/* What the credential catalog needs to know a file by what it is, with the GNU calls the Glibc
 * module hides. */
#ifndef AGENTWATCH_FILE_IDENTITY_H
#define AGENTWATCH_FILE_IDENTITY_H

/* The id of the mount `path` is reached through (statx STATX_MNT_ID, Linux 5.8+; symlinks
 * followed), as /proc/PID/mountinfo numbers mounts. 0 on success, -1 with errno set. */
int aw_mount_id(const char *path, unsigned long long *mnt_id);

/* The largest handle aw_file_handle writes, header included. */
#define AW_FILE_HANDLE_SIZE 136

/* A file handle (name_to_handle_at, symlinks followed) for `path`, written into `handle`
 * (AW_FILE_HANDLE_SIZE bytes): it names the inode itself, not the path, and goes stale when the
 * inode is freed. The handle's length in bytes, or -1 with errno set (EOPNOTSUPP: the
 * filesystem has no handles). */
int aw_file_handle(const char *path, void *handle);

/* Opens what `handle` names with O_PATH (open_by_handle_at, which needs CAP_DAC_READ_SEARCH),
 * on the filesystem that `mount_fd` is on. The fd, or -1 with errno set (ESTALE: the file is
 * gone). */
int aw_open_file_handle(int mount_fd, const void *handle);

#endif
