/* libbpf as seen from Swift: the user-space API only (apt: libbpf-dev). */
#ifndef AGENTWATCH_CLIBBPF_SHIM_H
#define AGENTWATCH_CLIBBPF_SHIM_H
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <linux/magic.h>

/* A 64-bit load with acquire order, for the positions the kernel stores with release order in
 * a BPF ring buffer's mapped pages. */
static inline unsigned long long aw_load_acquire_u64(const void *p)
{
	return __atomic_load_n((const unsigned long long *)p, __ATOMIC_ACQUIRE);
}
#endif
