"""Process groups read from /proc: members, memory (RSS/PSS) and a TERM-then-KILL stop."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class GroupMemory:
    """Memory of the live processes of one process group, summed.

    :param processes: how many live processes the group has
    :param rss_bytes: sum of resident set sizes (shared pages counted in every process)
    :param pss_bytes: sum of proportional set sizes (shared pages split between sharers)
    """

    processes: int
    rss_bytes: int
    pss_bytes: int

    def __add__(self, other: GroupMemory) -> GroupMemory:
        return GroupMemory(self.processes + other.processes, self.rss_bytes + other.rss_bytes,
                           self.pss_bytes + other.pss_bytes)

    def describe(self) -> str:
        return (f"{self.processes} processes, RSS {self.rss_bytes / 2**20:.0f} MiB, "
                f"PSS {self.pss_bytes / 2**20:.0f} MiB")


def children(pid: int, name: str) -> list[int]:
    """PIDs of ``pid``'s children called ``name``."""
    found = []
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1]
        if comm == name and int(rest.split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> list[int]:
    """PIDs of every live process below ``pid`` (children, their children ...), whatever
    their process group."""
    parents: dict[int, int] = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        below = [child for child, parent in parents.items() if parent in frontier]
        found.extend(below)
        frontier = below
    return found


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and everything below it, as a host that dies would; returns the pids
    that were below it."""
    below = descendants(pid)
    for victim in (pid, *below, *descendants(pid)):
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return below


def members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes whose process group is ``pgid``."""
    found: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may hold spaces or parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def memory(pgid: int) -> GroupMemory:
    """RSS and PSS of every live process in the group, from ``/proc/<pid>/smaps_rollup``."""
    total = GroupMemory(0, 0, 0)
    for pid in members(pgid):
        try:
            text = (PROC / str(pid) / "smaps_rollup").read_text()
        except OSError:
            continue  # exited meanwhile
        kib = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()
               if line.startswith(("Rss:", "Pss:"))}
        total += GroupMemory(1, kib.get("Rss", 0) * 1024, kib.get("Pss", 0) * 1024)
    return total


def _signal(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def terminate(pgids: list[int], grace: float = 15.0,
              reap: Callable[[], object] | None = None) -> list[int]:
    """SIGTERM every group, wait up to ``grace`` seconds for all members to exit, then SIGKILL
    the groups that still have members. Returns the groups that needed SIGKILL.

    :param reap: a callable run while waiting (e.g. to ``wait()`` on our direct children, so
        they do not linger as zombies)
    """
    for pgid in pgids:
        _signal(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(pgids)
    while alive and time.monotonic() < deadline:
        if reap is not None:
            reap()
        alive = [pgid for pgid in alive if members(pgid)]
        if alive:
            time.sleep(0.2)
    for pgid in alive:
        _signal(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(members(pgid) for pgid in alive) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive
