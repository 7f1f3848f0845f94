"""Progress on stderr for long transfers: a rich progress bar at a terminal (bytes, rate,
elapsed time), and a plain line every few seconds elsewhere when ``--progress`` asks for it
(under ``--json`` a ``progress`` JSON line with the same figures in bytes and seconds)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from amprenta_backup.cli import jsonlines
from amprenta_backup.core.models import human_bytes

if TYPE_CHECKING:  # rich is imported only for a bar at a terminal (cli.bars)
    from rich.progress import Progress as RichProgress

    from amprenta_backup.cli.bars import Bar

LOG_SECONDS = 5.0  # not a terminal (--progress into a log): a plain line now and then


class Lines:
    """Plain progress lines for one transfer, at most one every :data:`LOG_SECONDS`.

    :param label: what is being transferred (``verify``, ``backup of pg_main`` ...)
    :param total: bytes expected (0: unknown)
    :param stream: where to write (stderr)
    :param as_json: ``progress`` JSON lines instead of text (``--json``)
    """

    def __init__(self, label: str, total: int, stream: TextIO, as_json: bool = False) -> None:
        self.label, self.total, self.stream, self.as_json = label, total, stream, as_json
        self.started = self._written = time.monotonic()
        self.done = self.stored = 0

    def __call__(self, done: int, stored: int | None = None) -> None:
        self.done, self.stored = done, self.stored if stored is None else stored
        if time.monotonic() - self._written >= LOG_SECONDS:
            self.write()

    def write(self) -> None:
        self._written = time.monotonic()
        seconds = max(self._written - self.started, 1e-6)
        self.stream.write(self.json(seconds) if self.as_json else self.text(seconds))
        self.stream.flush()

    def text(self, seconds: float) -> str:
        of = f" of {human_bytes(self.total)} ({100 * self.done / self.total:.0f}%)" \
            if self.total else " read"
        stored = f", {human_bytes(self.stored)} stored" if self.stored else ""
        return (f"{self.label}: {human_bytes(self.done)}{of}{stored}, "
                f"{human_bytes(int(self.done / seconds))}/s, {seconds:.0f} s\n")

    def json(self, seconds: float) -> str:
        return jsonlines.line("progress", {
            "label": self.label, "read_bytes": self.done, "total_bytes": self.total or None,
            "stored_bytes": self.stored or None, "bytes_per_second": int(self.done / seconds),
            "elapsed_seconds": round(seconds, 1)})


class Progress:
    """Hands out one progress callback per phase; does nothing when disabled.

    :param enabled: show progress at all (on a terminal, or with ``--progress``)
    :param stream: where to write; stderr by default
    :param as_json: JSON lines off a terminal (``--json``)
    """

    def __init__(self, enabled: bool, stream: TextIO | None = None,
                 as_json: bool = False) -> None:
        self.enabled, self.as_json = enabled, as_json
        self.stream = stream or sys.stderr
        self._lines: Lines | None = None
        self._display: RichProgress | None = None

    @classmethod
    def for_terminal(cls, forced: bool, as_json: bool) -> Progress:
        return cls(forced or sys.stderr.isatty(), as_json=as_json)

    def phase(self, label: str, total: int = 0) -> Bar | Lines | None:
        """A callback ``(done[, stored])`` for ``label``'s transfer of ``total`` bytes (0:
        unknown), or None when disabled."""
        if not self.enabled:
            return None
        if not self.stream.isatty():
            self._finish_lines()
            self._lines = Lines(label, total, self.stream, self.as_json)
            return self._lines
        from amprenta_backup.cli.bars import Bar, start_display

        if self._display is None:
            self._display = start_display(self.stream)
        return Bar(self._display, label, total)

    def _finish_lines(self) -> None:
        if self._lines is not None:
            self._lines.write()  # the final figures
            self._lines = None

    def close(self) -> None:
        self._finish_lines()
        if self._display is not None:
            self._display.stop()
            self._display = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
