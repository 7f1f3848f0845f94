"""``amprenta-wal``'s settings file (env-style, mode 600) and its spool folder.

The variables themselves are declared in :mod:`amprenta_backup.core.settings`
(``WalSettings``, ``PitrSettings``). Stdlib only (no pydantic, boto3, zstandard, psycopg);
the per-segment fast path of ``amprenta-wal push`` does not even import this: see
:mod:`.quick`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.wal import quick
from amprenta_backup.core.wal.quick import parse_env_lines

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
    values, bad_line = parse_env_lines(text)
    if bad_line:
        raise ConfigError(f"{file} line {bad_line} is not KEY=VALUE; fix or remove it")
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
    return Path(quick.default_spool_root(env))


def spool_dir(root: Path, target: str, pg_wal: Path) -> Path:
    """A cluster's spool folder: one per target and ``pg_wal`` folder."""
    return root / quick.spool_name(target, str(pg_wal))
