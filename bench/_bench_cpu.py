"""CPU-seconds readers shared by the benchmarks: the whole machine and one process (tree)."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """Busy core-seconds of the whole machine since boot (``/proc/stat``: all but idle and
    iowait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def proc_cpu(pid: int, with_children: bool) -> float:
    """utime+stime (and cutime+cstime: the children it has reaped) of ``pid`` in seconds,
    from /proc/PID/stat; 0.0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    rest = stat[stat.rfind(")") + 2:].split()
    used = int(rest[11]) + int(rest[12])
    if with_children:
        used += int(rest[13]) + int(rest[14])
    return used / CLK_TCK
