"""Where a serving process' time went over a load, from the kernel's own accounting (no sampling, no cost to it).

A front end can be slow because it does more work (CPU time), because it is ready to run and waits for a core
(run-queue delay: the host's CPU is short), or because its threads hand the GIL back and forth (voluntary context
switches of the event loop's thread, which sleeps on the GIL's lock while another thread holds it). /proc tells these
apart per thread: `schedstat` (time on a CPU, time waiting on a run queue, in ns) and `status` (voluntary and
involuntary context switches). The host's /proc/stat adds its steal time: a virtual machine's CPU taken by others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ThreadTimes:
    cpu_ns: int
    wait_ns: int  # ready to run, waiting for a CPU
    voluntary: int  # the thread slept (I/O, a lock, the GIL)
    involuntary: int  # the kernel took its CPU away

    def __sub__(self, other: ThreadTimes) -> ThreadTimes:
        return ThreadTimes(self.cpu_ns - other.cpu_ns, self.wait_ns - other.wait_ns,
                           self.voluntary - other.voluntary, self.involuntary - other.involuntary)  # fmt: skip

    def __add__(self, other: ThreadTimes) -> ThreadTimes:
        return ThreadTimes(self.cpu_ns + other.cpu_ns, self.wait_ns + other.wait_ns,
                           self.voluntary + other.voluntary, self.involuntary + other.involuntary)  # fmt: skip


ZERO = ThreadTimes(0, 0, 0, 0)


def thread_times(pid: int, tid: int) -> ThreadTimes | None:
    """One thread's times so far; None once it has ended."""
    task = PROC / str(pid) / "task" / str(tid)
    try:
        cpu_ns, wait_ns = (int(v) for v in (task / "schedstat").read_text().split()[:2])
        status = (task / "status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    switches = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            switches[key] = int(value)
    return ThreadTimes(cpu_ns, wait_ns, switches["voluntary_ctxt_switches"], switches["nonvoluntary_ctxt_switches"])


def process_times(pid: int) -> dict[int, ThreadTimes]:
    """Every live thread of `pid` (the main thread's id is the pid: uvicorn's event loop runs there); none once the
    process has ended."""
    times: dict[int, ThreadTimes] = {}
    try:
        entries = list((PROC / str(pid) / "task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return times
    for entry in entries:
        t = thread_times(pid, int(entry.name))
        if t is not None:
            times[int(entry.name)] = t
    return times


def host_ticks() -> dict[str, int]:
    """The host's CPU time so far, all CPUs, in clock ticks: busy, idle (with I/O wait) and steal."""
    fields = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return {"busy": user + nice + system + irq + softirq, "idle": idle + iowait, "steal": steal}


@dataclass(frozen=True)
class Snapshot:
    pid: int
    threads: dict[int, ThreadTimes]
    host: dict[str, int]


def snapshot(pid: int) -> Snapshot:
    return Snapshot(pid, process_times(pid), host_ticks())


def figures(before: Snapshot, after: Snapshot, requests: int) -> dict[str, float] | None:
    """Per request over the interval: the event loop thread's CPU, run-queue wait and context switches, the other
    threads' CPU and wait together (those alive at both ends: a thread that ended between is left out), and the
    host's steal and busy shares of its CPU time. None where the kernel keeps no schedstat or the process is gone:
    a benchmark goes on without these figures rather than stop."""
    if before.pid not in before.threads or after.pid not in after.threads:
        return None
    loop = after.threads[after.pid] - before.threads[before.pid]
    others = ZERO
    for tid, t in after.threads.items():
        if tid != after.pid and tid in before.threads:
            others = others + (t - before.threads[tid])
    host = {k: after.host[k] - before.host[k] for k in after.host}
    total = sum(host.values()) or 1
    n = max(1, requests)
    return {
        "loop_cpu_ms": loop.cpu_ns / 1e6 / n,
        "loop_wait_ms": loop.wait_ns / 1e6 / n,
        "loop_voluntary": loop.voluntary / n,
        "loop_involuntary": loop.involuntary / n,
        "others_cpu_ms": others.cpu_ns / 1e6 / n,
        "others_wait_ms": others.wait_ns / 1e6 / n,
        "host_busy_share": host["busy"] / total,
        "host_steal_share": host["steal"] / total,
        "host_cpus": float(os.cpu_count() or 0),
    }
