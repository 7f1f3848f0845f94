"""An export to import: the ZIP itself or the folder it was unzipped into, verified whole
before anything reads its rows."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import IO

from amprenta_backup.core.errors import ChecksumMismatch, PreconditionError
from amprenta_backup.core.export.manifest import (
    MANIFEST_MEMBER,
    ExportManifest,
    Member,
    parse_export_manifest,
)

_CHUNK = 1 << 20
_MANIFEST_LIMIT = 256 << 20


class ExportArchive:
    """A project export on this machine: a ``.zip`` file or an unzipped folder.

    :param path: the ZIP or the folder holding ``manifest.json``
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            if not (self.path / MANIFEST_MEMBER).is_file():
                raise PreconditionError(f"{self.path} holds no {MANIFEST_MEMBER}: point "
                                        "--export-dir at the folder the export ZIP was "
                                        "unzipped into, or at the ZIP itself")
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
        else:
            raise PreconditionError(f"{self.path} is neither an export ZIP nor a folder "
                                    "holding an unzipped export")
        self.manifest: ExportManifest = parse_export_manifest(self._manifest_bytes(),
                                                              str(self.path))

    def _manifest_bytes(self) -> bytes:
        with self.open(MANIFEST_MEMBER) as handle:
            data = handle.read(_MANIFEST_LIMIT + 1)
        if len(data) > _MANIFEST_LIMIT:
            raise PreconditionError(f"{self.path}: {MANIFEST_MEMBER} is over 256 MiB")
        return data

    def open(self, name: str) -> IO[bytes]:
        """One member's bytes, streamed."""
        try:
            if self._zip is not None:
                return self._zip.open(name)
            return (self.path / name).open("rb")
        except (KeyError, FileNotFoundError):
            raise ChecksumMismatch(f"{self.path}: {name} is missing; the export is incomplete "
                                   "and was not imported") from None

    def names(self) -> set[str]:
        """Every file in the archive or folder (``/``-separated, relative)."""
        if self._zip is not None:
            return {n for n in self._zip.namelist() if not n.endswith("/")}
        return {p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()}

    def verify(self) -> int:
        """Check the sha256 and size of every member the manifest lists, and that nothing else
        is there; ChecksumMismatch naming the first that differs. Returns the bytes read."""
        members = self.manifest.members()
        extra = sorted(self.names() - {m.path for m in members} - {MANIFEST_MEMBER})
        if extra:
            raise ChecksumMismatch(f"{self.path}: {extra[0]} is not listed in the manifest; "
                                   "the export was altered and was not imported")
        return sum(self._check(member) for member in members)

    def _check(self, member: Member) -> int:
        digest, size = hashlib.sha256(), 0
        with self.open(member.path) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        if digest.hexdigest() != member.sha256 or size != member.bytes:
            raise ChecksumMismatch(
                f"{self.path}: {member.path} has sha256 {digest.hexdigest()} and {size} bytes, "
                f"the manifest says {member.sha256} and {member.bytes}; the export was altered "
                "or damaged and was not imported")
        return size

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
