#!/usr/bin/env python3
"""agentwatch side by side: baseline, agentwatch, auditd and bpftrace on the same workloads.

    sudo python3 bench/run.py            # full run: 5 rounds, 2 s per workload run (~20 minutes)
    sudo python3 bench/run.py --smoke    # every configuration once with tiny op counts (CI)

For every round and workload the configurations run in turn: baseline; the floor (one empty
BPF program on a syscall tracepoint no workload calls, what any syscall-tracepoint tool costs
every task); agentwatch with no
session, with a session present and the workload outside it, with the workload inside it;
agentwatch with resolve_paths: false, the workload inside a session (openat workloads); auditd;
bpftrace. Results: a markdown table on stdout and in bench/results/<UTC time>.md (and
latest.md), raw figures in the .json next to it; a smoke run writes to bench/results/tmp/.
Exit status: 0 when every configuration ran, 1 when one failed or a tool was unavailable, 2 when
the benchmark could not be set up. See bench/README.md.
"""

import argparse
import dataclasses
import datetime
import fcntl
import json
import os
import platform
import pwd
import shutil
import signal
import sys
import tempfile
import time
from types import SimpleNamespace

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from awbench import report, workloads  # noqa: E402
from awbench.results import AUDITD, AW_IN, AW_NONE, AW_NR, AW_OUT, BASELINE, BPFTRACE, FLOOR, RunResult  # noqa: E402
from awbench.system import (BenchError, Sysctl, cgroup2_mount, cgroup_make, cgroup_remove,  # noqa: E402
                            foreign_bpf_programs, loadavg, run_quiet)
from awbench.tools import Agentwatch, AgentwatchNoResolve, Auditd, Bpftrace, Context, Floor, run_baseline  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
TOOLS = {"baseline": (BASELINE,), "floor": (FLOOR,), "agentwatch": (AW_NONE, AW_OUT, AW_IN),
         "agentwatch-noresolve": (AW_NR,), "auditd": (AUDITD,), "bpftrace": (BPFTRACE,)}
# The Debian package of each peer, named as its program is.
PEER_PACKAGES = {"auditd": "auditd", "bpftrace": "bpftrace", "floor": "bpftrace"}
SESSION_ROOT = "agentwatch-bench"
PEER_ROOT = "agentwatch-bench-peer"
BENCH_USER = "awbench"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help="every configuration once with tiny op counts, results to bench/results/tmp/")
    p.add_argument("--rounds", type=int, help="rounds (default 5, smoke 1)")
    p.add_argument("--seconds", type=float, default=2.0, help="duration of every workload run (default 2)")
    p.add_argument("--ops", type=int,
                   help="run every workload for this many operations instead of --seconds (a burst: "
                        "--ops 10000000 --workloads openat-abs --tools agentwatch)")
    p.add_argument("--workloads", help="comma-separated workload names (default: all)")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    p.add_argument("--agentwatch", metavar="PATH",
                   help="agentwatch binary (default: build with swift build -c release --scratch-path .build-bench)")
    p.add_argument("--sensor", default="auto", choices=("auto", "lsm", "fentry", "kprobe", "tracepoint"),
                   help="agentwatch's sensor tier (the sensor setting; default auto: the best the kernel takes); "
                        "the tables name the tier each daemon took")
    p.add_argument("--label", help="a line the report starts with (the kernel matrix: 'under emulation: "
                                   "compare ratios within a row only')")
    p.add_argument("--user", default=BENCH_USER,
                   help=f"dedicated user the workloads run as, created (system user, no login) when missing "
                        f"(default {BENCH_USER})")
    p.add_argument("--no-install", action="store_true", help="do not apt-get install missing auditd/bpftrace")
    p.add_argument("--results", metavar="DIR", help="where to write results (default bench/results, smoke bench/results/tmp)")
    p.add_argument("--no-bpf-stats", action="store_true",
                   help="leave kernel.bpf_stats_enabled alone: no kernel time per BPF program, and no "
                        "clock reads added to every program run")
    p.add_argument("--render", metavar="JSON",
                   help="only print the markdown report of an earlier run's raw JSON (no root needed)")
    p.add_argument("--keep-scratch", action="store_true",
                   help="keep the scratch directory with every tool's output and log")
    args = p.parse_args()
    args.rounds = args.rounds or (1 if args.smoke else 5)
    args.tools = [t for t in args.tools.split(",") if t]
    unknown = set(args.tools) - set(TOOLS)
    if unknown:
        p.error(f"unknown tools: {', '.join(sorted(unknown))}")
    return args


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- set-up --------------------------------------------------------------------------------


def find_agentwatch(path):
    """The agentwatch binary: the given one, or a release build in .build-bench."""
    if path:
        if not os.access(path, os.X_OK):
            raise BenchError(f"{path} is not an executable")
        return os.path.abspath(path)
    log("building agentwatch: swift build -c release --scratch-path .build-bench")
    out = run_quiet(["swift", "build", "-c", "release", "--scratch-path", ".build-bench"], cwd=REPO)
    if out.returncode != 0:
        raise BenchError("swift build failed: " + (out.stderr or out.stdout).strip()[-1500:])
    return os.path.join(REPO, ".build-bench", "release", "agentwatch")


def install_peers(tools, allowed):
    """apt-get installs auditd and bpftrace when missing (and allowed); failures surface later
    as the tool being unavailable."""
    missing = sorted({PEER_PACKAGES[t] for t in tools if t in PEER_PACKAGES and not shutil.which(PEER_PACKAGES[t])})
    if not missing or not allowed or not shutil.which("apt-get"):
        return
    log(f"installing {' '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_quiet(["apt-get", "update", "-qq"], env=env)
    out = run_quiet(["apt-get", "install", "-y", "-qq", *missing], env=env)
    if out.returncode != 0:
        log(f"apt-get install failed: {out.stderr.strip()[-500:]}")


def bench_user(user):
    """(uid, gid) of the dedicated user the workloads run as (auditd's rules select it), created as
    a system user without login when missing. A real account rather than a bare uid: auditd's
    ENRICHED log format looks every uid up by name, and a failing lookup per record would make
    auditd look ~15 times slower than it is."""
    try:
        entry = pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        pass
    log(f"creating system user {user} for the workloads")
    out = run_quiet(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                     "--shell", "/usr/sbin/nologin", user])
    if out.returncode != 0:
        raise BenchError(f"useradd {user} failed: {out.stderr.strip()}")
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def tool_version(argv):
    out = run_quiet(argv) if shutil.which(argv[0]) else None
    return (out.stdout or out.stderr).strip().splitlines()[0] if out and (out.stdout or out.stderr) else "not installed"


