#!/bin/bash
# user-manager.sh — bring up a real `systemd --user` manager for an existing,
# unprivileged user on a machine whose PID 1 is NOT systemd (e.g. the
# Firecracker VM with PID 1 = process_api, hybrid cgroups: tmpfs at
# /sys/fs/cgroup, name=systemd v1 at /sys/fs/cgroup/systemd, cgroup2 at
# /sys/fs/cgroup/unified).  Must be run as root.
#
#   user-manager.sh start  USER          start the manager, print its PID, wait
#                                        until ready (bounded, default 20 s)
#   user-manager.sh stop   USER          stop it, kill what is left in its
#                                        cgroups, remove cgroups + runtime dir
#   user-manager.sh run    USER -- CMD…  run CMD as USER inside the user's
#                                        "session" cgroup with XDG_RUNTIME_DIR
#                                        set, so that e.g.
#                                        `systemd-run --user --scope …` works
#   user-manager.sh status USER          print PID/state, exit 0 if running
#
# Environment knobs:
#   USER_MANAGER_TIMEOUT   readiness timeout in seconds (default 20)
#   USER_MANAGER_LOGLEVEL  manager log level (default info; "debug" is verbose)
#
# How it works (see REPORT.md for the why):
#   * `systemd --user` refuses to run unless sd_booted() is true, i.e. unless
#     /run/systemd/system/ exists.  We do NOT create that globally (it would make
#     every other tool believe systemd is PID 1); instead the manager runs in a
#     private mount namespace with a small tmpfs over /run/systemd that contains
#     system/ (and journal/socket, served by a tiny log receiver, because a user
#     manager never logs to stderr: its "console" target is /dev/console).
#   * cgroups are created by hand, like systemd-logind/PID 1 would:
#       <H>/user.slice/user-UID.slice/user@UID.service      (delegated: chowned)
#       <H>/user.slice/user-UID.slice/session-agentwatch.scope (for `run`)
#     in every systemd-relevant hierarchy H (cgroup2 and name=systemd v1).
#   * On cgroup2 moving a process needs write access to cgroup.procs of the
#     common ancestor of source and destination.  Without a system manager the
#     user manager cannot ask PID 1 to move a process for it, so the caller of
#     `systemd-run --user --scope` must live below user-UID.slice, and
#     user-UID.slice/cgroup.procs (cgroup2 only) is chowned to the user.
set -u

