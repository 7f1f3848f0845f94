"""The per-segment fast path of ``amprenta-wal push``: find the segment's marker, or wait for it.

PostgreSQL runs ``archive_command`` once per segment, one after the other, so everything this
module imports is paid once per segment. It imports only ``os``, ``time`` and ``fcntl`` (no
``re``, ``pathlib``, ``hashlib``, click, pydantic, boto3 or zstandard; not even
:mod:`amprenta_backup.core.errors`): about 15 ms of CPU less than ``pathlib`` + ``re`` +
``hashlib`` alone under load. Anything unusual (bad settings, a name that is not a plain
segment or history file, no running archiver, an error marker) answers "not stored": the full
path of ``push`` then checks properly and reports it. It never answers "stored" unless the
archiver wrote ``ok/NAME``, which it does only after the segment and its checksum are stored.
"""

from __future__ import annotations

import fcntl
import os
import time

TYPE_CHECKING = False  # typing and collections.abc cost an import each; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

HEX = frozenset("0123456789ABCDEF")
POLL_SECONDS = 0.005          # look for the marker this often while the archiver works
CHECK_EVERY = 20              # ... and every 20th look, that the archiver still runs
TARGET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def plain_wal_name(name: str) -> bool:
    """A segment (24 hex digits) or a timeline history file (``XXXXXXXX.history``)."""
    if name.endswith(".history"):
        return len(name) == 16 and HEX.issuperset(name[:8])
    return len(name) == 24 and HEX.issuperset(name)


def parse_env_lines(text: str) -> tuple[dict[str, str], int]:
    """``KEY=VALUE`` lines (``#`` comments, ``export``, optional quotes): the values, and the
    number of the first malformed line (0 if none)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.replace("_", "").isalnum():
            return values, number
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values, 0


def spool_name(target: str, pg_wal: str) -> str:
    """The name of a cluster's spool folder: the target and a digest of its ``pg_wal`` path."""
    try:  # the builtin module: hashlib loads OpenSSL, a few ms per segment
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - Python 3.12 renamed it
        from hashlib import sha256
    digest = sha256(os.path.realpath(pg_wal).encode()).hexdigest()[:10]
    return f"{target}-{digest}"


def default_spool_root(env: Mapping[str, str]) -> str:
    """``BACKUP_WAL_SPOOL``'s default: a private folder under the system temp dir."""
    return os.path.join(env.get("TMPDIR") or "/tmp", f"amprenta-wal-{os.getuid()}")


def _env(config: str | None, environ: Mapping[str, str]) -> Mapping[str, str] | None:
    path = config or environ.get("AMPRENTA_WAL_CONFIG")
    if not path:
        return environ
    try:
        if os.stat(path).st_mode & 0o077:
            return None
        with open(path, encoding="utf-8") as handle:
            values, bad_line = parse_env_lines(handle.read())
    except (OSError, ValueError):
        return None
    return None if bad_line else {**environ, **values}


def spool_folder(env: Mapping[str, str], pg_wal: str) -> str | None:
    """The spool folder of plainly usable asynchronous settings, else None."""
    target = env.get("BACKUP_WAL_TARGET", "").strip()
    mode = env.get("BACKUP_WAL_ASYNC", "").strip().lower()
    if not target or target[0] in "._-" or not TARGET_CHARS.issuperset(target) or \
            mode not in ("", "1", "true", "yes", "on"):
        return None
    root = env.get("BACKUP_WAL_SPOOL", "").strip() or default_spool_root(env)
    return os.path.join(root, spool_name(target, pg_wal))


def take_marker(folder: str, name: str) -> bool:
    """Consume ``ok/NAME`` (the archiver stored NAME); False if it is not there."""
    try:
        os.unlink(os.path.join(folder, "ok", name))
    except FileNotFoundError:
        return False
    return True


def archiver_running(folder: str) -> bool:
    """Whether an archiver process holds the spool's lock."""
    try:
        fd = os.open(os.path.join(folder, "archiver.lock"), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def wait_for_marker(folder: str, name: str, seconds: float) -> bool:
    """Wait while a running archiver works on ``name``; True once it is stored, False as soon
    as no archiver runs, it recorded an error about ``name``, or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    error = os.path.join(folder, "error", name)
    looks = 0
    while time.monotonic() < deadline:
        if take_marker(folder, name):
            return True
        if looks % CHECK_EVERY == 0 and (not archiver_running(folder) or os.path.exists(error)):
            return take_marker(folder, name)
        looks += 1
        time.sleep(POLL_SECONDS)
    return take_marker(folder, name)


def quick_push(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> tuple[bool, float]:
    """``[--config F] push PATH NAME``: (True, waited) once the archiver stored NAME; (False,
    waited) when the full path must decide (it then waits at most the rest of
    ``BACKUP_WAL_WAIT_SECONDS``)."""
    started = time.monotonic()
    args, config = list(argv), None
    if len(args) == 5 and args[0] == "--config":
        config, args = args[1], args[2:]
    if len(args) != 3 or args[0] != "push" or not plain_wal_name(args[2]):
        return False, 0.0
    env = _env(config, os.environ if environ is None else environ)
    folder = None if env is None else spool_folder(env, os.path.dirname(os.path.abspath(args[1])))
    if env is None or folder is None:
        return False, 0.0
    if take_marker(folder, args[2]):
        return True, 0.0
    try:
        seconds = float(env.get("BACKUP_WAL_WAIT_SECONDS") or 60.0)
    except ValueError:
        return False, 0.0
    stored = archiver_running(folder) and wait_for_marker(folder, args[2], seconds)
    return stored, time.monotonic() - started
