"""The configurations a workload runs under: baseline, agentwatch (no session, a session with the
workload outside it, the workload inside it; and inside a session of a daemon that does not
resolve paths), auditd and bpftrace. Each returns RunResults with
the workload's ops/s and the tool's records, losses, CPU time, peak RSS and BPF program time."""

import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass

from . import workloads
from .results import AUDITD, AW_IN, AW_NONE, AW_NR, AW_OUT, BASELINE, BPFTRACE, FLOOR, RunResult
from .system import (BenchError, ToolProcess, bpf_prog_names, bpf_prog_stats, bpf_run_counts,
                     bpf_stats_delta, cgroup_cpu_seconds, cgroup_make, cgroup_remove, host_cpu_seconds,
                     proc_cpu_seconds, run_quiet, wait_for_xattr, wait_until)

PEERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers")
WATCHED_XATTR = "trusted.agentwatch.watched"


@dataclass
class Context:
    """What every configuration needs: where to put things, whom to run as, how long."""
    scratch: str
    uid: int               # the dedicated user the workloads run as
    gid: int
    cgroup_mount: str
    session_root: str      # agentwatch's session root for the benchmark (absolute path)
    peer_root: str         # parent of the cgroups of runs outside sessions
    limits: dict           # workload name -> ["--ops", N] or ["--seconds", S]
    timeout: float         # the longest one workload run may take
    # Seconds to leave the machine alone before every run (after the tool, if any, has become
    # idle): the previous configuration's teardown (a tracer exiting, files deleted) leaves
    # deferred kernel work behind. 0 in the smoke.
    settle: float = 0.0
    sensor: str = "auto"   # agentwatch's sensor setting

    def out(self, name):
        """A file in the scratch's out/: every tool's output and log, kept until the end (deleting
        hundreds of megabytes between runs has the filesystem's discards slow the next ones)."""
        return os.path.join(self.scratch, "out", name)

    @contextlib.contextmanager
    def cgroup(self, name):
        """A fresh cgroup outside any session for one run, removed afterwards."""
        path = os.path.join(self.peer_root, name)
        cgroup_make(path)
        try:
            yield path
        finally:
            cgroup_remove(path)

    def run_workload(self, workload, cgroup, result, tool=None, bpf_names=None):
        """Runs `workload` in `cgroup`, filling `result` with its ops and, when `tool` (a
        ToolProcess) is given, the tool's BPF program time over the run, and its CPU time and
        peak RSS from the start of the run until it has caught up. Returns the WorkloadRun."""
        if self.settle:
            if tool:
                tool.wait_idle()
            time.sleep(self.settle)
        if tool:
            cpu0, bpf0 = tool.cpu_seconds(), bpf_prog_stats(tool.pid)
        progs0 = bpf_run_counts()
        host0, cg0 = host_cpu_seconds(), cgroup_cpu_seconds(cgroup)
        run = workloads.run(workload, self.limits[workload.name], cgroup, self.uid, self.gid,
                            self.scratch, self.timeout)
        host1, cg1 = host_cpu_seconds(), cgroup_cpu_seconds(cgroup)
        progs1 = bpf_run_counts()
        if progs0 is not None and progs1 is not None:
            # Runs of BPF programs the tool does not hold (another tool or test on the host):
            # other syscall hooks put every task on the slow syscall path.
            own = set(bpf0) if tool else set()
            result.foreign_bpf = {}
            for i, (prog, n) in progs1.items():
                runs = n - progs0.get(i, (prog, 0))[1]
                if i not in own and runs > 0:
                    result.foreign_bpf[prog] = result.foreign_bpf.get(prog, 0) + runs
        result.ops, result.seconds, result.ops_per_s = run.ops, run.seconds, run.ops_per_s
        if cg0 is not None and cg1 is not None and host1[1] > host0[1]:
            # The machine's busy CPU during the run that was neither the workload's cgroup nor
            # the tool's process: other tenants, kernel threads (kauditd too), this runner.
            own = (cg1 - cg0) + ((tool.cpu_seconds() - cpu0) if tool else 0)
            result.other_cpu = max(host1[0] - host0[0] - own, 0) / (host1[1] - host0[1])
        if tool:
            result.bpf = bpf_stats_delta(bpf0, bpf_prog_stats(tool.pid), bpf_names or {})
            tool.wait_idle()
            result.tool_cpu_s = tool.cpu_seconds() - cpu0
            result.peak_rss_kib = tool.peak_rss_kib()
        return run


