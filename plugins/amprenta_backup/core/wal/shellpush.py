"""An ``archive_command`` that answers from the archiver's marker in the shell, without Python.

PostgreSQL runs ``archive_command`` through ``/bin/sh`` once per segment, one after the other;
``amprenta-wal push`` costs a Python start-up each time (10-40 ms of CPU and wall time on a
loaded host), more than the rest of the serial chain. The line built here does the common
case in the shell PostgreSQL starts anyway:

1. ``test %p -ef PG_WAL/%f``: the file is in the ``pg_wal`` folder this spool belongs to (a
   line copied to another cluster never answers from this cluster's markers);
2. ``test -e OK/%f || flock -s -w WAIT BUSY/%f true``: the archiver stored it already, or is
   pushing it and holds ``busy/%f``: wait on that lock (no polling, no CPU) until it is done;
3. still no marker but an archiver running (``flock -n -s`` on its ``archiver.lock`` fails):
   it may not have seen the new ``.ready`` file yet (it is woken by inotify, but PostgreSQL
   may be quicker): ``sleep 0.05`` and wait on the lock once more (an ``exec`` of ``sleep``
   instead of a Python start; with no archiver running, no delay);
4. ``rm OK/%f``: consume the marker; success only if it was there, i.e. the segment and its
   checksum are stored;
5. anything else (no archiver yet, an error marker, no ``flock`` on PATH, a timeout): ``exec
   amprenta-wal push %p %f``, the full path, which starts the archiver, reports errors and
   decides.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.wal.spool import Spool

RETRY_SLEEP = "0.05"  # seconds the line gives an archiver that has not seen the file yet


def _quoted(path: str | Path, what: str) -> str:
    text = str(path)
    if "%" in text or "\n" in text:
        raise ConfigError(f"{what} {text!r} holds '%' or a newline, which archive_command "
                          "cannot carry; choose a path without them")
    return shlex.quote(text)


def archive_command_line(wal_command: str | Path, config: str | Path | None, pg_wal: Path,
                         spool: Spool, wait_seconds: float) -> str:
    """The ``archive_command`` of one cluster (its ``pg_wal`` and its spool folder).

    :param wal_command: the ``amprenta-wal`` the server's OS user runs (absolute path)
    :param config: its settings file (``--config``), or None to read the environment
    :param pg_wal: the cluster's ``pg_wal`` folder (resolved: the test compares inodes)
    :param spool: the cluster's spool folder (``WalSettings.spool_dir(pg_wal)``)
    :param wait_seconds: how long the shell waits on the archiver's lock before it asks
        ``amprenta-wal push`` (``BACKUP_WAL_WAIT_SECONDS``)
    """
    where = _quoted(pg_wal.resolve(), "pg_wal folder")
    ok, busy = _quoted(spool.ok_dir, "spool folder"), _quoted(spool.busy_dir, "spool folder")
    full = _quoted(wal_command, "amprenta-wal command")
    if config is not None:
        full += f" --config {_quoted(Path(config).resolve(), 'settings file')}"
    wait = max(1, int(wait_seconds))
    running = _quoted(spool.lock_path, "spool folder")
    lock = f"flock -s -w {wait} {busy}/%f true"
    stored = f"test -e {ok}/%f"
    late = f"! flock -n -s {running} true && sleep {RETRY_SLEEP} && {lock}"
    return (f"test %p -ef {where}/%f && {{ {stored} || {lock}; {stored} || {{ {late}; }}; "
            f"rm {ok}/%f; }} 2>/dev/null || exec {full} push %p %f")
