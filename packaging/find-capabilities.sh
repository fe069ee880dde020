#!/usr/bin/env bash
# Finds by experiment which capabilities `agentwatch daemon` needs (packaging/CAPABILITIES.md).
#   packaging/find-capabilities.sh [--binary PATH] probe CAPS          one run with CAPS
#   packaging/find-capabilities.sh [--binary PATH] leave-one-out CAPS  CAPS, then CAPS less each one
#   packaging/find-capabilities.sh [--binary PATH] unit                leave-one-out on the unit's
#                                                                      CapabilityBoundingSet
# CAPS: comma-separated names (cap_bpf,cap_perfmon,...), or "all" for this shell's bounding set.
# As root, on a host with BPF, BTF and a cgroup2 mount. BINARY defaults to .build/debug/agentwatch.
#
# Each run starts the daemon as root with only CAPS left in its bounding set (setpriv: so its
# effective set is CAPS, as under the unit's CapabilityBoundingSet), with a temporary config
# (records and runtime_dir in a temp dir, output file group adm, control_group nogroup), and checks:
#   start      agent.start is written and the daemon keeps running
#   adopt      a session made before the start, holding a `sleep` of uid 65534, is adopted: its
#              process.exec (from /proc) names the exe and the cwd
#   root       a session cgroup made by hand below the session root, a shell moved in, `cat
#              /etc/hostname`: its file.open record carries the session
#   net        from that session, bash connects to a listener on 127.0.0.1 and sends a line:
#              net.connect and a final net.flow with the bytes sent
#   watched    the daemon marks the session watched (the xattr `agentwatch run` waits for)
#   user       uid 65534 runs `agentwatch run -- cat /etc/hostname` through the control socket:
#              exit 0, and the file.open record is in that session, uid 65534 (the command is
#              `sh -c 'cat /etc/hostname; sleep 1'`, so the session's first process outlives the
#              daemon's look at its parent)
#   sess-uid   that session's session.start names uid 65534 (whose ~ the rules mean)
#   parent-exe the session's first process.exec names its parent's exe: `agentwatch run`, a
#              uid 65534 process outside the session, read from /proc/PID/exe
#   group      the output file belongs to group adm, as configured (the audit group reads it)
#   stop       SIGTERM: agent.stop is written and the daemon exits 0
# Every daemon started is stopped, and every session cgroup made is removed, whatever happens.
# DAEMON_WRAPPER: a command the daemon is started through, after setpriv (e.g. strace -f -o
# FILE, or a program that sets a prctl and execs), to test the unit's other restrictions.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=$root/.build/debug/agentwatch
if [ "${1:-}" = "--binary" ]; then bin=$(realpath "$2"); shift 2; fi
[ "$(id -u)" -eq 0 ] || { echo "find-capabilities: run as root" >&2; exit 2; }
bin=$(realpath "$bin" 2>/dev/null || echo "$bin")
[ -x "$bin" ] || { echo "find-capabilities: no binary at $bin (swift build)" >&2; exit 2; }
command -v setpriv >/dev/null || { echo "find-capabilities: setpriv is missing (apt-get install util-linux)" >&2; exit 2; }

cgmount=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
[ -n "$cgmount" ] || { echo "find-capabilities: no cgroup2 mount" >&2; exit 2; }
sessroot=$cgmount/agentwatch
made_root=0
if [ ! -d "$sessroot" ]; then mkdir "$sessroot" && made_root=1; fi

