#!/usr/bin/env python3
"""Generates a large, valid agentwatch capture for `agentwatch replay` benchmarks.

It replicates the records of a real capture (--from FILE, e.g. one written by the kernel test
ReplayKernelTests or by `agentwatch daemon`) or, without --from, a built-in session template,
until the output reaches --size. Each replica gets its own session ids and entity ids, seq keeps
rising by one, alert evidence is renumbered to the replica's records, and every record is
hash-chained as the daemon chains it (SHA-256 over the previous chain's 64 hex bytes and the line
without its chain member), so `agentwatch verify` and `agentwatch replay` accept the result as
intact. Only the first agent.start is kept; agent.stop ends the file.

    python3 bench/replay/gen_capture.py --size 1G --out /tmp/big.ndjson
    python3 bench/replay/gen_capture.py --from capture.ndjson --size 200M --out /tmp/big.ndjson
"""
import argparse
import hashlib
import json
import sys

HOST = {"name": "bench", "id": "0123456789abcdef0123456789abcdef"}
T0 = 1_763_740_000_000_000_000  # 2025-11-21T15:46:40Z


def ts(ns):
    import datetime
    s, frac = divmod(ns, 1_000_000_000)
    return datetime.datetime.fromtimestamp(s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % frac


def template():
    """One agent session: a shell, a credential read, an upload, a reverse-shell connect, a few
    hundred ordinary opens, and the alerts the default rules raise live."""
    recs = []
    home = "/home/dev"
    sess = {"id": "s", "cgroup": "/agentwatch/s", "labels": {"agent": "bench"}}

    def proc(pid, ppid, exe, argv, comm, parent_exe):
        return {"tid": pid, "entity_id": "4f15502dda70-17693e045e0-%d" % pid, "pid": pid, "ppid": ppid, "uid": 1000, "gid": 1000,
                "euid": 1000, "comm": comm, "exe": exe, "argv": argv, "argv_truncated": False, "start_time": ts(T0),
                "source": "kernel", "parent": {"entity_id": "4f15502dda70-17693e045e0-%d" % ppid, "pid": ppid, "exe": parent_exe}}

    recs.append({"type": "session.start", "session": {"id": "s", "cgroup": "/agentwatch/s", "cgroup_id": 1234, "uid": 1000,
                 "labels": {"agent": "bench"}, "adopted": False, "start_time": ts(T0), "homes": [home]}})
    sh = proc(100, 1, "/usr/bin/bash", ["bash", "-c", "work"], "bash", "/usr/bin/agentwatch")
    recs.append({"type": "process.exec", "session": sess, "process": dict(sh, argc=3, stdin={"type": "tty"}, stdout={"type": "tty"}, stderr={"type": "tty"})})
    for i in range(300):
        c = proc(200 + i % 7, 100, "/usr/bin/cat", ["cat", "src/file%d.c" % i], "cat", "/usr/bin/bash")
        if i % 50 == 0:
            recs.append({"type": "process.exec", "session": sess, "process": dict(c, argc=2, previous_exe="/usr/bin/bash",
                         stdin={"type": "pipe", "ino": 5000 + i}, stdout={"type": "pipe", "ino": 6000 + i}, stderr={"type": "tty"})})
        recs.append({"type": "file.open", "session": sess, "process": c,
                     "file": {"path": "/home/dev/project/src/file%d.c" % i, "requested_path": "src/file%d.c" % i, "flags": ["O_RDONLY", "O_CLOEXEC"], "mode": 0, "result": 3}})
    cat = proc(300, 100, "/usr/bin/cat", ["cat", "/home/dev/.aws/credentials"], "cat", "/usr/bin/bash")
    recs.append({"type": "process.exec", "session": sess, "process": dict(cat, argc=2, previous_exe="/usr/bin/bash", stdin={"type": "tty"}, stdout={"type": "pipe", "ino": 77}, stderr={"type": "tty"})})
    recs.append({"type": "file.open", "session": sess, "process": cat, "file": {"path": "/home/dev/.aws/credentials", "flags": ["O_RDONLY"], "mode": 0, "result": 3}})
    recs.append({"type": "alert", "session": sess, "process": cat, "rule": {"id": "cred-cloud-credentials", "title": "Cloud or infrastructure credentials read",
                 "severity": "high", "tags": ["attack.credential_access"], "source": "rules/credentials.yaml", "author": "agentwatch"},
                 "message": "/usr/bin/cat (pid 300) read cloud credentials /home/dev/.aws/credentials", "evidence": [-1]})
    recs.append({"type": "process.exit", "session": sess, "process": dict(cat, exit_code=0, duration_ns=1_200_000)})
    py = proc(400, 100, "/usr/bin/python3.11", ["python3", "-c", "upload"], "python3", "/usr/bin/bash")
    recs.append({"type": "process.exec", "session": sess, "process": dict(py, argc=3, previous_exe="/usr/bin/bash", stdin={"type": "tty"}, stdout={"type": "tty"}, stderr={"type": "tty"})})
    net = {"family": "ipv4", "transport": "tcp", "daddr": "203.0.113.9", "dport": 443, "saddr": "10.0.0.2", "sport": 40000, "fd": 3}
    recs.append({"type": "net.connect", "session": sess, "process": py, "net": dict(net, result=0)})
    for k in range(1, 21):
        recs.append({"type": "net.flow", "session": sess, "process": py, "net": dict(net, bytes_sent=k << 20, bytes_received=100,
                     bytes_sent_delta=1 << 20, bytes_received_delta=100 if k == 1 else 0, final=k == 20)})
    recs.append({"type": "process.exit", "session": sess, "process": dict(py, exit_code=0, duration_ns=900_000_000)})
    for c in range(7):
        recs.append({"type": "process.exit", "session": sess, "process": dict(proc(200 + c, 100, "/usr/bin/cat", ["cat"], "cat", "/usr/bin/bash"), exit_code=0, duration_ns=5_000_000)})
    recs.append({"type": "process.exit", "session": sess, "process": dict(sh, exit_code=0, duration_ns=2_000_000_000)})
    recs.append({"type": "session.end", "session": {"id": "s", "cgroup": "/agentwatch/s", "cgroup_id": 1234, "uid": 1000, "labels": {"agent": "bench"},
                 "adopted": False, "start_time": ts(T0), "end_time": ts(T0), "counts": {}, "homes": [home]}})
    return recs


def load(path):
    recs = []
    with open(path, "rb") as f:
        for line in f:
            r = json.loads(line)
            r.pop("chain", None)
            recs.append(r)
    return recs


def retag(obj, suffix):
    """Session ids and entity ids made unique per replica."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "entity_id" and isinstance(v, str):
                out[k] = v + suffix
            elif k == "session" and isinstance(v, dict) and "id" in v:
                out[k] = retag(dict(v, id=v["id"] + suffix), suffix)
            else:
                out[k] = retag(v, suffix)
        return out
    if isinstance(obj, list):
        return [retag(x, suffix) for x in obj]
    return obj


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="source", help="a capture whose records are replicated (default: a built-in session)")
    ap.add_argument("--size", default="1G", help="stop once the output is this large (K, M, G suffixes)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    size = int(a.size[:-1]) * units[a.size[-1].upper()] if a.size[-1].upper() in units else int(a.size)
    records = load(a.source) if a.source else template()
    body = [r for r in records if not r.get("type", "").startswith("agent.")]
    prev = b"0" * 64
    seq = 0
    now = T0
    written = 0
    with open(a.out, "wb") as out:
        def emit(rec):
            nonlocal prev, seq, written, now
            seq += 1
            now += 1_000_000
            r = {"v": 1, "seq": seq, "time": ts(now), "type": rec["type"], "host": HOST}
            for k, v in rec.items():
                if k not in ("v", "seq", "time", "type", "host", "chain"):
                    r[k] = v
            text = json.dumps(r, separators=(",", ":"), ensure_ascii=True).encode()
            digest = hashlib.sha256(prev + text).hexdigest().encode()
            line = text[:-1] + b',"chain":"' + digest + b'"}\n'
            out.write(line)
            prev = digest
            written += len(line)
            return seq

        emit({"type": "agent.start", "agent": {"version": "bench", "pid": 1, "kernel": "bench", "output": a.out, "session_roots": ["agentwatch"],
              "features": [], "chain_start": True}})
        replica = 0
        while written < size:
            suffix = "-%d" % replica
            base_old = None
            renumber = {}
            for rec in body:
                r = retag(rec, suffix)
                if "evidence" in r:
                    # Evidence: the seq of the replica's record before the alert (the template
                    # marks it -1), or the original seq renumbered.
                    r["evidence"] = [renumber.get(e, seq + e + 1 if e < 0 else e) for e in r["evidence"]]
                old = rec.get("seq")
                new = emit(r)
                if old is not None:
                    renumber[old] = new
            replica += 1
        emit({"type": "agent.stop", "agent": {"version": "bench", "records": seq, "kernel_dropped": 0, "decode_rejected": 0, "sessions": replica}})
    print("%s: %d records, %d bytes, %d sessions" % (a.out, seq, written, replica), file=sys.stderr)


if __name__ == "__main__":
    main()
