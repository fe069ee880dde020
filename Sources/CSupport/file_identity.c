#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include "file_identity.h"

int aw_mount_id(const char *path, unsigned long long *mnt_id)
{
	struct statx st;
	memset(&st, 0, sizeof(st));
	if (statx(AT_FDCWD, path, 0, STATX_MNT_ID, &st) != 0)
		return -1;
	if (!(st.stx_mask & STATX_MNT_ID)) {
		errno = ENOSYS;
		return -1;
	}
	*mnt_id = st.stx_mnt_id;
	return 0;
}

int aw_file_handle(const char *path, void *handle)
{
	struct file_handle *h = handle;
	int mount_id = 0;
	h->handle_bytes = AW_FILE_HANDLE_SIZE - sizeof(struct file_handle);
	if (name_to_handle_at(AT_FDCWD, path, h, &mount_id, AT_SYMLINK_FOLLOW) != 0)
		return -1;
	return (int)(sizeof(struct file_handle) + h->handle_bytes);
}

int aw_open_file_handle(int mount_fd, const void *handle)
{
	return open_by_handle_at(mount_fd, (struct file_handle *)handle, O_PATH | O_CLOEXEC);
}
