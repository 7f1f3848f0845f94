"""Count the bytes of the files in a tar stream as it passes, without keeping any of it.

A base backup records ``raw_bytes`` as the bytes of the data directory's files, the sum of
the sizes PostgreSQL's ``backup_manifest`` lists (WAL under ``pg_wal/`` is not listed there):
that needs no decompression while the backup is taken. Verification decompresses the tar
anyway and walks its headers with :class:`TarTally` to check the same figure.
"""

from __future__ import annotations

BLOCK = 512
_WAL_DIR = "pg_wal/"
_REGULAR = (b"0", b"\0", b"7")


def _octal(field: bytes) -> int:
    """A tar number: octal text, or base-256 (GNU) when the high bit of the first byte is set."""
    if field and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "replace")


class TarTally:
    """A sink for the bytes of a tar archive: counts the members and the bytes of the regular
    files outside ``pg_wal/``; :attr:`error` says what was malformed, if anything."""

    def __init__(self) -> None:
        self.file_bytes = 0
        self.members = 0
        self.error: str | None = None
        self.ended = False
        self._header = b""
        self._skip = 0

    def __call__(self, data: bytes) -> None:
        view, at = memoryview(data), 0
        while at < len(view) and not self.ended and self.error is None:
            if self._skip:
                step = min(self._skip, len(view) - at)
                self._skip -= step
                at += step
                continue
            need = BLOCK - len(self._header)
            self._header += bytes(view[at:at + need])
            at += need
            if len(self._header) == BLOCK:
                self._member(self._header)
                self._header = b""

    def _member(self, header: bytes) -> None:
        if header == bytes(BLOCK):
            self.ended = True  # the end-of-archive blocks; anything after is padding
            return
        try:
            size = _octal(header[124:136])
        except ValueError:
            self.error = f"tar header {self.members + 1} has no valid size"
            return
        self.members += 1
        name = _text(header[:100])
        if header[257:262] == b"ustar" and header[345]:
            name = f"{_text(header[345:500])}/{name}"
        name = name.removeprefix("./")
        if header[156:157] in _REGULAR and not name.startswith(_WAL_DIR):
            self.file_bytes += size
        self._skip = (size + BLOCK - 1) // BLOCK * BLOCK

    def problem(self) -> str | None:
        """Why the archive is not whole: malformed, or ended inside a member."""
        if self.error:
            return self.error
        if self._skip or self._header:
            return "the tar archive ends inside a member"
        if not self.ended:  # cut at a member's end: WAL files last in base.tar would go unseen
            return "the tar archive has no end-of-archive marker (cut short?)"
        return None


def manifest_file_bytes(pg_manifest: dict[str, object]) -> int:
    """The bytes of the files a ``backup_manifest`` lists."""
    files = pg_manifest.get("Files")
    if not isinstance(files, list):
        raise ValueError("backup_manifest has no Files list")
    return sum(int(entry["Size"]) for entry in files)
