"""A small disk that can be filled for real: a tmpfs mount, or RLIMIT_FSIZE where not root."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path


class SmallDisk:
    """A 20 MiB tmpfs at ``root`` (mounted as root), or a plain folder plus a file-size limit
    for child processes when mounting is not allowed.

    :param root: an empty folder to mount on
    :param size_mb: size of the tmpfs
    """

    def __init__(self, root: Path, size_mb: int = 20) -> None:
        self.root = root
        self.size = size_mb * 1024 * 1024
        self.limit: int | None = None  # RLIMIT_FSIZE for children, when not a tmpfs
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                               str(root)], capture_output=True, text=True, check=False)
        self.mounted = done.returncode == 0
        self.kind = "tmpfs" if self.mounted else "RLIMIT_FSIZE"

    def fill(self, leave: int = 0) -> None:
        """Fill the disk until ``leave`` bytes are free (with a limit: cap file sizes)."""
        if not self.mounted:
            self.limit = max(leave, 1)
            return
        with open(self.root / "filler", "ab") as filler:
            chunk = b"\0" * (1024 * 1024)
            while (free := os.statvfs(self.root).f_bavail * os.statvfs(self.root).f_frsize) \
                    > leave:
                try:
                    filler.write(chunk[: max(4096, min(len(chunk), free - leave))])
                    filler.flush()
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break

    def free_up(self) -> None:
        (self.root / "filler").unlink(missing_ok=True)
        self.limit = None

    def preexec(self) -> Callable[[], None] | None:
        """For a child process: the file-size limit (SIGXFSZ ignored: writes fail EFBIG)."""
        limit = self.limit
        if limit is None:
            return None

        def apply() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        return apply

    def files(self) -> list[str]:
        """Every file on the disk but the filler, relative to its root."""
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                      if p.is_file() and p.name != "filler")

    def folders(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                      if p.is_dir())

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=False)
            self.mounted = False