def tag(workload, rnd):
    return f"r{rnd}-{workload.name}"


def names_of(pid):
    """Names of the BPF programs `pid` holds, by program id."""
    ids = bpf_prog_stats(pid)
    return {i: n for i, n in bpf_prog_names().items() if i in ids}


# --- baseline ------------------------------------------------------------------------------


def run_baseline(ctx, workload, rnd):
    result = RunResult(workload.name, BASELINE, rnd)
    with ctx.cgroup(f"{tag(workload, rnd)}-baseline") as cg:
        ctx.run_workload(workload, cg, result)
    return result


# --- agentwatch ----------------------------------------------------------------------------


class Agentwatch:
    """One daemon per workload and round, three configurations in turn: no session, a session
    (with an idle process in it) while the workload runs outside, the workload inside it."""

    CONFIGS = (AW_NONE, AW_OUT, AW_IN)
    RESOLVE_PATHS = True
    SUFFIX = ""  # of the daemon's config, output and log files

    def __init__(self, ctx, binary):
        self.ctx = ctx
        self.binary = binary
        self.config_path = os.path.join(ctx.scratch, f"agentwatch{self.SUFFIX}.yaml")
        root = os.path.relpath(ctx.session_root, ctx.cgroup_mount)
        self.settings = (f"session_roots: [{root}]\n"
                         f"runtime_dir: {os.path.join(ctx.scratch, 'run' + self.SUFFIX)}\n"
                         "status_interval_s: 0\n"
                         f"sensor: {ctx.sensor}\n"
                         + ("" if self.RESOLVE_PATHS else "resolve_paths: false\n"))

    def expected_path(self, workload):
        """The file.path of the workload's opens: resolved by the kernel, or as requested."""
        return workload.resolved if self.RESOLVE_PATHS else workload.requested

    def start(self, name, output):
        """Starts a daemon writing to `output` (a ToolProcess); see started()."""
        # The default file output (rotated at 100 MiB, gzipped), but every rotated file kept: with
        # the default `retain: 10` a long burst's first records would be pruned before counting.
        with open(self.config_path, "w") as f:
            f.write(self.settings + f"outputs:\n  - type: file\n    path: {output}\n    retain: 0\n")
        return ToolProcess("agentwatch", [self.binary, "daemon", "--config", self.config_path],
                           self.ctx.out(f"{name}.agentwatch{self.SUFFIX}.log"))

    @staticmethod
    def started(daemon, output):
        """Waits until `daemon` has written agent.start; returns its BPF programs' names by id
        and the sensor tier it took."""
        if not wait_until(lambda: b'"agent.start"' in read_head(output) or not daemon.running(), 30):
            raise BenchError("agentwatch did not start within 30 s")
        if not daemon.running():
            raise BenchError(f"agentwatch exited with {daemon.proc.returncode} at start: {daemon.log_tail()}")
        return names_of(daemon.pid), sensor_tier(read_head(output))

    def run(self, workload, rnd):
        ctx, name = self.ctx, tag(workload, rnd)
        results = {c: RunResult(workload.name, c, rnd) for c in self.CONFIGS}
        runs, lines_before, idle = {}, 0, None
        output = ctx.out(f"{name}.ndjson")
        session = os.path.join(ctx.session_root, name)
        daemon = self.start(name, output)
        step = AW_NONE
        try:
            names, tier = self.started(daemon, output)
            for r in results.values():
                r.tier = tier

            with ctx.cgroup(f"{name}-{AW_NONE}") as cg:
                runs[AW_NONE] = ctx.run_workload(workload, cg, results[AW_NONE], daemon, names)

            step = AW_OUT
            cgroup_make(session)
            idle = workloads.start_idle(session)
            if not wait_for_xattr(session, WATCHED_XATTR, 15):
                raise BenchError(f"agentwatch did not mark session {session} watched within 15 s")
            with ctx.cgroup(f"{name}-{AW_OUT}") as cg:
                runs[AW_OUT] = ctx.run_workload(workload, cg, results[AW_OUT], daemon, names)

            step = AW_IN
            time.sleep(0.25)  # let the reader flush what is pending before counting lines
            lines_before = count_lines(output)
            runs[AW_IN] = ctx.run_workload(workload, session, results[AW_IN], daemon, names)
        except BenchError as e:
            failed = self.CONFIGS.index(step)
            for c in self.CONFIGS[failed:]:
                results[c].error = str(e) if c == step else f"not run: {step} failed"
        finally:
            status = self.teardown(idle, session, daemon)

        if status != 0:
            err = f"agentwatch exited with {status} at SIGTERM: {daemon.log_tail()}"
            for r in results.values():
                r.error = r.error or err
        if runs:
            self.account(workload, output, runs, results, lines_before)
        return [results[c] for c in self.CONFIGS]

    @staticmethod
    def teardown(idle, session, daemon):
        """Stops the idle session process, removes the session and stops the daemon; returns
        the daemon's exit status."""
        if idle:
            idle.kill()
            idle.wait()
        with contextlib.suppress(BenchError):
            cgroup_remove(session)
        return daemon.stop(signal.SIGTERM)

    def account(self, workload, output, runs, results, lines_before):
        """Counts the output: each configuration's records of its workload, the losses reported
        (all of them during the in-session run: the others produce no records), and all the
        records written since the in-session run began."""
        inside = self.CONFIGS[-1]  # the configuration with the workload inside the session
        captured, lost, total = count_agentwatch(output, workload, runs, self.expected_path(workload))
        for c, run in runs.items():
            r = results[c]
            r.captured = captured[c]
            r.expected = run.events if c == inside else 0
            r.lost = lost.get(workload.kind, 0) if c == inside else 0
            r.lost_all_kinds = sum(lost.values()) if c == inside else 0
            r.records = captured[c]
        if inside in runs:
            r = results[inside]
            r.records = max(total - lines_before - 1, 0)  # all records since the run began, not agent.stop
        for c in (AW_OUT, AW_NONE):
            if c in runs and results[c].captured and not results[c].error:
                results[c].error = f"recorded {results[c].captured} records of a process outside any session"
        r = results[inside]
        if inside in runs and not r.error and r.expected and not r.captured and not r.lost:
            r.error = "no records captured and none reported lost"


