"""Progress on stderr for long transfers: bytes done, percent and throughput."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from amprenta_backup.cli.output import human_bytes

REDRAW_SECONDS = 0.2  # on a terminal: one line redrawn in place
LOG_SECONDS = 5.0  # elsewhere (--progress into a log): a plain line now and then


class ProgressBar:
    """Bytes done of a total, percent and throughput, for one transfer.

    :param label: what is being transferred (``verify``, ``download`` ...)
    :param total: bytes expected
    :param stream: where to write (stderr)
    :param terminal: redraw one line in place; otherwise write a line every few seconds
    """

    def __init__(self, label: str, total: int, stream: TextIO, terminal: bool) -> None:
        self.label = label
        self.total = total
        self.stream = stream
        self.terminal = terminal
        self.started = self.updated = time.monotonic()
        self.done = 0
        self._written = self.started

    def __call__(self, done: int) -> None:
        self.done, self.updated = done, time.monotonic()
        if self.updated - self._written >= (REDRAW_SECONDS if self.terminal else LOG_SECONDS):
            self._write()

    def line(self) -> str:
        seconds = max(self.updated - self.started, 1e-6)
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        return (f"{self.label}: {human_bytes(self.done)} of {human_bytes(self.total)}{percent}, "
                f"{human_bytes(int(self.done / seconds))}/s")

    def _write(self, final: bool = False) -> None:
        self._written = time.monotonic()
        if self.terminal:
            self.stream.write("\r" + self.line() + "\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Write the final figures (throughput up to the last byte)."""
        self._write(final=True)


class Progress:
    """Hands out one bar per phase, closing the previous one; does nothing when disabled.

    :param enabled: write at all (the CLI enables it on a terminal or with ``--progress``)
    :param stream: where to write; stderr by default
    """

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._bar: ProgressBar | None = None

    @classmethod
    def for_terminal(cls, forced: bool) -> Progress:
        return cls(forced or sys.stderr.isatty())

    def phase(self, label: str, total: int) -> ProgressBar | None:
        """A callback for ``label``'s transfer of ``total`` bytes, or None when disabled."""
        self.close()
        if not self.enabled:
            return None
        self._bar = ProgressBar(label, total, self.stream, self.stream.isatty())
        return self._bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
