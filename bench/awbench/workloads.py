"""The C workloads: built with cc, their data prepared, and one run of one workload inside a
given cgroup as the benchmark's dedicated uid."""

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

from .system import BenchError, run_quiet

SOURCES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workloads")
PROGRAMS = ("openat", "exec", "connect", "mixed", "uring_open", "udp_send")
# The numbers of path components of the deep openat targets ("/a/b" has 2): the kernel's path
# walk costs per component.
DEEP_COMPONENTS = (16, 40)
TRUE = "/bin/true"
SHM = "/dev/shm"


@dataclass
class Workload:
    """One workload: its command (without the --ops/--seconds limit) and what a tool should
    record for it. `kind` is the record kind every op must produce (open, exec, connect)."""
    name: str
    argv: list
    kind: str  # open, exec, connect, or send (unconnected datagrams, counted, not one record each)
    smoke_ops: int
    # For opens: the path as passed to openat and the absolute path the kernel resolves.
    requested: str = None
    resolved: str = None
    # For execs: the program every op executes, as passed and resolved.
    exec_paths: tuple = ()
    # For opens: how they must have been asked (file.via), when that is the point of the workload.
    via: str = None
    note: str = ""

    @property
    def unseen_by_syscall_peers(self):
        """Its ops enter the kernel by a way the peers' syscall rules do not hook (io_uring, or
        datagrams sent unconnected, which auditd's and bpftrace's open/exec/connect rules never
        match): a peer that sees none of them has measured that, not failed."""
        return self.via is not None or self.kind == "send"

    @property
    def components(self):
        """Path components of the file an open workload opens (what the kernel's walk visits)."""
        return len(self.resolved.strip("/").split("/")) if self.resolved else None


@dataclass
class WorkloadRun:
    """The result line of one run, plus who ran it."""
    pid: int
    ops: int
    seconds: float
    ops_per_s: float
    events: int
    port: int
    raw: dict = field(default_factory=dict)


