"""``amprenta-wal``'s settings file (env-style, mode 600) and its spool folder.

The variables themselves are declared in :mod:`amprenta_backup.core.settings`
(``WalSettings``, ``PitrSettings``). Stdlib only: ``amprenta-wal push`` imports this on every
call from ``archive_command``, so it must stay cheap (no pydantic, boto3, zstandard, psycopg).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.layout import TARGET_NAME

CONFIG_VARIABLE = "AMPRENTA_WAL_CONFIG"


def read_config_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env-style file (``#`` comments, optional quotes).

    The file holds storage credentials, so it must not be readable by group or others.
    """
    file = Path(path)
    try:
        info = file.stat()
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"amprenta-wal config file {file} does not exist; create it or fix "
                          f"--config / {CONFIG_VARIABLE}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read amprenta-wal config file {file} ({exc.strerror}); it "
                          "must be readable by the OS user the PostgreSQL server runs as") \
            from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"amprenta-wal config file {file} is mode "
                          f"{stat.S_IMODE(info.st_mode):o}; it holds credentials, so make it "
                          f"private: chmod 600 {file}")
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f"{file} line {number} is not KEY=VALUE; fix or remove it")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def settings_environment(config_file: str | None = None,
                         environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment with the config file's values on top (the file wins).

    The file is ``config_file``, else ``$AMPRENTA_WAL_CONFIG``, else none.
    """
    env = dict(os.environ if environ is None else environ)
    path = config_file or env.get(CONFIG_VARIABLE)
    if path:
        env.update(read_config_file(path))
        env[CONFIG_VARIABLE] = str(Path(path).resolve())
    return env


def write_config_file(path: Path, values: Mapping[str, str]) -> Path:
    """Write an env-style config file with mode 600 (the inverse of :func:`read_config_file`)."""
    lines = []
    for key, value in values.items():
        if "\n" in value or "'" in value:
            raise ConfigError(f"{key}: a value with a newline or a quote cannot be written")
        lines.append(f"{key}='{value}'")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path


def default_spool_root(env: Mapping[str, str]) -> Path:
    """``BACKUP_WAL_SPOOL``'s default: a private folder under the system temp dir."""
    return Path(env.get("TMPDIR") or "/tmp") / f"amprenta-wal-{os.getuid()}"


def spool_dir(root: Path, target: str, pg_wal: Path) -> Path:
    """A cluster's spool folder: one per target and ``pg_wal`` folder."""
    digest = hashlib.sha256(str(pg_wal.resolve()).encode()).hexdigest()[:10]
    return root / f"{target}-{digest}"


def quick_spool_dir(env: Mapping[str, str], pg_wal: Path) -> Path | None:
    """The spool folder for ``push``'s fast path, read without pydantic (the declarations in
    :mod:`amprenta_backup.core.settings` cost about 0.3 s to import, once per WAL segment).

    None whenever the settings are not plainly usable (no target, synchronous, a value the
    declarations might refuse): the full path then reads and checks them properly.
    """
    target = env.get("BACKUP_WAL_TARGET", "").strip()
    mode = env.get("BACKUP_WAL_ASYNC", "").strip().lower()
    if not target or not TARGET_NAME.match(target) or mode not in ("", "1", "true", "yes", "on"):
        return None
    root = env.get("BACKUP_WAL_SPOOL", "").strip()
    return spool_dir(Path(root) if root else default_spool_root(env), target, pg_wal)
