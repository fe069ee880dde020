#!/usr/bin/env bash
# The kernel matrix: runs kernel tests inside a VM of one of Debian's kernels, under qemu's
# software emulation (TCG: KVM stops with an emulation error on these machines), with this
# machine's root file system shared read-only (virtme-ng). The tests are the ones already
# built here (swift build --build-tests); nothing is built inside the VM.
#
#   .ci/matrix.sh KERNEL [FILTER] [TIER]
#     KERNEL  6.1 | 6.12 (Debian 12's kernel packages, versions pinned below)
#     FILTER  a swift test --filter regex (default: KernelTests, the whole kernel suite), or
#             bench: a short run of the benchmark (bench/run.py: baseline and agentwatch on the
#             openat, exec, connect and io_uring-open workloads) instead of tests, its report in
#             .build-matrix/out/bench-KERNEL-TIER/latest.md, labelled as measured under emulation
#     TIER    auto | lsm | fentry | kprobe | tracepoint: every in-process daemon of the tests is
#             forced onto it (AGENTWATCH_TEST_SENSOR); default auto. A comma list
#             (fentry,kprobe,tracepoint) runs the tests once per tier, in turn, in one boot; the
#             exit status is the first failing tier's
#   make matrix KERNEL=6.12 [FILTER=...] [TIER=...]
#   make matrix-bench KERNEL=6.12 [TIER=...]
#
# The kernel packages are fetched once (apt-get download) and kept under .build-matrix/, with
# what each run prints (.build-matrix/out/KERNEL-TIER.log). Exit status: the tests'.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg_root=$(pwd)

kernel=${1:?usage: .ci/matrix.sh 6.1|6.12 [FILTER] [TIER]}
filter=${2:-KernelTests}
tiers=${3:-auto}
case $kernel in
	6.1) package=linux-image-6.1.0-50-amd64 version=6.1.176-1 ;;
	6.12) package=linux-image-6.12.117+deb12-amd64 version=6.12.117-1~deb12u1 ;;
	*) echo "matrix: unknown kernel '$kernel' (6.1 or 6.12)" >&2; exit 2 ;;
esac
IFS=, read -r -a tier_list <<<"$tiers"
[ ${#tier_list[@]} -gt 0 ] || { echo "matrix: no tier given" >&2; exit 2; }
for tier in "${tier_list[@]}"; do
	case $tier in
		auto|lsm|fentry|kprobe|tracepoint) ;;
		*) echo "matrix: unknown tier '$tier' (auto, lsm, fentry, kprobe or tracepoint)" >&2; exit 2 ;;
	esac
