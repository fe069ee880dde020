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
#endif
