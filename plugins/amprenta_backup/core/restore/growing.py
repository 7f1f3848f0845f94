"""A temporary file one thread writes while client tools read it from the start, each at its
own pace: how a parallel restore starts before the download has finished."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from amprenta_backup.core.constants import READ_CHUNK
from amprenta_backup.core.readback import ToolInput


class DownloadStopped(Exception):
    """The restore failed and stopped the download into the growing file."""


class GrowingFile:
    """``path``, written once through :meth:`write` and ended by :meth:`close`; readers wait
    for bytes not written yet instead of seeing an early end.

    :param path: a new file (refused if it exists)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out = open(path, "xb", buffering=0)  # noqa: SIM115 - closed by close()
        self._grew = threading.Condition()
        self._size = 0
        self._ended = False
        self.failed = False
        self._stopped = False

    def write(self, data: bytes) -> None:
        if self._stopped:
            raise DownloadStopped(f"the restore stopped writing {self.path}")
        view = memoryview(data)
        while view:
            view = view[self._out.write(view) or 0:]
        with self._grew:
            self._size += len(data)
            self._grew.notify_all()

    def close(self, failed: bool = False) -> None:
        """No more bytes will come; with ``failed`` readers stop short (the download failed)."""
        self._out.close()
        with self._grew:
            self._ended, self.failed = True, failed
            self._grew.notify_all()

    def abort(self) -> None:
        """Make the next :meth:`write` raise DownloadStopped: nobody will read on."""
        self._stopped = True

    def wait(self, offset: int) -> bool:
        """Wait until there are bytes beyond ``offset``; False once there will be none."""
        with self._grew:
            while self._size <= offset and not self._ended:
                self._grew.wait(0.5)
            return self._size > offset and not self.failed

    def __enter__(self) -> GrowingFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._ended:
            self.close(failed=True)


class Follower:
    """A client tool fed the growing file from its first byte, by a thread of its own, until
    the file ends or the tool stops reading. The bytes go from the page cache to the tool's
    stdin by ``sendfile`` where the system can (Linux: 0.02 CPU-s per 176 MB, where reading
    and writing them in Python took 0.05); elsewhere (macOS) through Python.

    :param source: the file
    :param argv: the command (no password)
    :param env: its environment
    :param capture: keep the tool's stdout (``pg_restore --list``)
    """

    def __init__(self, source: GrowingFile, argv: Sequence[str], env: dict[str, str],
                 capture: bool = False) -> None:
        self._source = source
        self.tool = ToolInput(argv, env, stdout=subprocess.PIPE if capture else None)
        self._thread = threading.Thread(target=self._feed, daemon=True,
                                        name=f"feed-{self.tool.name}")
        self._thread.start()

    def _feed(self) -> None:
        offset = 0
        try:
            with open(self._source.path, "rb", buffering=0) as reader:
                while self._source.wait(offset):
                    sent = self.tool.send(reader.fileno(), offset, READ_CHUNK)
                    if not sent:  # the tool stopped reading
                        break
                    offset += sent
        finally:
            self.tool.close_input()  # the end of the file (or of the download) is the tool's

    def finish(self) -> tuple[int, str, bytes]:
        """Wait for the tool: exit code, the end of its stderr, its stdout if captured."""
        output = self.tool.read_stdout()
        self._thread.join()
        code, stderr = self.tool.finish()
        return code, stderr, output

    def kill(self) -> None:
        self.tool.kill()
        self._thread.join(timeout=5)