work=$(mktemp -d /tmp/agentwatch-caps.XXXXXX)
chmod 0755 "$work"
daemon_pid="" # what was started: the daemon, or the wrapper that runs it
real_pid=""   # the daemon itself (its pid file), the one signalled
sessions=()
cleanup() {
	[ -n "$real_pid" ] && kill -TERM "$real_pid" 2>/dev/null
	real_pid=""
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
	fi
	daemon_pid=""
	for s in "${sessions[@]}"; do
		[ -d "$s" ] || continue
		# What is still inside (the adopted sleep) is ended, then the session goes.
		for p in $(cat "$s/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		for _ in $(seq 20); do [ -z "$(cat "$s/cgroup.procs" 2>/dev/null)" ] && break; sleep 0.1; done
		rmdir "$s" 2>/dev/null
	done
	sessions=()
}
final_cleanup() {
	cleanup
	[ "$made_root" = 1 ] && rmdir "$sessroot" 2>/dev/null
	if [ -n "${KEEP:-}" ]; then echo "find-capabilities: kept $work" >&2; else rm -rf "$work"; fi
}
trap final_cleanup EXIT
trap 'exit 130' INT TERM

# Reads the records: `records FILE CHECK ARGS...` prints what it found, or nothing.
py=$(command -v /usr/bin/python3 python3 | head -1)
records() {
	"$py" - "$@" <<'PY'
import json, sys
path, check, *args = sys.argv[1:]
try:
    recs = [json.loads(l) for l in open(path, encoding="utf-8", errors="surrogateescape") if l.strip()]
except (OSError, ValueError):
    recs = []
def opens(sid):
    return [r for r in recs if r.get("type") == "file.open" and r.get("session", {}).get("id") == sid
            and r.get("file", {}).get("path") == "/etc/hostname"]
if check == "type":
    if any(r.get("type") == args[0] for r in recs): print("yes")
elif check == "open":
    for r in opens(args[0]): print(r["process"].get("uid")); break
elif check == "parent-exe":
    for r in recs:
        if r.get("type") == "process.exec" and r.get("session", {}).get("id") == args[0]:
            print(r["process"].get("parent", {}).get("exe", "")); break
elif check == "adopt":
    for r in recs:
        p = r.get("process", {})
        if r.get("type") == "process.exec" and r.get("session", {}).get("id") == args[0] and p.get("source") == "procfs":
            if p.get("exe") == "/usr/bin/sleep" and p.get("cwd"): print("yes")
            break
elif check == "net":
    port = int(args[1])
    conn = any(r.get("type") == "net.connect" and r.get("session", {}).get("id") == args[0]
               and r.get("net", {}).get("dport") == port for r in recs)
    flow = any(r.get("type") == "net.flow" and r.get("session", {}).get("id") == args[0]
               and r.get("net", {}).get("dport") == port and r["net"].get("final")
               and r["net"].get("bytes_sent", 0) > 0 for r in recs)
    if conn and flow: print("yes")
elif check == "session-uid":
    for r in recs:
        if r.get("type") == "session.start" and r.get("session", {}).get("id") == args[0]:
            print(r["session"].get("uid")); break
PY
}

wait_for() { # wait_for SECONDS COMMAND...: until COMMAND prints something, or the daemon is gone
	local end=$(( $(date +%s) + $1 )); shift
	while [ "$(date +%s)" -le "$end" ]; do
		[ -n "$("$@")" ] && return 0
		[ -n "$daemon_pid" ] && ! kill -0 "$daemon_pid" 2>/dev/null && { [ -n "$("$@")" ]; return; }
		sleep 0.1
	done
	return 1
}

watched() { "$py" -c 'import os,sys
try: os.getxattr(sys.argv[1], "trusted.agentwatch.watched"); print("yes")
except OSError: pass' "$1"; }

# cap_number NAME: the capability's number, from libcap's own table.
cap_number() {
	local i
	for i in $(seq 0 "$(cat /proc/sys/kernel/cap_last_cap)"); do
		[ "$(capsh --decode="$(printf '0x%x' $((1 << i)))" | sed 's/^.*=//')" = "$1" ] && { echo "$i"; return; }
	done
	echo "find-capabilities: unknown capability $1" >&2
	echo unknown
}

n=0
# probe CAPS: one run; prints one line of results and the daemon's first error or warning.
probe() {
	local caps=$1 label=$2
	n=$((n + 1))
	local dir=$work/run$n
	mkdir -p "$dir"
	chmod 0755 "$dir"
	local out=$dir/out/events.ndjson cfg=$dir/agentwatch.yaml
	cat > "$cfg" <<EOF
session_roots: [agentwatch]
outputs:
  - type: file
    name: file
    path: $out
    mode: "0640"
    group: adm
rules: [$root/rules]
runtime_dir: $dir/run
control_group: nogroup
status_interval_s: 0
EOF
	chmod 0644 "$cfg"
	local bounding="-all"
	if [ "$caps" != "all" ]; then
		local c
		# By number: this setpriv (util-linux 2.38, libcap-ng 0.8) knows no cap_bpf or cap_perfmon.
		for c in ${caps//,/ }; do bounding+=",+cap_$(cap_number "$c")"; done
	else
		bounding=""
	fi
	local r_start=no r_adopt=no r_root=no r_net=no r_watched=no r_user=no r_sessuid=no r_parent=no r_group=no r_stop=no
	local sid=caps-$$-$n usid=caps-$$-$n-u asid=caps-$$-$n-a eff=""
	# A session that is there before the daemon, with a process of another user in it.
	mkdir "$sessroot/$asid" && sessions+=("$sessroot/$asid")
	(cd /tmp && setsid -f sh -c 'echo $$ > "$1/cgroup.procs" && exec setpriv --reuid=65534 --regid=65534 --clear-groups sleep 120' \
		sh "$sessroot/$asid" > /dev/null 2>&1)
	if [ -n "$bounding" ]; then
		setpriv --inh-caps=-all --ambient-caps=-all --bounding-set="$bounding" \
			${DAEMON_WRAPPER:-} "$bin" daemon --config "$cfg" > "$dir/stdout" 2> "$dir/stderr" &
	else
		${DAEMON_WRAPPER:-} "$bin" daemon --config "$cfg" > "$dir/stdout" 2> "$dir/stderr" &
	fi
	daemon_pid=$!
	if wait_for 60 records "$out" type agent.start && kill -0 "$daemon_pid" 2>/dev/null; then
		r_start=yes
		real_pid=$(cat "$dir/run/daemon.pid" 2>/dev/null || echo "$daemon_pid")
		wait_for 3 records "$out" adopt "$asid" && r_adopt=yes
		# What the daemon really holds, to show the experiment is what it says.
		eff=$(capsh --decode="$(awk '/^CapEff:/ { print $2 }' "/proc/$real_pid/status")" | sed 's/^.*=//')
		# A session made by hand, as root.
		local sdir=$sessroot/$sid
		mkdir "$sdir" && sessions+=("$sdir")
		wait_for 3 watched "$sdir" && r_watched=yes
		sleep 1 # without the watched mark, the daemon's rescan (250 ms) and hook attach
		"$py" -c 'import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1); s.settimeout(20)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
c, _ = s.accept(); c.settimeout(5); c.recv(100); c.close()' "$dir/port" 2>/dev/null &
		local listener=$!
		wait_for 5 cat "$dir/port" 2>/dev/null
		local port
		port=$(cat "$dir/port" 2>/dev/null)
		sh -c 'echo $$ > "$1/cgroup.procs" && cat /etc/hostname > /dev/null &&
			exec bash -c "exec 3<>/dev/tcp/127.0.0.1/$2 && echo hello >&3 && exec 3>&-"' sh "$sdir" "${port:-1}" > /dev/null 2>&1
		wait "$listener" 2>/dev/null
		wait_for 5 records "$out" open "$sid" && r_root=yes
		wait_for 3 records "$out" net "$sid" "${port:-1}" && r_net=yes
		rmdir "$sdir" 2>/dev/null
		# A session asked for by a user without root, through the control socket.
		sessions+=("$sessroot/$usid")
		if (cd / && setpriv --reuid=65534 --regid=65534 --clear-groups \
			"$bin" run --config "$cfg" --session "$usid" -- sh -c 'cat /etc/hostname; sleep 1') > "$dir/user.out" 2> "$dir/user.err"; then
			[ "$(wait_for 5 records "$out" open "$usid"; records "$out" open "$usid")" = 65534 ] && r_user=yes
		fi
		[ "$(records "$out" session-uid "$usid")" = 65534 ] && r_sessuid=yes
		[ "$(records "$out" parent-exe "$usid")" = "$bin" ] && r_parent=yes
		[ "$(stat -c %G "$out" 2>/dev/null)" = adm ] && r_group=yes
	fi
	if kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "${real_pid:-$daemon_pid}"
		real_pid=""
		local rc=""
		for _ in $(seq 200); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
		if ! kill -0 "$daemon_pid" 2>/dev/null; then
			wait "$daemon_pid"; rc=$?
			daemon_pid=""
			[ "$rc" = 0 ] && [ -n "$(records "$out" type agent.stop)" ] && r_stop=yes
		fi
	fi
	cleanup
	# Only what this shell may hand on can be held (a sandbox may lack some, e.g. cap_sys_resource).
	local held expected
	held=$(echo "$eff" | tr ',' '\n' | sort | tr '\n' ,)
	expected=$(echo "$caps" | tr ',' '\n' | grep -xF -f <(all_caps | tr ',' '\n') | sort | tr '\n' ,)
	if [ "$r_start" = yes ] && [ "$caps" != all ] && [ "$held" != "$expected" ]; then
		echo "find-capabilities: the daemon held $eff, not $caps" >&2
	fi
	local why
	# What the daemon and `agentwatch run` said went wrong: errors, warnings, refusals.
	why=$( { grep -hiE "error|warning|refused|cannot|failed|denied|not permitted|agentwatch( run)?: " "$dir/stderr" "$dir/stdout" "$dir/user.err" 2>/dev/null | grep -v " info " || true; } | head -3 | cut -c1-400 | tr '\n' ' ')
	printf '%-34s start:%-3s adopt:%-3s root:%-3s net:%-3s watched:%-3s user:%-3s sess-uid:%-3s parent-exe:%-3s group:%-3s stop:%-3s %s\n' \
		"$label" "$r_start" "$r_adopt" "$r_root" "$r_net" "$r_watched" "$r_user" "$r_sessuid" "$r_parent" "$r_group" "$r_stop" "$why"
}

all_caps() {
	capsh --decode="$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)" | sed 's/^.*=//'
}

leave_one_out() {
	local caps=$1
	[ "$caps" = all ] && caps=$(all_caps)
	probe "$caps" "all of: $(echo "$caps" | tr ',' '\n' | wc -l) caps"
	local c rest
	for c in ${caps//,/ }; do
		rest=$(echo ",$caps," | sed "s/,$c,/,/; s/^,//; s/,\$//")
		probe "$rest" "without $c"
	done
}

if pgrep -f "agentwatch daemon" | grep -vq "^$$\$"; then
	echo "find-capabilities: note: another agentwatch daemon is running; it may mark sessions watched" >&2
fi
case "${1:-}" in
probe) probe "${2:?caps}" "${2}" ;;
leave-one-out) leave_one_out "${2:?caps}" ;;
unit)
	set=$(sed -n 's/^CapabilityBoundingSet=//p' "$here/agentwatch.service" | tr 'A-Z ' 'a-z,')
	leave_one_out "$set"
	;;
*) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
