"""The machine: cgroups, processes started and measured, procfs, BPF program statistics, sysctls.

Everything here touches only what the benchmark created itself (its cgroups, its processes) or
saves a setting and restores it afterwards.
"""

import json
import os
import shutil
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A step failed; the message says which and why."""


def run_quiet(argv, **kw):
    """Runs a short helper command; returns CompletedProcess with text output."""
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def wait_until(predicate, timeout, interval=0.01):
    """Polls `predicate` until it returns something true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --- cgroups -------------------------------------------------------------------------------


def cgroup2_mount():
    """The mount point of the cgroup2 filesystem, from /proc/self/mountinfo."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2":
                return fields[4]
    raise BenchError("no cgroup2 filesystem is mounted")


def cgroup_make(path):
    os.makedirs(path, exist_ok=True)


def cgroup_remove(path, timeout=5.0):
    """Removes a cgroup the benchmark made, killing what is left in it (cgroup.kill) first."""
    if not os.path.isdir(path):
        return
    for child in os.listdir(path):
        if os.path.isdir(os.path.join(path, child)):
            cgroup_remove(os.path.join(path, child), timeout)
    if cgroup_pids(path):
        try:
            with open(os.path.join(path, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass

    def removed():
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            return False

    if not wait_until(removed, timeout, 0.02):
        raise BenchError(f"cannot remove cgroup {path}: still busy")


def cgroup_pids(path):
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def wait_for_xattr(path, name, timeout):
    def present():
        try:
            return os.getxattr(path, name)
        except OSError:
            return None

    return wait_until(present, timeout, 0.005) is not None


# --- processes -----------------------------------------------------------------------------


def proc_cpu_seconds(pid):
    """utime + stime of a process, exited threads included, from /proc/PID/stat: clock ticks
    (10 ms), which is coarse for a short run but never goes backwards. (Summing the threads'
    nanosecond schedstat would lose the threads that exit, and the agentwatch daemon has some.)"""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def host_cpu_seconds():
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat: busy is
    user + nice + system + irq + softirq; total adds idle, iowait and steal."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq
    return busy / CLK_TCK, (busy + idle + iowait + steal) / CLK_TCK


def cgroup_cpu_seconds(path):
    """CPU time of every task that has been in a cgroup (cgroup2 cpu.stat usage_usec), or None."""
    try:
        with open(os.path.join(path, "cpu.stat")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
    except OSError:
        pass
    return None


def proc_status_kib(pid, key):
    """A `kB` value of /proc/PID/status (VmHWM, VmRSS), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class ToolProcess:
    """A long-running process the benchmark starts (a daemon or tracer), measured while it runs."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def cpu_seconds(self):
        return proc_cpu_seconds(self.pid)

    def peak_rss_kib(self):
        """VmHWM: the peak of the running image. (wait4's ru_maxrss would not do: it keeps the
        peak of the image before exec, a fork of this runner.)"""
        return proc_status_kib(self.pid, "VmHWM")

    def wait_idle(self, window=0.3, busy=0.02, timeout=30.0):
        """Waits until the process used at most `busy` CPU seconds over the last `window`
        seconds: it has caught up with its input."""
        samples = [(time.monotonic(), self.cpu_seconds())]
        deadline = samples[0][0] + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = (time.monotonic(), self.cpu_seconds())
            samples.append(now)
            while len(samples) > 1 and now[0] - samples[1][0] >= window:
                samples.pop(0)
            if now[0] - samples[0][0] >= window and now[1] - samples[0][1] <= busy:
                return

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:]).strip()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        """Signals the process and reaps it, SIGKILL after `timeout`; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


# --- BPF -----------------------------------------------------------------------------------


def bpf_prog_names():
    """prog id -> name for every loaded BPF program (bpftool), or {} without bpftool."""
    if not shutil.which("bpftool"):
        return {}
    out = run_quiet(["bpftool", "prog", "show", "-j"])
    if out.returncode != 0:
        return {}
    try:
        return {p["id"]: p.get("name", f"prog{p['id']}") for p in json.loads(out.stdout or "[]")}
    except (ValueError, KeyError):
        return {}


def bpf_prog_stats(pid):
    """{prog_id: (run_cnt, run_time_ns)} for the BPF programs a process holds descriptors of.

    Read from /proc/PID/fdinfo, which counts only while kernel.bpf_stats_enabled is 1."""
    stats = {}
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return stats
    for fd in fds:
        try:
            if os.readlink(f"{fd_dir}/{fd}") != "anon_inode:bpf-prog":
                continue
            info = {}
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    info[key.strip()] = value.strip()
            stats[int(info["prog_id"])] = (int(info.get("run_cnt", 0)), int(info.get("run_time_ns", 0)))
        except (OSError, KeyError, ValueError):
            continue
    return stats


def bpf_stats_delta(before, after, names):
    """{name: {"runs": n, "ns": t}} between two bpf_prog_stats snapshots, names summed."""
    delta = {}
    for prog_id, (cnt, ns) in after.items():
        cnt0, ns0 = before.get(prog_id, (0, 0))
        name = names.get(prog_id, f"prog{prog_id}")
        d = delta.setdefault(name, {"runs": 0, "ns": 0})
        d["runs"] += cnt - cnt0
        d["ns"] += ns - ns0
    return delta


def bpf_run_counts():
    """{prog_id: (name, run_cnt)} of every loaded BPF program (bpftool; counts only while
    kernel.bpf_stats_enabled is 1), or None without bpftool."""
    if not shutil.which("bpftool"):
        return None
    out = run_quiet(["bpftool", "prog", "show", "-j"])
    try:
        return {p["id"]: (p.get("name", f"prog{p['id']}"), p.get("run_cnt", 0))
                for p in json.loads(out.stdout or "[]")}
    except (ValueError, KeyError):
        return None


def foreign_bpf_programs(own_ids=()):
    """Names of loaded tracing programs the benchmark did not load (other tools on the host)."""
    if not shutil.which("bpftool"):
        return None
    out = run_quiet(["bpftool", "prog", "show", "-j"])
    try:
        progs = json.loads(out.stdout or "[]")
    except ValueError:
        return None
    return sorted(p.get("name", "?") for p in progs
                  if p.get("type") in ("tracepoint", "tracing", "kprobe", "raw_tracepoint")
                  and p["id"] not in own_ids)


class Sysctl:
    """Sets a sysctl for the duration of the benchmark and restores the old value."""

    def __init__(self, name, value):
        self.path = "/proc/sys/" + name.replace(".", "/")
        with open(self.path) as f:
            self.old = f.read().strip()
        self._write(value)

    def _write(self, value):
        with open(self.path, "w") as f:
            f.write(str(value))

    def restore(self):
        self._write(self.old)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