PROG=${0##*/}
STATE_ROOT=/run/agentwatch-user-manager
TIMEOUT=${USER_MANAGER_TIMEOUT:-20}
LOGLEVEL=${USER_MANAGER_LOGLEVEL:-info}
SESSION_CG=session-agentwatch.scope

die() { echo "$PROG: error: $*" >&2; exit 1; }
warn() { echo "$PROG: warning: $*" >&2; }
info() { echo "$PROG: $*" >&2; }

usage() {
	echo "usage: $PROG start USER | stop USER | status USER | run USER -- CMD [ARGS…]" >&2
	exit 2
}

now_ms() { date +%s%3N; }

find_systemd() {
	local c
	for c in /lib/systemd/systemd /usr/lib/systemd/systemd; do
		[ -x "$c" ] && { echo "$c"; return 0; }
	done
	return 1
}

# Print the cgroup hierarchies in which systemd keeps its tree, one per line.
# Hybrid: /sys/fs/cgroup/unified (cgroup2) + /sys/fs/cgroup/systemd (name=systemd)
# Unified: /sys/fs/cgroup.  Legacy: /sys/fs/cgroup/systemd.
cgroup_hierarchies() {
	local t
	t=$(stat -f -c %T /sys/fs/cgroup 2>/dev/null) || return 1
	if [ "$t" = cgroup2fs ]; then
		echo /sys/fs/cgroup
		return 0
	fi
	if [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
		echo /sys/fs/cgroup/unified
	fi
	if grep -qs ' /sys/fs/cgroup/systemd cgroup .*name=systemd' /proc/self/mounts; then
		echo /sys/fs/cgroup/systemd
	fi
}

is_cgroup2() { [ "$(stat -f -c %T "$1")" = cgroup2fs ]; }

resolve_user() {
	local ent
	[ -n "${1:-}" ] || usage
	ent=$(getent passwd "$1") || die "no such user: $1"
	U_NAME=$1
	U_UID=$(echo "$ent" | cut -d: -f3)
	U_GID=$(echo "$ent" | cut -d: -f4)
	U_HOME=$(echo "$ent" | cut -d: -f6)
	U_SHELL=$(echo "$ent" | cut -d: -f7)
	[ "$U_UID" != 0 ] || die "refusing to run a user manager for root"
	[ -d "$U_HOME" ] || U_HOME=/
	STATE=$STATE_ROOT/$U_NAME
	RUNTIME_DIR=/run/user/$U_UID
}

manager_pid() {
	local pid
	[ -r "$STATE/pid" ] || return 1
	pid=$(cat "$STATE/pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# make sure the PID was not recycled by something else
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- 'systemd --user' || return 1
	echo "$pid"
}

# run_as_user CMD…: run CMD as the user, in the session cgroup, with a clean env.
run_as_user() {
	(
		local h
		for h in $(cgroup_hierarchies); do
			echo "$BASHPID" >"$h/user.slice/user-$U_UID.slice/$SESSION_CG/cgroup.procs" || exit 125
		done
		cd "$U_HOME" 2>/dev/null || cd /
		exec setpriv --reuid="$U_UID" --regid="$U_GID" --init-groups \
			env -i HOME="$U_HOME" USER="$U_NAME" LOGNAME="$U_NAME" SHELL="${U_SHELL:-/bin/sh}" \
			PATH=/usr/local/bin:/usr/bin:/bin LANG="${LANG:-C.UTF-8}" \
			XDG_RUNTIME_DIR="$RUNTIME_DIR" \
			${TERM:+TERM="$TERM"} "$@"
	)
}

# tiny journal-protocol receiver: the manager logs to /run/systemd/journal/socket
# inside its mount namespace; we turn that into a plain text log file.
LOG_RECEIVER='
import os, socket, struct, sys, time
path, out, ppid = sys.argv[1], sys.argv[2], int(sys.argv[3])  # ppid: future manager PID
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path); os.chmod(path, 0o666); s.settimeout(1.0)
open(path + ".ready", "w").close()
f = open(out, "a", buffering=1)
def alive(p):
    try: os.kill(p, 0); return True
    except ProcessLookupError: return False
    except PermissionError: return True
while True:
    try:
        d = s.recv(1 << 20)
    except socket.timeout:
        if not alive(ppid): break
        continue
    fields, i = {}, 0
    while i < len(d):
        nl = d.find(b"\n", i)
        if nl < 0: break
        line = d[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1); fields[k] = v; i = nl + 1
        else:
            n = struct.unpack("<Q", d[nl+1:nl+9])[0]
            fields[line] = d[nl+9:nl+9+n]; i = nl + 9 + n + 1
    ts = time.strftime("%H:%M:%S") + ".%03d" % (int(time.time()*1000) % 1000)
    f.write("%s <%s> %s%s\n" % (ts, fields.get(b"PRIORITY", b"?").decode(),
        (fields.get(b"SYSLOG_IDENTIFIER", b"") + b": ").decode("utf-8", "replace") if b"SYSLOG_IDENTIFIER" in fields else "",
        fields.get(b"MESSAGE", b"").decode("utf-8", "replace")))
'

cmd_start() {
	resolve_user "${1:-}"
	[ "$(id -u)" = 0 ] || die "must be run as root"
	local sd pid h hs t0 t_sock="" t_ready="" deadline err=""
	sd=$(find_systemd) || die "systemd binary not found (/lib/systemd/systemd); install it: apt-get install -y systemd"
	command -v systemd-run >/dev/null || die "systemd-run not found; install the systemd package"
	command -v setpriv >/dev/null || die "setpriv not found (util-linux)"
	command -v unshare >/dev/null || die "unshare not found (util-linux)"

	if pid=$(manager_pid); then
		info "user manager for $U_NAME already running"
		echo "$pid"
		return 0
	fi
	hs=$(cgroup_hierarchies)
	[ -n "$hs" ] || die "no usable cgroup hierarchy (need cgroup2 at /sys/fs/cgroup[/unified] or name=systemd v1)"

	# stale state from an earlier crash: clean it first
	if [ -d "$STATE" ]; then
		warn "stale state in $STATE (manager not running); cleaning up first"
		cmd_stop "$U_NAME" >/dev/null 2>&1
	fi
	mkdir -p "$STATE" || die "cannot create $STATE"
	chmod 0700 "$STATE"
	: >"$STATE/manager.log"

	# --- runtime dir --------------------------------------------------------
	mkdir -p -m 0755 /run/user
	if [ ! -d "$RUNTIME_DIR" ]; then
		echo 1 >"$STATE/created-runtime-dir"
	fi
	install -d -m 0700 -o "$U_UID" -g "$U_GID" "$RUNTIME_DIR" || die "cannot create $RUNTIME_DIR"
	chown "$U_UID:$U_GID" "$RUNTIME_DIR" && chmod 0700 "$RUNTIME_DIR"
	rm -f "$RUNTIME_DIR/systemd/private" "$RUNTIME_DIR/systemd/notify" 2>/dev/null

	# --- cgroups (what logind + PID 1 would do) ------------------------------
	for h in $hs; do
		# user.slice is shared by all users: remember (machine-wide) that we made it
		[ -d "$h/user.slice" ] || { mkdir "$h/user.slice" && echo "$h" >>"$STATE_ROOT/created-user-slice"; } \
			|| die "cannot create $h/user.slice"
		local us="$h/user.slice/user-$U_UID.slice" svc
		svc="$us/user@$U_UID.service"
		mkdir -p "$svc" "$us/$SESSION_CG" || die "cannot create cgroups under $us"
		# delegation of user@UID.service
		chown "$U_UID:$U_GID" "$svc" || die "chown $svc failed"
		local f
		for f in cgroup.procs cgroup.threads cgroup.subtree_control tasks; do
			[ -e "$svc/$f" ] && chown "$U_UID:$U_GID" "$svc/$f"
		done
		# cgroup2: user must be able to write the common ancestor of the
		# session cgroup and its own tree, i.e. user-UID.slice/cgroup.procs
		if is_cgroup2 "$h"; then
			chown "$U_UID:$U_GID" "$us/cgroup.procs" || die "chown $us/cgroup.procs failed"
		fi
	done

	# --- launch ---------------------------------------------------------------
	local want_log=0
	command -v python3 >/dev/null && want_log=1
	[ -d /run/systemd ] || { mkdir -p /run/systemd && echo 1 >"$STATE/created-run-systemd"; }
	rm -f "$STATE/pid"
	# The inner shell: private mount ns, tmpfs over /run/systemd with system/
	# (so sd_booted() is true for the manager only), optional log receiver,
	# join the delegated cgroups, drop privileges, exec systemd --user.
	# Its $$ is the manager PID (unshare without --fork and every later step exec).
	local inner='
set -e
mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev agentwatch-sdboot /run/systemd
mkdir /run/systemd/system
if [ "$WANT_LOG" = 1 ]; then
	mkdir -p /run/systemd/journal
	python3 -c "$LOG_RECEIVER" /run/systemd/journal/socket "$STATE/manager.log" $$ </dev/null >/dev/null 2>&1 &
	i=0; while [ ! -e /run/systemd/journal/socket.ready ] && [ $i -lt 50 ]; do sleep 0.02; i=$((i+1)); done
	LOGTARGET=journal
else
	LOGTARGET=console
fi
for h in $HIERARCHIES; do
	echo $$ >"$h/user.slice/user-$U_UID.slice/user@$U_UID.service/cgroup.procs"
done
echo $$ >"$STATE/pid"
cd "$U_HOME" 2>/dev/null || cd /
exec setpriv --reuid="$U_UID" --regid="$U_GID" --init-groups \
	env -i HOME="$U_HOME" USER="$U_NAME" LOGNAME="$U_NAME" SHELL="${U_SHELL:-/bin/sh}" \
	PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 XDG_RUNTIME_DIR="$RUNTIME_DIR" \
	SYSTEMD_LOG_LEVEL="$LOGLEVEL" SYSTEMD_LOG_TARGET="$LOGTARGET" \
	"$SD" --user
'
	t0=$(now_ms)
	WANT_LOG=$want_log LOG_RECEIVER=$LOG_RECEIVER STATE=$STATE HIERARCHIES="$hs" \
	U_UID=$U_UID U_GID=$U_GID U_NAME=$U_NAME U_HOME=$U_HOME U_SHELL=$U_SHELL \
	RUNTIME_DIR=$RUNTIME_DIR LOGLEVEL=$LOGLEVEL SD=$sd \
		setsid unshare --mount --propagation slave /bin/sh -c "$inner" \
		</dev/null >>"$STATE/manager.log" 2>&1 &
	local launcher=$!

	# --- wait for readiness ----------------------------------------------------
	deadline=$(( t0 + TIMEOUT * 1000 ))
	pid=""
	while [ "$(now_ms)" -lt "$deadline" ]; do
		if [ -z "$pid" ] && [ -s "$STATE/pid" ]; then
			pid=$(cat "$STATE/pid")
			echo "$pid"   # the manager PID, as early as we know it
		fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			err="manager process $pid exited during startup"
			break
		fi
		if [ -z "$pid" ] && ! kill -0 "$launcher" 2>/dev/null; then
			err="launcher exited before the manager started (mount namespace / cgroup setup failed)"
			break
		fi
		if [ -n "$pid" ] && [ -S "$RUNTIME_DIR/systemd/private" ]; then
			[ -n "$t_sock" ] || t_sock=$(now_ms)
			local out
			if out=$(run_as_user systemd-run --user --scope --quiet --collect \
					--unit="agentwatch-ready-probe-$$-$RANDOM" -- /bin/true 2>&1); then
				t_ready=$(now_ms)
				break
			fi
			err="readiness probe failed: $out"
		fi
		sleep 0.05
	done
	if [ -z "$t_ready" ]; then
		[ -n "$err" ] || err="timed out after ${TIMEOUT}s waiting for $RUNTIME_DIR/systemd/private"
		echo "$PROG: error: user manager for $U_NAME not ready: $err" >&2
		echo "$PROG: --- last lines of $STATE/manager.log ---" >&2
		tail -n 30 "$STATE/manager.log" >&2
		# the launcher may still be between fork and exec: kill it (it is
		# the same PID as the manager: unshare, sh, setpriv and env all exec)
		kill -KILL "$launcher" 2>/dev/null
		[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
		wait "$launcher" 2>/dev/null
		cmd_stop "$U_NAME" >/dev/null 2>&1
		exit 1
	fi
	echo "$(( t_sock - t0 )) $(( t_ready - t0 ))" >"$STATE/timings"
	info "user manager for $U_NAME (uid $U_UID) ready: pid $pid, private socket after $(( t_sock - t0 )) ms, systemd-run --scope ok after $(( t_ready - t0 )) ms; log: $STATE/manager.log"
	info "use: $0 run $U_NAME -- systemd-run --user --scope --slice=agentwatch.slice -- CMD"
	return 0
}

kill_cgroup_tree() { # $1 = cgroup dir; SIGKILL every process in it (recursively)
	local f p
	[ -d "$1" ] || return 0
	while IFS= read -r f; do
		while IFS= read -r p; do
			[ -n "$p" ] && kill -KILL "$p" 2>/dev/null
		done <"$f"
	done < <(find "$1" -name cgroup.procs 2>/dev/null)
}

cgroup_tree_empty() {
	local f
	while IFS= read -r f; do
		[ -s "$f" ] && return 1
	done < <(find "$1" -name cgroup.procs 2>/dev/null)
	return 0
}

cmd_stop() {
	resolve_user "${1:-}"
	[ "$(id -u)" = 0 ] || die "must be run as root"
	local pid h hs i rc=0
	hs=$(cgroup_hierarchies)
	if pid=$(manager_pid); then
		# SIGTERM makes a user manager start exit.target, i.e. stop all units.
		kill -TERM "$pid" 2>/dev/null
		for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			warn "manager $pid did not exit within 10 s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	# whatever is left in the user's cgroups was started through this manager
	# (or through `run`): kill it, then remove the cgroups bottom-up.
	for h in $hs; do
		kill_cgroup_tree "$h/user.slice/user-$U_UID.slice"
	done
	for h in $hs; do
		local us="$h/user.slice/user-$U_UID.slice"
		[ -d "$us" ] || continue
		for i in $(seq 1 50); do
			cgroup_tree_empty "$us" && break
			kill_cgroup_tree "$us"; sleep 0.1
		done
		find "$us" -depth -type d -exec rmdir {} \; 2>/dev/null
		if [ -d "$us" ]; then
			warn "could not remove $us"; rc=1
		fi
	done
	# remove user.slice if we made it and no other user's manager still uses it
	if [ -f "$STATE_ROOT/created-user-slice" ]; then
		for h in $(sort -u "$STATE_ROOT/created-user-slice"); do
			rmdir "$h/user.slice" 2>/dev/null
			[ -d "$h/user.slice" ] && echo "$h"
		done >"$STATE_ROOT/created-user-slice.new"
		if [ -s "$STATE_ROOT/created-user-slice.new" ]; then
			mv "$STATE_ROOT/created-user-slice.new" "$STATE_ROOT/created-user-slice"
		else
			rm -f "$STATE_ROOT/created-user-slice" "$STATE_ROOT/created-user-slice.new"
		fi
	fi
	if [ -f "$STATE/created-runtime-dir" ]; then
		rm -rf --one-file-system "$RUNTIME_DIR"
	elif [ -d "$RUNTIME_DIR/systemd" ]; then
		rm -rf --one-file-system "$RUNTIME_DIR/systemd"
	fi
	if [ -f "$STATE/created-run-systemd" ]; then
		rmdir /run/systemd 2>/dev/null
	fi
	rm -rf "$STATE"
	rmdir "$STATE_ROOT" 2>/dev/null
	[ "$rc" = 0 ] && info "user manager for $U_NAME stopped and cleaned up"
	return $rc
}

cmd_status() {
	resolve_user "${1:-}"
	local pid
	if pid=$(manager_pid); then
		echo "running pid=$pid"
		[ -f "$STATE/timings" ] && echo "timings_ms(socket ready) $(cat "$STATE/timings")"
		return 0
	fi
	echo "not running"
	return 3
}

cmd_run() {
	resolve_user "${1:-}"
	shift
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || usage
	[ "$(id -u)" = 0 ] || die "must be run as root"
	manager_pid >/dev/null || die "user manager for $U_NAME is not running (use: $PROG start $U_NAME)"
	run_as_user "$@"
}

case "${1:-}" in
	start) shift; cmd_start "$@" ;;
	stop) shift; cmd_stop "$@" ;;
	status) shift; cmd_status "$@" ;;
	run) shift; cmd_run "$@"; exit $? ;;
	*) usage ;;
esac
