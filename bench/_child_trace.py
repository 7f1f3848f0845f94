"""Where one benchmarked backup's time and CPU go, measured inside ``_backup_child.py``.

- :func:`record_spans` installs an in-memory OpenTelemetry tracer provider, so the spans the
  engine opens around each step of a backup (``backup.preflight``, ``backup.dump`` ...,
  core/tracing.py) come back with their durations.
- :class:`ThreadCpu` samples ``/proc/self/task/*/stat`` every 20 ms and splits this process's
  CPU into Python threads (main, the stream threads, the row counter) and native threads
  (zstd's workers: libzstd starts them, Python does not know them).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def record_spans() -> Any:
    """An in-memory span exporter behind a fresh tracer provider (the global one)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def span_seconds(exporter: Any) -> dict[str, float]:
    """Seconds per span name (summed if a name repeats), in start order."""
    found: dict[str, float] = {}
    for span in sorted(exporter.get_finished_spans(), key=lambda s: s.start_time):
        found[span.name] = found.get(span.name, 0.0) + (span.end_time - span.start_time) / 1e9
    return {name: round(seconds, 4) for name, seconds in found.items()}


class ThreadCpu(threading.Thread):
    """CPU-seconds of this process's threads, split into Python and native ones."""

    def __init__(self, every: float = 0.02) -> None:
        super().__init__(daemon=True, name="thread-cpu")
        self._every, self._done = every, threading.Event()
        self._cpu: dict[int, float] = {}
        self._python: set[int] = set()

    def run(self) -> None:
        while not self._done.wait(self._every):
            self._sample()

    def _sample(self) -> None:
        self._python.update(t.native_id for t in threading.enumerate() if t.native_id)
        for task in Path("/proc/self/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            rest = stat[stat.rfind(")") + 2:].split()
            self._cpu[int(task.name)] = (int(rest[11]) + int(rest[12])) / CLK_TCK

    def finish(self) -> dict[str, float]:
        """Stop sampling; CPU-seconds of the Python and the native threads (a thread that
        ended loses at most its last 20 ms)."""
        self._done.set()
        self.join()
        self._sample()
        mine = self.native_id
        python = sum(s for tid, s in self._cpu.items() if tid in self._python and tid != mine)
        native = sum(s for tid, s in self._cpu.items() if tid not in self._python)
        return {"py_threads_s": round(python, 3), "native_threads_s": round(native, 3),
                "sampler_s": round(self._cpu.get(mine or 0, 0.0), 3)}
