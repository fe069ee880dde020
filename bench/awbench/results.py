"""One measured run (a workload under one configuration in one round) and its derived figures."""

from dataclasses import asdict, dataclass, field

# Configurations, in the order they run within a round and appear in the tables.
BASELINE = "baseline"
AW_IN = "agentwatch-session"
AW_OUT = "agentwatch-outside"
AW_NONE = "agentwatch-nosession"
# The workload inside a session of a daemon with resolve_paths: false (no dentry walk in the
# kernel; file.path is the path as requested): with AW_IN, what path resolution costs.
AW_NR = "agentwatch-session-noresolve"
AUDITD = "auditd"
BPFTRACE = "bpftrace"
# One empty BPF program on a syscall tracepoint no workload calls: what attaching any syscall
# tracepoint costs every task on this kernel (the slow syscall path), the floor of a
# syscall-tracepoint tool's cost outside what it watches.
FLOOR = "floor"
CONFIGS = (BASELINE, FLOOR, AW_NONE, AW_OUT, AW_IN, AW_NR, AUDITD, BPFTRACE)
CONFIG_TEXT = {
    BASELINE: "nothing attached",
    FLOOR: "one empty BPF program on an unused syscall tracepoint (bpftrace, sys_enter_acct): the floor of any syscall-tracepoint tool",
    AW_NONE: "agentwatch running, no session",
    AW_OUT: "agentwatch, a session present, workload outside it",
    AW_IN: "agentwatch, workload inside a session",
    AW_NR: "agentwatch, workload inside a session, resolve_paths: false (openat workloads only)",
    AUDITD: "auditd, execve/openat/connect rules for the workload's uid",
    BPFTRACE: "bpftrace, agentwatch's tracepoints filtered to the workload's cgroup, to a file",
}


@dataclass
class RunResult:
    workload: str
    config: str
    round: int
    ops: int = 0
    seconds: float = 0.0
    ops_per_s: float = 0.0
    ratio: float = None          # ops/s over the same round's baseline
    # Records of the workload's ops: that should exist, that the tool wrote, that it reported
    # lost (of the same kind). None: not applicable (baseline) or not measurable.
    expected: int = None
    captured: int = None
    lost: int = None
    lost_all_kinds: int = None
    records: int = None          # everything the tool wrote during the run
    tool_cpu_s: float = None     # the tool's process CPU time during the run (and its drain)
    peak_rss_kib: int = None
    bpf: dict = field(default_factory=dict)  # program name -> {"runs": n, "ns": t}
    # Share of the machine's CPU time during the run that was busy outside the workload's cgroup
    # and the tool's process (other tenants, kernel threads): how quiet the machine was.
    other_cpu: float = None
    # Runs of BPF programs the tool does not hold (another tool or test on the host) during the
    # run, by program name; None: not measured.
    foreign_bpf: dict = None
    tier: str = None             # agentwatch's sensor tier (agent.start's agent.sensor.tier)
    error: str = None
    unavailable: bool = False    # the tool could not be installed or used at all

    @property
    def unaccounted(self):
        if self.expected is None or self.captured is None:
            return None
        return self.expected - self.captured - (self.lost or 0)

    @property
    def cpu_us_per_record(self):
        if self.tool_cpu_s is None or not self.records:
            return None
        return self.tool_cpu_s * 1e6 / self.records

    @property
    def bpf_ns_per_op(self):
        ns = sum(p["ns"] for p in self.bpf.values())
        if not ns or not self.ops:  # no programs, or kernel.bpf_stats_enabled off
            return None
        return ns / self.ops

    def to_dict(self):
        d = asdict(self)
        d.update(unaccounted=self.unaccounted, cpu_us_per_record=self.cpu_us_per_record,
                 bpf_ns_per_op=self.bpf_ns_per_op)
        return d