class AgentwatchNoResolve(Agentwatch):
    """A daemon with resolve_paths: false (the kernel skips the dentry walk; file.path is the
    path as requested), one per workload and round, with the workload inside a session: against
    agentwatch-session, what resolving paths costs. Openat workloads only."""

    CONFIGS = (AW_NR,)
    RESOLVE_PATHS = False
    SUFFIX = "-noresolve"

    def run(self, workload, rnd):
        ctx, name = self.ctx, tag(workload, rnd)
        result = RunResult(workload.name, AW_NR, rnd)
        runs, lines_before, idle = {}, 0, None
        output = ctx.out(f"{name}{self.SUFFIX}.ndjson")
        session = os.path.join(ctx.session_root, name + self.SUFFIX)
        daemon = self.start(name, output)
        try:
            names, result.tier = self.started(daemon, output)
            cgroup_make(session)
            idle = workloads.start_idle(session)
            if not wait_for_xattr(session, WATCHED_XATTR, 15):
                raise BenchError(f"agentwatch did not mark session {session} watched within 15 s")
            time.sleep(0.25)  # let the reader flush what is pending before counting lines
            lines_before = count_lines(output)
            runs[AW_NR] = ctx.run_workload(workload, session, result, daemon, names)
        except BenchError as e:
            result.error = str(e)
        finally:
            status = self.teardown(idle, session, daemon)
        if status != 0:
            result.error = result.error or f"agentwatch exited with {status} at SIGTERM: {daemon.log_tail()}"
        if runs:
            self.account(workload, output, runs, {AW_NR: result}, lines_before)
        return result