def environment(agentwatch_bin, foreign_programs):
    commit = run_quiet(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = run_quiet(["git", "-C", REPO, "status", "--porcelain", "--", "Sources", "bpf", "Package.swift",
                       "Plugins"]).stdout.strip()
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {
        "agentwatch": f"{agentwatch_bin or 'unavailable'} (commit {commit}{' + uncommitted changes' if dirty else ''})",
        "kernel": platform.release(),
        "CPUs": f"{os.cpu_count()} × {model}",
        "bpftrace": tool_version(["bpftrace", "--version"]),
        "auditd": tool_version(["auditctl", "-v"]),
        "load average at start": loadavg(),
        "BPF tracing programs of other tools at start": foreign_programs,
    }


# --- the rounds ----------------------------------------------------------------------------


def unavailable(workload, configs, rnd, reason):
    return [RunResult(workload.name, c, rnd, error=reason, unavailable=True) for c in configs]


def run_rounds(args, ctx, wls, agentwatch_bin, agentwatch_error):
    """Every round runs every workload under every configuration; returns all RunResults."""
    tools = {}  # name -> the tool, or why it is unavailable
    for name, cls in (("agentwatch", Agentwatch), ("agentwatch-noresolve", AgentwatchNoResolve)):
        if name in args.tools:
            tools[name] = cls(ctx, agentwatch_bin) if agentwatch_bin else agentwatch_error
    for name, cls in (("floor", Floor), ("auditd", Auditd), ("bpftrace", Bpftrace)):
        if name in args.tools:
            try:
                tools[name] = cls(ctx)
            except BenchError as e:
                tools[name] = str(e)

    if "baseline" in args.tools:
        tools = {"baseline": None, **tools}
    results = []
    for rnd in range(1, args.rounds + 1):
        # The order of the tools turns by one every round, so that no tool always runs right
        # after the same other one.
        names = list(tools)
        names = names[(rnd - 1) % len(names):] + names[:(rnd - 1) % len(names)]
        for w in wls:
            got = []
            for name in names:
                tool = tools[name]
                if not applies(name, w):
                    continue
                if name == "baseline":
                    got += guarded(lambda: run_baseline(ctx, w, rnd), w, TOOLS[name], rnd)
                elif isinstance(tool, str):
                    got += unavailable(w, TOOLS[name], rnd, tool)
                else:
                    got += guarded(lambda: tool.run(w, rnd), w, TOOLS[name], rnd)
            results += got
            log(f"[round {rnd}/{args.rounds}] {w.name}: " + " · ".join(
                f"{r.config} {'ERROR' if r.error else report.fmt_rate(r.ops_per_s)}" for r in got))
    return results


def applies(name, workload):
    """Whether a tool runs this workload: agentwatch-noresolve runs the openat workloads only
    (resolve_paths changes nothing else)."""
    return name != "agentwatch-noresolve" or workload.kind == "open"


def guarded(fn, workload, configs, rnd):
    """Runs one configuration group and returns its RunResults as a list; an exception that
    escapes the group becomes its configurations' error."""
    try:
        got = fn()
        return got if isinstance(got, list) else [got]
    except (BenchError, OSError) as e:
        return [RunResult(workload.name, c, rnd, error=f"{type(e).__name__}: {e}") for c in configs]


# --- main ----------------------------------------------------------------------------------


def interrupt(signum, frame):
    raise KeyboardInterrupt


def render(path):
    """The markdown report of an earlier run, from its raw JSON (after the report changed)."""
    with open(path) as f:
        raw = json.load(f)
    wls = [SimpleNamespace(**w) for w in raw["workloads"]]
    fields = {f.name for f in dataclasses.fields(RunResult)}
    results = [RunResult(**{k: v for k, v in r.items() if k in fields}) for r in raw["runs"]]
    report.set_ratios(results)
    print(report.markdown(results, wls, raw["meta"]), end="")
    return 0


def main():
    args = parse_args()
    if args.render:
        return render(args.render)
    if os.geteuid() != 0:
        log("bench/run.py needs root (BPF, cgroups, auditd): run it with sudo")
        return 2
    lock = open("/run/agentwatch-bench.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log("another bench/run.py is running")
        return 2
    signal.signal(signal.SIGTERM, interrupt)

    started = datetime.datetime.now(datetime.timezone.utc)
    command = " ".join(["python3 bench/run.py", *sys.argv[1:]])
    agentwatch_bin, agentwatch_error = None, None
    scratch = None
    restore = []
    try:
        uid, gid = bench_user(args.user)
        mount = cgroup2_mount()
        if {"agentwatch", "agentwatch-noresolve"} & set(args.tools):
            try:
                agentwatch_bin = find_agentwatch(args.agentwatch)
            except BenchError as e:
                agentwatch_error = str(e)
                log(f"agentwatch unavailable: {e}")
        install_peers(args.tools, not args.no_install)

        scratch = tempfile.mkdtemp(prefix="agentwatch-bench.", dir="/tmp")
        os.makedirs(os.path.join(scratch, "out"))
        workloads.build(scratch)
        wls = workloads.prepare(scratch, uid, gid)
        if args.workloads:
            chosen = args.workloads.split(",")
            unknown = set(chosen) - {w.name for w in wls}
            if unknown:
                raise BenchError(f"unknown workloads: {', '.join(sorted(unknown))} "
                                 f"(have {', '.join(w.name for w in wls)})")
            wls = [w for w in wls if w.name in chosen]

        limits = {w.name: ["--ops", str(w.smoke_ops)] if args.smoke else ["--ops", str(args.ops)] if args.ops
                  else ["--seconds", str(args.seconds)] for w in wls}
        # A burst of --ops runs as long as the slowest configuration needs: at least 20,000 ops/s.
        timeout = 60 + (args.ops / 20_000 if args.ops else 10 * args.seconds)
        ctx = Context(scratch=scratch, uid=uid, gid=gid, cgroup_mount=mount,
                      session_root=os.path.join(mount, SESSION_ROOT), peer_root=os.path.join(mount, PEER_ROOT),
                      limits=limits, timeout=timeout, settle=0 if args.smoke else 0.5,
                      sensor=args.sensor)
        for root in (ctx.session_root, ctx.peer_root):
            cgroup_remove(root)  # left over from an interrupted run
            cgroup_make(root)
            restore.append(lambda root=root: cgroup_remove(root))
        foreign = foreign_bpf_programs()
        meta = {"started": started.strftime("%Y-%m-%d %H:%M:%S UTC"), "command": command, "label": args.label,
                "rounds": args.rounds, "smoke": args.smoke,
                "limits": {k: " ".join(v) for k, v in limits.items()},
                "environment": environment(agentwatch_bin, ", ".join(foreign) if foreign else "none")}
        if not args.no_bpf_stats:
            stats = Sysctl("kernel.bpf_stats_enabled", 1)
            restore.append(stats.restore)
        meta["environment"]["kernel.bpf_stats_enabled"] = (
            "unchanged" if args.no_bpf_stats else "1 during every run (two clock reads added to every BPF program run)")
        meta["environment"]["workloads run as"] = f"{args.user} (uid {uid})"

        if not args.smoke:
            # A run: the workload plus 0.5 s settle; a tool group: about 2 s to start and stop,
            # an agentwatch daemon about 2 s more (session rescan).
            per_round = sum(sum(len(TOOLS[t]) * (args.seconds + 0.5) + (4 if t.startswith("agentwatch") else 2)
                                for t in args.tools if applies(t, w)) for w in wls)
            log(f"{args.rounds} rounds × {len(wls)} workloads: about {args.rounds * per_round / 60:.0f} minutes")
        t0 = time.monotonic()
        results = run_rounds(args, ctx, wls, agentwatch_bin, agentwatch_error)
        meta["duration_s"] = round(time.monotonic() - t0, 1)
        meta["environment"]["load average at end"] = loadavg()
    except BenchError as e:
        log(f"benchmark set-up failed: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 2
    finally:
        for undo in reversed(restore):
            try:
                undo()
            except (BenchError, OSError) as e:
                log(f"clean-up: {e}")
        if scratch and not args.keep_scratch:
            workloads.remove_scratch(scratch)
        elif scratch:
            log(f"scratch kept in {scratch}")

    report.set_ratios(results)
    text = report.markdown(results, wls, meta)
    print(text)
    write_results(args, started, text, meta, wls, results)
    failed = [r for r in results if r.error]
    for r in failed:
        log(f"FAILED {r.workload} {r.config} round {r.round}: {r.error}")
    return 1 if failed else 0


def write_results(args, started, text, meta, wls, results):
    out_dir = args.results or os.path.join(BENCH, "results", "tmp" if args.smoke else "")
    os.makedirs(out_dir, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(out_dir, ("smoke-" if args.smoke else "") + stamp)
    raw = {"meta": meta,
           "workloads": [{"name": w.name, "kind": w.kind, "note": w.note, "components": w.components}
                         for w in wls],
           "runs": [r.to_dict() for r in results]}
    with open(base + ".md", "w") as f:
        f.write(text)
    with open(base + ".json", "w") as f:
        json.dump(raw, f, indent=1)
    if not args.smoke:
        for ext in (".md", ".json"):
            shutil.copyfile(base + ext, os.path.join(out_dir, "latest" + ext))
    log(f"results: {base}.md, {base}.json")


if __name__ == "__main__":
    sys.exit(main())
