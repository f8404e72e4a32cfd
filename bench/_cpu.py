"""Per-process CPU split for the benchmarks, read from /proc (psutil is not a dependency), and
the machine's load before a run (this 2-core machine is noisy: note how busy it was)."""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from pathlib import Path

# --- CPU split --------------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str, float, float]]:
    """pid -> (ppid, command name, own CPU seconds, reaped children's CPU seconds) for every
    process we may read. The children's part matters for PostgreSQL: it forks a backend per
    connection, and a client that reconnects often (a Celery worker does, with the app's
    settings: Celery's Django fix-up closes the connection around every task) has backends
    that live and die between two readings; their CPU lands in the postmaster's."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        comm = raw[raw.index("(") + 1: raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        own, children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        table[int(entry.name)] = (int(fields[1]), comm, own / tick, children / tick)
    return table


def children_of(pid: int) -> list[int]:
    return [child for child, (ppid, *_) in _processes().items() if ppid == pid]


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def machine_busy_percent(seconds: float = 1.0) -> float:
    """How busy the machine is right now (of all cores). Taken before a benchmark starts: on
    a shared machine anything else running (a test suite...) skews every figure."""
    before = _machine_busy_seconds()
    time.sleep(seconds)
    after = _machine_busy_seconds()
    return round(100 * (after[0] - before[0]) / max(1e-9, after[1] - before[1]), 1)


def check_quiet_machine() -> float:
    busy = machine_busy_percent()
    if busy > 15:
        print(f"warning: the machine is already {busy}% busy before the benchmark starts; "
              "the figures will be low (see cpu.by_role.other)", file=sys.stderr, flush=True)
    return busy


class CpuSplit:
    """CPU used by each part of the benchmark between start() and stop(), by process tree:
    `roots` maps a role to the pids whose descendants belong to it; PostgreSQL (the server and
    the backends of `database`) and Redis are found by name; this script is "bench client".
    "other" is the rest of the machine's busy time: other processes (someone else's test
    suite, another database's backends), short-lived processes, interrupts."""

    def __init__(self, roots: dict[str, list[int]], database: str):
        self.roots = {pid: role for role, pids in roots.items() for pid in pids if pid}
        self.roots[os.getpid()] = "bench client"
        self.database = database

    def _role(self, pid, table) -> str | None:
        """The role of a process of ours; None for anyone else's."""
        ppid, comm, *_ = table[pid]
        if comm == "postgres":
            # A backend's title names its database and client; the postmaster's and its
            # helpers' name neither (shared: counted as ours).
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                title = ""
            backend = "(" in title or "[local]" in title
            return "postgresql" if f" {self.database} " in title or not backend else None
        if comm.startswith("redis-server"):
            return "redis"
        for _ in range(64):  # up the parent chain to a root
            if pid in self.roots:
                return self.roots[pid]
            pid = table.get(pid, (0,))[0]
            if not pid:
                break
        return None

    def start(self) -> None:
        self.before = _processes()
        self.machine_before = _machine_busy_seconds()
        self.started = time.perf_counter()

    def stop(self, units: int) -> dict:
        """CPU per role in % of one core, and ms of CPU per unit of work (request, refund)."""
        seconds = time.perf_counter() - self.started
        after = _processes()
        used, others = collections.Counter(), collections.Counter()
        for pid, (_, comm, own, children) in after.items():
            previous = self.before.get(pid)
            if previous is None or previous[1] != comm:  # new, or exec'd meanwhile
                previous = (0, comm, 0.0, 0.0)
            role = self._role(pid, after)
            if role:
                used[role] += own - previous[2] + children - previous[3]
            else:
                others[comm] += own - previous[2]
        busy = _machine_busy_seconds()
        machine = (busy[0] - self.machine_before[0]) / max(1e-9, busy[1] - self.machine_before[1])
        cores = os.cpu_count()
        used["other"] = max(0.0, machine * cores * seconds - sum(used.values()))
        return {
            # Of all cores: 100 = every core saturated. by_role's cpu_percent is of one core.
            "machine_busy_percent": round(100 * machine, 1),
            "cores": cores,
            "by_role": {
                role: {"cpu_percent": round(100 * cpu / seconds, 1),
                       "cpu_ms_per_unit": round(1000 * cpu / max(1, units), 3)}
                for role, cpu in used.most_common() if cpu > 0
            },
            # Who "other" is, when it is large: on a shared machine, often someone else's work.
            "other_top": {comm: round(100 * cpu / seconds, 1) for comm, cpu in others.most_common(3) if cpu > 0},
        }


def rss_kib(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pids: list[int]) -> int:
    """Resident memory of these processes and their children (prefork's pool), together."""
    return sum(rss_kib(pid) + sum(rss_kib(child) for child in children_of(pid)) for pid in pids)


class Peak(threading.Thread):
    """Samples `measure()` every `every` seconds until stop(); keeps the largest value."""

    def __init__(self, measure, every: float = 0.5):
        super().__init__(daemon=True)
        self.measure, self.every, self.peak, self.halt = measure, every, 0, threading.Event()

    def run(self):
        while not self.halt.wait(self.every):
            self.peak = max(self.peak, self.measure())

    def stop(self):
        self.halt.set()
        self.join()
        return self.peak