def sensor_tier(head):
    """The tier agent.start names (agent.sensor.tier) in the first bytes of an output, or None."""
    for line in head.splitlines():
        if b'"agent.start"' in line:
            try:
                return json.loads(line)["agent"]["sensor"]["tier"]
            except (ValueError, KeyError, TypeError):
                return None
    return None


def read_head(path, size=65536):
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def output_files(path):
    """The files of a file output, oldest first: those an agentwatch output rotated out beside
    `path` (PATH.TIMESTAMP[-N], gzipped or not), then `path`. A run that writes more than
    rotate_mib (100 MiB by default) has rotated at least once: reading `path` alone would take
    the records in the rotated files for missing ones."""
    d, base = os.path.split(path)
    # BASE.YYYYMMDDTHHMMSSZ[-N][.gz]: N counts rotations within the same second.
    stamp = re.compile(re.escape(base) + r"\.(\d{8}T\d{6}Z)(?:-(\d+))?(?:\.gz)?")
    found = [(m.group(1), int(m.group(2) or 0), n) for n in os.listdir(d or ".") if (m := stamp.fullmatch(n))]
    rotated = [n for _, _, n in sorted(found)]
    return [os.path.join(d, n) for n in rotated] + [path]


def open_output(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def count_lines(path):
    n = 0
    for name in output_files(path):
        with open_output(name) as f:
            while chunk := f.read(1 << 24):
                n += chunk.count(b"\n")
    return n


def output_lines(path):
    """Every line of the file output at `path`, its rotated files first (output_files)."""
    for name in output_files(path):
        with open_output(name) as f:
            yield from f


def count_agentwatch(path, workload, runs, file_path):
    """({config: records of that run's workload ops}, {kind: reported lost}, total lines).
    `file_path`: the file.path the workload's opens must carry.

    Only lines that can match are parsed as JSON: those naming the workload's record type (or
    target path) and agent.loss records."""
    if workload.kind == "open":
        needle = json.dumps(file_path).encode()
    else:
        needle = {"exec": b'"process.exec"', "connect": b'"net.connect"', "send": b'"net.send"'}[workload.kind]
    captured = {c: 0 for c in runs}
    lost, total = {}, 0
    for line in output_lines(path):
        total += 1
        if needle in line:
            rec = json.loads(line)
            for c, run in runs.items():
                if not agentwatch_matches(workload, rec, run, file_path):
                    continue
                if workload.kind == "send":
                    # Datagrams, not records: each record counts all its socket has sent to
                    # that destination so far, so the last one holds the total.
                    captured[c] = max(captured[c], rec["net"].get("datagrams", 0))
                else:
                    captured[c] += 1
        elif b'"agent.loss"' in line:
            for kind, n in json.loads(line)["loss"]["kernel_dropped"].items():
                lost[kind] = lost.get(kind, 0) + n
    return captured, lost, total


def agentwatch_matches(workload, rec, run, file_path):
    """Whether an agentwatch record is one of the records `run`'s ops should produce."""
    p = rec.get("process") or {}
    kind, t = workload.kind, rec.get("type")
    if kind == "open":
        return t == "file.open" and p.get("pid") == run.pid and rec["file"].get("path") == file_path and \
            (workload.via is None or rec["file"].get("via") == workload.via)
    if kind == "send":
        return t == "net.send" and p.get("pid") == run.pid and rec["net"].get("dport") == run.port
    if kind == "exec":
        return t == "process.exec" and p.get("ppid") == run.pid and p.get("exe") in workload.exec_paths
    if kind == "connect":
        return t == "net.connect" and p.get("pid") == run.pid and rec["net"].get("dport") == run.port
    return False


# --- auditd --------------------------------------------------------------------------------


class Auditd:
    """auditd with rules for execve, openat and connect of the workload's uid, logging to the
    run's own file. The kernel's audit settings are saved and restored around every run."""

    KEY = "awbench"
    SYSCALLS = ("execve", "openat", "openat2", "connect")
    # Debian's /etc/audit/rules.d/audit.rules: buffers, burst wait, failure mode.
    SETTINGS = ["-b", "8192", "--backlog_wait_time", "60000", "-f", "1"]

    def __init__(self, ctx):
        self.ctx = ctx
        for tool in ("auditd", "auditctl"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} is not installed (apt-get install auditd)")
        self.saved = audit_status()
        if self.saved.get("pid", 0) != 0:
            raise BenchError(f"another audit daemon (pid {self.saved['pid']}) is running")
        # Once audit has been enabled, every new task gets an audit context and takes the slow
        # syscall path for good (the kernel's audit_ever_enabled), which would slow every later
        # configuration down by ~20% on the openat loop. A `never,task` rule gives new tasks
        # no context: it is in place except during auditd's runs, and stays after the
        # benchmark, as on distributions that ship it. Only on a host without audit rules.
        self.task_never = run_quiet(["auditctl", "-l"]).stdout.strip() in ("No rules", TASK_NEVER)
        if self.task_never and TASK_NEVER not in run_quiet(["auditctl", "-l"]).stdout:
            auditctl("-a", "never,task")
        with open(os.path.join(PEERS, "auditd.conf")) as f:
            self.conf_template = f.read()
        # The kernel thread that hands records to auditd: part of auditd's cost.
        self.kauditd = kernel_thread("kauditd")

    def run(self, workload, rnd):
        ctx, name = self.ctx, tag(workload, rnd)
        result = RunResult(workload.name, AUDITD, rnd)
        conf_dir = ctx.out(f"{name}.auditd")
        log = os.path.join(conf_dir, "audit.log")
        os.makedirs(conf_dir, mode=0o700)
        with open(os.path.join(conf_dir, "auditd.conf"), "w") as f:
            f.write(self.conf_template.replace("@LOG@", log))
        os.chmod(os.path.join(conf_dir, "auditd.conf"), 0o600)

        if self.task_never:
            auditctl("-d", "never,task")
        daemon = ToolProcess("auditd", ["auditd", "-n", "-c", conf_dir], ctx.out(f"{name}.auditd.log"))
        try:
            if not wait_until(lambda: audit_status().get("pid") == daemon.pid or not daemon.running(), 15):
                raise BenchError("auditd did not register with the kernel within 15 s")
            if not daemon.running():
                raise BenchError(f"auditd exited with {daemon.proc.returncode} at start: {daemon.log_tail()}")
            auditctl(*self.SETTINGS)
            for syscall in self.SYSCALLS:
                auditctl("-a", "always,exit", "-F", "arch=b64", "-S", syscall, "-F", f"uid={ctx.uid}",
                         "-k", self.KEY)
            lost0 = audit_status().get("lost", 0)
            kthread0 = self.kthread_cpu()
            with ctx.cgroup(f"{name}-auditd") as cg:
                run = ctx.run_workload(workload, cg, result, daemon)
            if not wait_until(lambda: audit_status().get("backlog", 0) == 0, 30):
                raise BenchError("the kernel's audit backlog did not drain within 30 s")
            result.lost = audit_status().get("lost", 0) - lost0
            result.tool_cpu_s += self.kthread_cpu() - kthread0
        except BenchError as e:
            result.error = str(e)
        finally:
            self.restore()
            status = daemon.stop(signal.SIGTERM)
        if result.error:
            return result
        if status != 0:
            result.error = f"auditd exited with {status}: {daemon.log_tail()}"
        events = parse_audit_log(log, self.KEY)
        result.records = len(events)
        result.expected = run.events
        result.captured = sum(1 for e in events if audit_matches(workload, e, run))
        result.lost_all_kinds = result.lost
        # A workload whose ops the peer's syscall rules do not hook (io_uring, unconnected
        # sends) is the measurement: nothing seen is its result, not a failed run.
        if result.expected and not result.captured and not result.lost and not workload.unseen_by_syscall_peers:
            result.error = "no records captured and none reported lost"
        return result

    def kthread_cpu(self):
        return proc_cpu_seconds(self.kauditd) if self.kauditd else 0.0

    def restore(self):
        """Deletes the benchmark's rules and puts the audit settings back as they were."""
        run_quiet(["auditctl", "-D", "-k", self.KEY])
        s = self.saved
        run_quiet(["auditctl", "-b", str(s.get("backlog_limit", 64)),
                   "--backlog_wait_time", str(s.get("backlog_wait_time", 60000)),
                   "-f", str(s.get("failure", 1))])
        if s.get("enabled") in (0, 1):
            run_quiet(["auditctl", "-e", str(s["enabled"])])
        if self.task_never and TASK_NEVER not in run_quiet(["auditctl", "-l"]).stdout:
            run_quiet(["auditctl", "-a", "never,task"])


TASK_NEVER = "-a never,task"


def kernel_thread(comm):
    """The pid of a kernel thread by name, or None."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == comm:
                    return int(pid)
    return None


def auditctl(*args):
    out = run_quiet(["auditctl", *args])
    if out.returncode != 0:
        raise BenchError(f"auditctl {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}")


def audit_status():
    """`auditctl -s` as a dict of integers (enabled, pid, lost, backlog, …)."""
    status = {}
    out = run_quiet(["auditctl", "-s"])
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            status[key] = int(value.split()[0])
    return status


_AUDIT_LINE = re.compile(r"type=(\w+) msg=audit\([\d.]+:(\d+)\): ([^\x1d]*)")
_AUDIT_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


def parse_audit_log(path, key):
    """The syscall events with `key`, each a dict of the SYSCALL record's fields plus `names`
    (PATH records' names) and `saddr` (the SOCKADDR record's hex address)."""
    events = {}
    try:
        f = open(path, errors="replace")
    except FileNotFoundError:
        return []
    with f:
        for line in f:
            m = _AUDIT_LINE.match(line)
            if not m:
                continue
            rtype, serial, body = m.groups()
            fields = dict(_AUDIT_FIELD.findall(body))
            if rtype == "SYSCALL":
                if fields.get("key") == f'"{key}"':
                    fields["names"] = []
                    events[serial] = fields
            elif serial in events:
                if rtype == "PATH" and "name" in fields:
                    events[serial]["names"].append(fields["name"].strip('"'))
                elif rtype == "SOCKADDR":
                    events[serial]["saddr"] = fields.get("saddr", "")
    return list(events.values())


def audit_matches(workload, event, run):
    syscall, pid = int(event.get("syscall", -1)), int(event.get("pid", -1))
    if workload.kind == "open":
        return syscall in (257, 437) and pid == run.pid and workload.requested in event["names"]
    if workload.kind == "exec":
        return syscall == 59 and int(event.get("ppid", -1)) == run.pid and \
            event.get("exe", "").strip('"') in workload.exec_paths
    if workload.kind == "connect":
        saddr = event.get("saddr", "")
        # struct sockaddr_in in hex: family (little-endian 2), port (big-endian), address.
        return syscall == 42 and pid == run.pid and saddr[:4] == "0200" and int(saddr[4:8] or "0", 16) == run.port
    return False


# --- bpftrace ------------------------------------------------------------------------------


def traced_run(ctx, workload, rnd, config, argv, env=None):
    """Runs `workload` in a fresh cgroup under bpftrace, started as `argv(cgroup, ready)`: waits
    for the READY file its BEGIN probe makes (BEGIN runs once every probe is attached; output to
    a file is block-buffered, so a printf would not tell), runs the workload, stops it with
    SIGINT. Returns (RunResult, WorkloadRun or None when the result has an error)."""
    name = tag(workload, rnd)
    result, run = RunResult(workload.name, config, rnd), None
    ready = ctx.out(f"{name}.{config}.ready")
    with ctx.cgroup(f"{name}-{config}") as cg:
        tracer = ToolProcess("bpftrace", argv(cg, ready), ctx.out(f"{name}.{config}.log"), env=env)
        try:
            if not wait_until(lambda: os.path.exists(ready) or not tracer.running(), 60):
                raise BenchError("bpftrace did not attach its probes within 60 s")
            if not tracer.running():
                raise BenchError(f"bpftrace exited with {tracer.proc.returncode} at start: {tracer.log_tail()}")
            run = ctx.run_workload(workload, cg, result, tracer, names_of(tracer.pid))
        except BenchError as e:
            result.error = str(e)
        finally:
            status = tracer.stop(signal.SIGINT)
    if not result.error and status != 0:
        result.error = f"bpftrace exited with {status}: {tracer.log_tail()}"
    return result, (None if result.error else run)


def require_bpftrace():
    if not shutil.which("bpftrace"):
        raise BenchError("bpftrace is not installed (apt-get install bpftrace)")


class Bpftrace:
    """bpftrace running peers/session.bt for the workload's cgroup, writing to a file."""

    SCRIPT = os.path.join(PEERS, "session.bt")

    def __init__(self, ctx):
        self.ctx = ctx
        require_bpftrace()

    def run(self, workload, rnd):
        output = self.ctx.out(f"{tag(workload, rnd)}.bpftrace.out")
        result, run = traced_run(self.ctx, workload, rnd, BPFTRACE,
                                 lambda cg, ready: ["bpftrace", "--unsafe", "-o", output, self.SCRIPT, cg, ready],
                                 env=dict(os.environ, BPFTRACE_STRLEN="200"))
        if not run:
            return result
        events, lost = parse_bpftrace(output, os.path.splitext(output)[0] + ".log")
        result.records = len(events)
        result.expected = run.events
        result.captured = sum(1 for e in events if bpftrace_matches(workload, e, run))
        result.lost = result.lost_all_kinds = lost
        # A workload whose ops the peer's syscall rules do not hook (io_uring, unconnected
        # sends) is the measurement: nothing seen is its result, not a failed run.
        if result.expected and not result.captured and not result.lost and not workload.unseen_by_syscall_peers:
            result.error = "no records captured and none reported lost"
        return result


class Floor:
    """bpftrace with one empty program on sys_enter_acct, a syscall no workload makes: the
    workload pays only what any attached syscall tracepoint makes every task pay."""

    PROGRAM = 'BEGIN { system("touch %s", str($1)); } tracepoint:syscalls:sys_enter_acct { }'

    def __init__(self, ctx):
        self.ctx = ctx
        require_bpftrace()

    def run(self, workload, rnd):
        result, _ = traced_run(self.ctx, workload, rnd, FLOOR, lambda cg, ready: ["bpftrace", "--unsafe", "-e", self.PROGRAM, ready])
        return result


_LOST = re.compile(r"Lost (\d+) events")
_BPFTRACE_FIELDS = {"exec": 5, "exit": 3, "open": 6, "connect": 7}


def parse_bpftrace(output, log):
    """(event lines split into fields, events bpftrace reported lost)."""
    events, lost = [], 0
    for path in (output, log):
        try:
            f = open(path, errors="replace")
        except FileNotFoundError:
            continue
        with f:
            for line in f:
                fields = line.rstrip("\n").split("\t")
                if len(fields) == _BPFTRACE_FIELDS.get(fields[0]) and path == output:
                    events.append(fields)
                elif m := _LOST.search(line):
                    lost += int(m.group(1))
    return events, lost


def bpftrace_matches(workload, f, run):
    kind = f[0]
    if workload.kind == "open":   # open pid comm ret flags path
        return kind == "open" and int(f[1]) == run.pid and f[5] == workload.requested
    if workload.kind == "exec":   # exec pid ppid comm filename
        return kind == "exec" and int(f[2]) == run.pid and f[4] in workload.exec_paths
    if workload.kind == "connect":  # connect pid comm ret family addr port
        return kind == "connect" and int(f[1]) == run.pid and int(f[6]) == run.port
    return False