done
if [ "$filter" = bench ] && [ ${#tier_list[@]} -gt 1 ]; then
	echo "matrix: the benchmark runs one tier per boot" >&2
	exit 2
fi

# What the VM needs: qemu, kmod (the kernel's modules), busybox (virtme-ng's initramfs), virtme-ng.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v modprobe >/dev/null || need+=(kmod)
command -v busybox >/dev/null || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
	echo "matrix: installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# pip puts vng beside the python3 it belongs to (a pyenv's shims may not list it yet).
vng=$(command -v vng || true)
if [ -z "$vng" ]; then
	echo "matrix: installing virtme-ng (pip)"
	python3 -m pip install -q virtme-ng
	vng=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/vng
fi

cache=$pkg_root/.build-matrix/kernels
mkdir -p "$cache" "$pkg_root/.build-matrix/out"
tree=$cache/${package}_$version
if [ ! -d "$tree/boot" ]; then
	deb=$cache/${package}_$version.deb
	if [ ! -s "$deb" ]; then
		echo "matrix: fetching $package=$version"
		(cd "$cache" && apt-get download -q "$package=$version" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
		got=$(ls "$cache"/"${package}"_*.deb 2>/dev/null | head -n1)
		if [ -z "$got" ]; then
			echo "matrix: $package=$version is not in this machine's apt index: run apt-get update, or pin a version that is (apt-cache madison $package)" >&2
			exit 1
		fi
		mv "$got" "$deb"
	fi
	rm -rf "$tree.tmp"
	dpkg-deb -x "$deb" "$tree.tmp"
	mv "$tree.tmp" "$tree"
fi
vmlinuz=$(ls "$tree"/boot/vmlinuz-* | head -n1)

xctest=$pkg_root/.build/debug/agentwatchPackageTests.xctest
bench_bin=$pkg_root/.build-bench/release/agentwatch
if [ "$filter" = bench ]; then
	# The benchmark's own release build, made here (nothing is built inside the VM).
	if [ ! -x "$bench_bin" ]; then
		echo "matrix: building agentwatch for the benchmark: swift build -c release --scratch-path .build-bench"
		swift build -c release --scratch-path .build-bench >/dev/null
	fi
else
	[ -x "$xctest" ] || { echo "matrix: $xctest is missing: swift build --build-tests first" >&2; exit 1; }
fi

out=$pkg_root/.build-matrix/out
name=$kernel-${tiers//,/+}
log=$out/$name.log
rm -f "$out/$name.rc"
# The guest: the same environment CI gives the tests, the tier forced if asked. The test
# binary runs directly (swift test would parse every package manifest first: minutes under
# emulation); what the tests write under .build goes to an overlay that stays in the VM.
cat > "$out/$name.guest.sh" <<EOF
set -u
# virtme's /tmp is an overlay on the host's, shared over 9p: stat(2) there names the overlay's
# device while the kernel's file is the layer's, and 9p has no file handles. The tests' files go
# to a tmpfs of the guest's own, as on a real machine, unless the package itself is under /tmp
# (CI's clone), which the tmpfs would hide: there /tmp stays virtme's overlay.
case "$pkg_root" in
/tmp/*) ;;
*) mount -t tmpfs -o mode=1777 tmpfs /tmp ;;
esac
# virtme's /etc is the host's, read-only, with files bind-mounted over it (/etc/shadow among
# them): useradd cannot write there, and the tests make ordinary users. An overlay of the
# guest's own over the host's /etc takes their changes and leaves the host's untouched.
mkdir -p /run/aw-etc/upper /run/aw-etc/work
mount -t overlay -o xino=off,lowerdir=/etc,upperdir=/run/aw-etc/upper,workdir=/run/aw-etc/work overlay /etc ||
	mount -t overlay -o lowerdir=/etc,upperdir=/run/aw-etc/upper,workdir=/run/aw-etc/work overlay /etc ||
	echo "matrix: no writable /etc in the guest: the tests that make users will fail"
cd "$pkg_root"
# Debian's kernels have BPF LSM, kprobes and BPF trampolines: a tier refused there is a failure.
# Emulation is slow: waits for records and daemons may take ten times as long.
export AGENTWATCH_REQUIRE_KERNEL=1 AGENTWATCH_REQUIRE_TIERS=lsm,fentry,kprobe,tracepoint AGENTWATCH_TEST_TIME_SCALE=10 HOME=/root PATH=$PATH
echo "matrix: \$(uname -r), LSMs \$(cat /sys/kernel/security/lsm 2>/dev/null), tiers $tiers, filter $filter"
# (stat -f names the file system on top: findmnt lists each of a stacked mount's layers.)
echo "matrix: file systems: / \$(stat -f -c %T /), /usr \$(stat -f -c %T /usr), /tmp \$(stat -f -c %T /tmp), /etc \$(stat -f -c %T /etc); /usr/bin/true on device \$(stat -c %D /usr/bin/true)"
# The tracepoint tier attaches syscall tracepoints at each session's start and detaches them at
# its end, and the kernel patches its text each time the first probe comes or the last goes
# (the static keys of sys_enter and sys_exit). Under TCG another vCPU may still run the int3 of a
# finished patch, and oopses ("Oops: int3" in syscall_exit_to_user_mode_prepare, seen on 6.12),
# which real CPUs do not. A trigger on the acct syscall's events, which nothing here calls, keeps
# one probe on each for the whole boot: no patch, and the guest's syscalls take the traced path
# (a probe that returns at once). The benchmark runs without it: it measures that path.
if [ "$filter" != bench ]; then
	mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
	for e in sys_enter_acct sys_exit_acct; do
		echo traceoff > /sys/kernel/tracing/events/syscalls/\$e/trigger ||
			echo "matrix: cannot hold the syscall tracepoints (\$e): text patching under TCG may oops"
	done
fi
# One run per tier, in turn; the first failing tier's status is the boot's.
status=0
for tier in ${tier_list[*]}; do
	if [ "\$tier" = auto ]; then unset AGENTWATCH_TEST_SENSOR; else export AGENTWATCH_TEST_SENSOR=\$tier; fi
	echo "matrix: tier \$tier, filter $filter"
	start=\$(date +%s)
	if [ "$filter" = bench ]; then
		python3 bench/run.py --agentwatch "$bench_bin" --rounds ${MATRIX_BENCH_ROUNDS:-3} --seconds ${MATRIX_BENCH_SECONDS:-2} \\
			--workloads openat-abs,exec,connect,uring-open --tools baseline,agentwatch --no-install --sensor \$tier \\
			--label "Under emulation (Debian $kernel, qemu TCG, tier \$tier): compare ratios within a row only" \\
			--results "$out/bench-$kernel-\$tier" 2>&1
	else
		"$xctest" --testing-library swift-testing --filter '$filter' 2>&1
	fi
	rc=\$?
	echo "matrix: tier \$tier: tests took \$(( \$(date +%s) - start )) s, exit \$rc"
	[ \$status -ne 0 ] || status=\$rc
done
echo \$status > "$out/$name.rc"
EOF
# One boot: the kernel's console (--verbose) goes to the log with the tests' output, so a
# crash leaves its trace there.
boot() {
	rm -f "$out/$name.rc"
	echo "matrix: booting $(basename "$vmlinuz") (TCG), tiers $tiers, filter $filter; log $log"
	begin=$(date +%s)
	timeout "${MATRIX_TIMEOUT_S:-5400}" "$vng" --verbose -r "$vmlinuz" --disable-kvm --cpus 2 --memory 4G \
		--rwdir "$out" --overlay-rwdir "$pkg_root/.build" \
		-- "bash $out/$name.guest.sh" >"$log" 2>&1 || true
	grep -aE "^matrix:|✘|recorded an issue|Test run with" "$log" || true
	echo "matrix: $kernel $tiers: $(( $(date +%s) - begin )) s in all (boot included)"
}
boot
if [ ! -s "$out/$name.rc" ]; then
	# The VM ended before the tests did. A kernel that crashed is a failure, never noise; a VM
	# that stopped without a word from its kernel (seen once in about twenty runs under TCG)
	# is booted once more, and said so.
	if grep -aqE "Kernel panic|BUG:|Oops|general protection fault|WARNING: CPU" "$log"; then
		echo "matrix: the kernel crashed before the tests ended:" >&2
		grep -aE -A20 "Kernel panic|BUG:|Oops|general protection fault|WARNING: CPU" "$log" | head -n 60 >&2
		exit 1
	fi
	echo "matrix: the VM ended before the tests did, with no crash on its console; its last lines:" >&2
	tail -n 15 "$log" >&2
	cp "$log" "$log.first"
	echo "matrix: booting once more (the first boot's log: $log.first)" >&2
	boot
	[ -s "$out/$name.rc" ] || { echo "matrix: the VM ended before the tests did, twice: see $log and $log.first" >&2; exit 1; }
fi
exit "$(cat "$out/$name.rc")"
