"""How fast this machine is right now, in units the benchmarks' ratios depend on.

A shared VM's speed swings from hour to hour: on 2026-12-04 the same `make bench` took 11.8 min
at 12:27 and 19.7 min at 20:47, and `cp` drained WAL at 65 seg/s and then 25. ``bench_all``
records these figures before the first part and after the last, so that a missed target can be
told apart from a slow evening. Each figure is the best of ``repeat`` tries: the machine's
capacity, not its noise.
"""

from __future__ import annotations

import hashlib
import timeit
from collections.abc import Callable

SEGMENT = 16 * 1024 * 1024  # one WAL segment; about the dump's zstd block work per 16 MiB


def sample_text(size: int = SEGMENT) -> bytes:
    """``size`` bytes of md5 hex text, like ``sandbox.dataset.load_bulk``'s (zstd ~2.7x)."""
    chunks, total, n = [], 0, 0
    while total < size:
        line = f"{n:09d},{hashlib.md5(str(n).encode()).hexdigest()},{n % 997}.{n % 89:02d}\n"
        chunks.append(line.encode())
        total, n = total + len(chunks[-1]), n + 1
    return b"".join(chunks)[:size]


def _best_ms(work: Callable[[], object], repeat: int) -> float:
    return round(1000 * min(timeit.repeat(work, number=1, repeat=repeat)), 1)


def _python_loop() -> None:
    total = 0
    for i in range(1_000_000):
        total += i


def machine_speed(repeat: int = 3) -> dict[str, float]:
    """Milliseconds of a pure-Python loop (1 M additions), of zstd level 1 and -5 and of
    sha256 over 16 MiB of md5 text, and the level-1 compression ratio."""
    import zstandard

    data = sample_text()
    fast, default = (zstandard.ZstdCompressor(level=level) for level in (-5, 1))
    return {"python_loop_ms": _best_ms(_python_loop, repeat),
            "zstd1_16mib_ms": _best_ms(lambda: default.compress(data), repeat),
            "zstd_fast5_16mib_ms": _best_ms(lambda: fast.compress(data), repeat),
            "sha256_16mib_ms": _best_ms(lambda: hashlib.sha256(data).digest(), repeat),
            "zstd1_ratio": round(len(data) / len(default.compress(data)), 2)}


def describe(speeds: dict[str, dict[str, float]]) -> str:
    """One line: each figure at the start and at the end of the run."""
    def both(key: str) -> str:
        return "/".join(f"{speeds[when][key]:g}" for when in ("start", "end") if when in speeds)

    return (f"machine speed (start/end, best of 3): Python loop of 1 M additions "
            f"{both('python_loop_ms')} ms, 16 MiB of md5 text: zstd-1 {both('zstd1_16mib_ms')}"
            f" ms, zstd --fast=5 {both('zstd_fast5_16mib_ms')} ms, sha256 "
            f"{both('sha256_16mib_ms')} ms")
