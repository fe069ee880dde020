#!/bin/bash
# What a session-root pattern costs processes outside sessions. An openat loop runs outside any
# session, in a cgroup at depth 6 (as deep as a desktop user's processes below
# user@UID.service/app.slice), while a session exists (so the syscall hooks are attached), with:
#   baseline  no daemon
#   A         a daemon whose session_roots are directories only
#   B         a daemon with the built-in user-scope pattern as well (the default config)
# Prints ops/s per round and the means. As root, after `swift build -c release`:
#   bench/gate-patterns.sh [ROUNDS]        (AGENTWATCH=path/to/agentwatch to use another build)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
bin=${AGENTWATCH:-.build/release/agentwatch}
mount=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
[ -n "$mount" ] || { echo "no cgroup2 mount" >&2; exit 1; }
work=$(mktemp -d)
deep=$mount/gate-bench-$$/a/b/c/d/e
root=gate-bench-root-$$
cleanup() {
	pkill -f "$work/cfg" 2>/dev/null || true
	for d in "$mount/$root"/*/ ; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
	rmdir "$mount/$root" 2>/dev/null || true
	rmdir "$deep" "$(dirname "$deep")" "$mount/gate-bench-$$/a/b/c" "$mount/gate-bench-$$/a/b" "$mount/gate-bench-$$/a" "$mount/gate-bench-$$" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -o "$work/openat" bench/workloads/openat.c -Ibench/workloads
mkdir -p "$deep"
loop() {
	sh -c "echo \$\$ > $deep/cgroup.procs && exec taskset -c 1 $work/openat path /etc/hostname --seconds 3" |
		python3 -c 'import json, sys; print(round(json.load(sys.stdin)["ops_per_s"] / 1000, 1))'
}
config() { # NAME ROOTS
	printf 'session_roots: [%s]\noutput: %s/out.ndjson\nruntime_dir: %s/run\nrules: []\nstatus_interval_s: 0\n' \
		"$2" "$work" "$work" > "$work/cfg$1.yaml"
}
config A "$root"
config B "$root, \"user.slice/user-*.slice/user@*.service/agentwatch.slice\""
for round in $(seq 1 "$rounds"); do
	echo "round $round baseline $(loop)"
	for c in A B; do
		taskset -c 0 "$bin" daemon --config "$work/cfg$c.yaml" > "$work/daemon$c.log" 2>&1 & daemon=$!
		sleep 2
		mkdir -p "$mount/$root/s1"
		sh -c "echo \$\$ > $mount/$root/s1/cgroup.procs; exec sleep 60" & idle=$!
		sleep 1.5
		echo "round $round $c $(loop)"
		kill "$idle"; kill "$daemon"; wait "$daemon" 2>/dev/null || true
		sleep 0.5; rmdir "$mount/$root/s1" 2>/dev/null || true
	done
done | tee "$work/rounds.txt"
awk '{ s[$3] += $4; n[$3]++ } END { for (k in s) printf "mean %s %.1f k ops/s\n", k, s[k] / n[k] }' "$work/rounds.txt" | sort
