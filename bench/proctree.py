"""CPU time and memory of a process tree, for the capacity benchmark's cost accounting.

A tree is a root pid and all its descendants, found again at every reading, so job processes
that start later are included. CPU counts each live member's own time plus the time of its
children that have exited and been waited for (`children_user`/`children_system`): a job
process that ends between two readings is still counted, in full, in its parent (livekit's
forkserver waits for its job processes). Memory is PSS (proportional set size: a page shared by
k processes counts 1/k in each), read from `/proc/<pid>/smaps_rollup` through psutil; it is the
costly part of a reading, so only the trees whose memory matters ask for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil

from .periodic import Periodic

__all__ = ["TreeMeter", "TreeReading", "TreeSampler", "role_of"]


@dataclass(frozen=True, slots=True)
class TreeReading:
    at: float  # time.monotonic()
    cpu_s: float
    pss: int  # bytes; 0 when memory was not read
    processes: int
    cpu_by_role: dict[str, float] = field(default_factory=dict)


def role_of(proc: psutil.Process, root_pid: int) -> str:
    """What a member of an agent worker's tree is: by its parent and command line (a job
    process is forked from the forkserver, so it shows the forkserver's command line)."""
    if proc.pid == root_pid:
        return "worker"
    try:
        cmd = " ".join(proc.cmdline())
        parent = proc.ppid()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "other"
    if "resource_tracker" in cmd:
        return "resource_tracker"
    if "forkserver" in cmd:
        return "forkserver" if parent == root_pid else "job_process"
    if "multiprocessing" in cmd or "spawn_main" in cmd:
        return "job_or_inference_process"
    return "other"


class TreeMeter:
    """Readings of one process tree (root `pid`); `memory=False` skips PSS, `tree=False` reads
    the root alone (finding descendants scans every process of the machine: a cost paid by the
    benchmark's own process, which is measured too)."""

    def __init__(self, pid: int, name: str, *, memory: bool = True, tree: bool = True) -> None:
        self.root = psutil.Process(pid)
        self.name = name
        self.memory = memory
        self.tree = tree
        self._roles: dict[int, str] = {}

    def members(self) -> list[psutil.Process]:
        if not self.tree:
            return [self.root]
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def read(self) -> TreeReading:
        cpu = 0.0
        pss = 0
        alive = 0
        by_role: dict[str, float] = {}
        for proc in self.members():
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    own = t.user + t.system
                    reaped = t.children_user + t.children_system
                    if self.memory:
                        mem = proc.memory_full_info()
                        pss += getattr(mem, "pss", mem.rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            alive += 1
            cpu += own + reaped
            role = self._roles.get(proc.pid)
            if role is None:
                role = self._roles[proc.pid] = role_of(proc, self.root.pid)
            by_role[role] = by_role.get(role, 0.0) + own
            if reaped:
                by_role["exited_children"] = by_role.get("exited_children", 0.0) + reaped
        return TreeReading(time.monotonic(), cpu, pss, alive, by_role)

    def count(self, role: str) -> int:
        """How many members have `role` now (e.g. `job_process`)."""
        return sum(1 for proc in self.members() if role_of(proc, self.root.pid) == role)

    def describe(self) -> list[dict[str, object]]:
        """The members now: pid, role and command (for the result file)."""
        out: list[dict[str, object]] = []
        for proc in self.members():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                out.append(
                    {
                        "pid": proc.pid,
                        "role": role_of(proc, self.root.pid),
                        "cmd": " ".join(proc.cmdline())[:160],
                    }
                )
        return out


class TreeSampler(Periodic):
    """Reads several trees every `interval` seconds, off the event loop, while running."""

    def __init__(self, meters: Sequence[TreeMeter], interval: float = 2.0) -> None:
        super().__init__(interval)
        self.meters = list(meters)
        self.readings: dict[str, list[TreeReading]] = {m.name: [] for m in self.meters}

    def read_all(self) -> dict[str, TreeReading]:
        now = {m.name: m.read() for m in self.meters}
        for name, reading in now.items():
            self.readings[name].append(reading)
        return now

    async def snapshot(self) -> dict[str, TreeReading]:
        return await asyncio.to_thread(self.read_all)

    def tick(self) -> dict[str, TreeReading]:
        return self.read_all()

    def window(self, name: str, start: float, end: float) -> list[TreeReading]:
        return [r for r in self.readings[name] if start <= r.at <= end]
