"""Wake the archiver the moment PostgreSQL marks a segment ``.ready`` or a push finishes.

PostgreSQL runs ``archive_command`` within a millisecond of creating ``NAME.ready``. An
archiver that looked at ``archive_status`` every 50 ms was nearly always later than that, so
the shell line found neither ``ok/NAME`` nor a held ``busy/NAME`` and started
``amprenta-wal push`` (a Python start, 20-40 ms of CPU) for almost every segment of a steady
load. Here the archiver sleeps on an inotify descriptor of ``archive_status`` and on a pipe
that finished pushes write to, and takes ``busy/NAME`` before the shell gets there. Where
inotify is missing (not Linux, no libc symbol, the watch limit reached) only the pipe and
the timeout wake it, as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
from pathlib import Path

log = logging.getLogger(__name__)

IN_CREATE = 0x100
IN_MOVED_TO = 0x80
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


def _inotify(folder: Path) -> int | None:
    """A non-blocking inotify descriptor watching files created in ``folder``, or None."""
    import ctypes  # here: `push` imports this module, only the archiver watches

    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own libc (no ldconfig run)
        fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(folder), IN_CREATE | IN_MOVED_TO) < 0:
        log.info("cannot watch %s (%s); looking at it every poll instead", folder,
                 os.strerror(ctypes.get_errno()))
        os.close(fd)
        return None
    return fd


class Wakeup:
    """What the archiver's loop sleeps on between two looks at ``archive_status``.

    :param folder: the ``archive_status`` folder to watch
    """

    def __init__(self, folder: Path) -> None:
        self._watch = _inotify(folder)
        self._read, self._write = os.pipe()  # os.pipe2 is Linux-only; inheritable is off
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)

    @property
    def watching(self) -> bool:
        """Whether new files in the folder wake :meth:`wait` (inotify works here)."""
        return self._watch is not None

    def ring(self, *_: object) -> None:
        """Wake :meth:`wait` (a future's done callback: called from a worker thread)."""
        with contextlib.suppress(BlockingIOError):  # a full pipe is awake already
            os.write(self._write, b"x")

    def wait(self, seconds: float) -> None:
        """Sleep until a file appears in the folder, :meth:`ring` is called, or ``seconds``."""
        fds = [self._read] + ([self._watch] if self._watch is not None else [])
        ready, _, _ = select.select(fds, [], [], seconds)
        for fd in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(fd, 4096):
                    pass

    def close(self) -> None:
        for fd in (self._read, self._write, self._watch):
            if fd is not None:
                os.close(fd)