def build(scratch, cc="cc"):
    """Compiles every workload into scratch/bin; returns that directory."""
    bin_dir = os.path.join(scratch, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    for name in PROGRAMS:
        out = run_quiet([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", os.path.join(bin_dir, name),
                         os.path.join(SOURCES, name + ".c")])
        if out.returncode != 0:
            raise BenchError(f"building workload {name} failed:\n{out.stderr.strip()}")
    os.chmod(bin_dir, 0o755)
    return bin_dir


def prepare(scratch, uid, gid):
    """Makes the workloads' data under scratch/data and a home and work directory for `uid`.
    Returns the list of Workloads."""
    data = os.path.join(scratch, "data")
    os.makedirs(data, exist_ok=True)
    bin_dir = os.path.join(scratch, "bin")

    target = os.path.join(data, "target")
    with open(target, "w") as f:
        f.write("agentwatch benchmark target\n")

    deep_targets = {n: make_deep_target(data, n) for n in DEEP_COMPONENTS}

    home = os.path.join(scratch, "home")
    work = os.path.join(scratch, "work")
    repo = os.path.join(data, "repo")
    csource = os.path.join(data, "unit.c")
    os.makedirs(home, exist_ok=True)
    if os.path.isdir(SHM) and not os.path.exists(work):
        # The workloads write (the mixed one clones, compiles and deletes) on a tmpfs, as on a
        # laptop whose page cache absorbs it: on this VM's disk (ext4 mounted with `discard`)
        # every deletion becomes a discard for the host, and the runs slow down as they pile up.
        os.symlink(tempfile.mkdtemp(prefix="agentwatch-bench.", dir=SHM), work)
    os.makedirs(work, exist_ok=True)
    for d in (home, work):
        os.chown(d, uid, gid)
    make_repo(repo, uid, gid)
    with open(csource, "w") as f:
        f.write('#include <stdio.h>\n#include <string.h>\n\n'
                'int main(int argc, char **argv)\n{\n'
                '\tsize_t n = 0;\n\tfor (int i = 0; i < argc; i++)\n\t\tn += strlen(argv[i]);\n'
                '\tprintf("%zu\\n", n);\n\treturn 0;\n}\n')
    for path in (scratch, data):
        os.chmod(path, 0o755)

    prog = lambda name: os.path.join(bin_dir, name)  # noqa: E731
    return [
        Workload("openat-abs", [prog("openat"), "path", target], "open", 2000,
                 requested=target, resolved=target, note="openat(AT_FDCWD, absolute path) + close"),
        Workload("openat-dirfd", [prog("openat"), "dirfd", target], "open", 2000,
                 requested="target", resolved=target, note="openat(dirfd, name) + close"),
        *(Workload(f"openat-deep{n}", [prog("openat"), "path", deep], "open", 2000,
                   requested=deep, resolved=deep, note=f"openat of a {n}-component absolute path + close")
          for n, deep in deep_targets.items()),
        Workload("uring-open", [prog("uring_open"), target], "open", 2000,
                 requested=target, resolved=target, via="io_uring",
                 note="io_uring IORING_OP_OPENAT of an absolute path + close: no open syscall"),
        Workload("udp-send", [prog("udp_send")], "send", 2000,
                 note="sendto of a 512-byte datagram to an unconnected loopback receiver (expected: datagrams)"),
        Workload("exec", [prog("exec")], "exec", 20, exec_paths=(TRUE, os.path.realpath(TRUE)),
                 note="fork + execve /bin/true + wait"),
        Workload("connect", [prog("connect")], "connect", 200,
                 note="TCP connect to a 127.0.0.1 listener + accept + close"),
        Workload("mixed", [prog("mixed"), repo, csource, work], "connect", 1,
                 note="git clone, grep -r, cc -c, 4 loopback connects, rm -rf (expected: the connects)"),
    ]


def make_deep_target(data, components):
    """/…/data/deepN/dNN/…/target with exactly `components` components; returns its path."""
    deep_dir = os.path.join(data, f"deep{components}")
    depth = len(deep_dir.strip("/").split("/"))
    for i in range(depth + 1, components):
        deep_dir = os.path.join(deep_dir, f"d{i:02d}")
    os.makedirs(deep_dir, exist_ok=True)
    target = os.path.join(deep_dir, "target")
    with open(target, "w") as f:
        f.write("deep target\n")
    if len(target.strip("/").split("/")) != components:
        raise BenchError(f"scratch directory too deep for a {components}-component path")
    return target


def remove_scratch(scratch):
    """Removes the scratch directory and the tmpfs work directory it links to."""
    work = os.path.join(scratch, "work")
    if os.path.islink(work):
        shutil.rmtree(os.readlink(work), ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)


def make_repo(repo, uid, gid):
    """A small git repository (60 files in 3 directories, one commit) owned by `uid`, so that
    `uid` may clone it without git's ownership check refusing."""
    if os.path.isdir(os.path.join(repo, ".git")):
        return
    for d in ("src", "lib", "docs"):
        os.makedirs(os.path.join(repo, d), exist_ok=True)
        for i in range(20):
            with open(os.path.join(repo, d, f"f{i}.c"), "w") as f:
                f.write(f"/* {d} {i}: TODO */\nint {d}_{i}(int x)\n{{\n\treturn x * {i};\n}}\n")
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=repo)
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "init.defaultBranch=main"]
    for argv in (["git", *ident, "init", "-q"], ["git", "add", "-A"], ["git", *ident, "commit", "-qm", "bench"]):
        out = run_quiet(argv, cwd=repo, env=env)
        if out.returncode != 0:
            raise BenchError(f"making the git repository failed: {' '.join(argv)}: {out.stderr.strip()}")
    for root, dirs, files in os.walk(repo):
        for name in dirs + files + [""]:
            os.lchown(os.path.join(root, name), uid, gid)


def workload_env(scratch):
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.path.join(scratch, "home"),
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def start_idle(cgroup):
    """An idle process (sleep) inside `cgroup`, standing for an agent that does nothing."""
    return subprocess.Popen(["sh", "-c", 'echo $$ > "$0" && exec sleep 1000000',
                             os.path.join(cgroup, "cgroup.procs")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(workload, limit, cgroup, uid, gid, scratch, timeout):
    """Runs `workload` with `limit` (["--ops", N] or ["--seconds", S]) inside `cgroup` as
    `uid`:`gid`.

    A root shell moves itself into the cgroup, then setpriv drops to `uid` and executes the
    workload: the same pid all along, so the workload's records carry the pid returned here."""
    argv = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(cgroup, "cgroup.procs"),
            "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
            *workload.argv, *limit]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=workload_env(scratch), cwd=os.path.join(scratch, "work"))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"{workload.name} did not finish within {timeout:.0f} s")
    if proc.returncode != 0:
        raise BenchError(f"{workload.name} exited with {proc.returncode}: "
                         f"{err.decode(errors='replace').strip()[-500:]}")
    try:
        result = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"{workload.name} printed no result line: {out[-300:]!r}")
    return WorkloadRun(pid=proc.pid, ops=result["ops"], seconds=result["seconds"],
                       ops_per_s=result["ops_per_s"], events=result["events"],
                       port=result["port"], raw=result)
