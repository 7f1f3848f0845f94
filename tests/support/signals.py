"""A real signal delivered to this process in the middle of a backup, from its first upload."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from amprenta_backup.core.storage.base import ObjectWriter, Storage


class Terminated(BaseException):
    """What a task runner raises on SIGTERM (not an Exception, like Airflow's own)."""


@contextmanager
def sigterm_raises_terminated() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` and SIGINT raises
    KeyboardInterrupt in the main thread (a shell that starts pytest in the background
    ignores SIGINT for it, so Python's own handler is not there to count on)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


class _SignallingWriter:
    def __init__(self, writer: ObjectWriter, signum: int) -> None:
        self._writer = writer
        self._signum = signum
        self.sent = False

    def write(self, data: bytes) -> int:
        taken = self._writer.write(data)
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), self._signum)  # the handler runs in the main thread
        return taken

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class SignalOnFirstWrite:
    """Real storage; the first bytes written under a key ending ``suffix`` send ``signum``
    to this process, so the backup is interrupted for real while its tool is streaming.

    :param storage: the storage that keeps the bytes
    :param suffix: end of the key whose upload triggers the signal
    :param signum: e.g. ``signal.SIGINT`` (KeyboardInterrupt) or ``signal.SIGTERM``
    """

    def __init__(self, storage: Storage, suffix: str, signum: int) -> None:
        self._storage = storage
        self._suffix = suffix
        self._signum = signum

    @contextmanager
    def open_writer(self, key: str, expected_size: int | None = None) -> Iterator[Any]:
        with self._storage.open_writer(key, expected_size) as writer:
            yield (_SignallingWriter(writer, self._signum) if key.endswith(self._suffix)
                   else writer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)
