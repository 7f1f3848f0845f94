"""``amprenta-wal``: PostgreSQL's ``archive_command`` and ``restore_command`` (no Airflow needed).

This module lives outside ``amprenta_backup.cli`` on purpose: PostgreSQL runs ``push`` once per
WAL segment, and importing the ``cli`` package pulls in psycopg and every command (about
0.1 s), which alone would cap archiving near 8 segments a second. Only the standard library is
imported before a segment's marker is found.

Exit codes: 0 done; 1 failed, or (``fetch``) the file is not in the archive, which PostgreSQL
reads as the end of the archive; 2 bad usage or settings (``push``, ``list``, ``check``);
``fetch`` exits with :data:`EXIT_ABORT_RECOVERY` for anything but a missing file (a damaged
segment, unreachable storage, bad settings) so that recovery stops instead of ending early.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from amprenta_backup.core.errors import BackupError, ConfigError, WalSegmentMissing
from amprenta_backup.core.wal.settings import CONFIG_VARIABLE, quick_spool_dir, settings_environment

if TYPE_CHECKING:
    import argparse
    import logging

    from amprenta_backup.core.engine import BackupEngine
    from amprenta_backup.core.wal.archive import WalArchive

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_ABORT_RECOVERY = 200  # > 125: PostgreSQL treats it as fatal and stops recovery



def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="amprenta-wal",
        description="Archive and fetch PostgreSQL WAL in backup storage. Settings come from "
                    f"BACKUP_* variables, or from an env-style file (--config / {CONFIG_VARIABLE})"
                    " which wins over the environment.")
    parser.add_argument("--config", help=f"settings file, mode 600 (default ${CONFIG_VARIABLE})")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    push = sub.add_parser("push", help="archive_command: amprenta-wal push %%p %%f")
    push.add_argument("path", help="the file to archive (%%p)")
    push.add_argument("name", help="its WAL file name (%%f)")
    fetch = sub.add_parser("fetch", help="restore_command: amprenta-wal fetch %%f %%p")
    fetch.add_argument("name", help="the WAL file wanted (%%f)")
    fetch.add_argument("path", help="where to write it (%%p)")
    archiver = sub.add_parser("archiver", help="push .ready segments ahead (started by push)")
    archiver.add_argument("--pg-wal", required=True, help="the cluster's pg_wal folder")
    archiver.add_argument("--idle-exit", type=float, help="seconds idle before exiting, 0=never")
    listing = sub.add_parser("list", help="list archived WAL files")
    listing.add_argument("--timeline", help="only this timeline (8 hex digits)")
    sub.add_parser("check", help="check the settings and that storage can be written")
    cleanup = sub.add_parser("cleanup", help="delete WAL no stored base backup needs")
    cleanup.add_argument("--dry-run", action="store_true", help="only report")
    return parser


def already_stored(argv: Sequence[str]) -> bool:
    """The per-segment fast path: ``[--config F] push PATH NAME`` whose segment the archiver
    process already stored. Consumes the marker; imports neither argparse nor logging."""
    args = list(argv)
    config = None
    if len(args) == 5 and args[0] == "--config":
        config, args = args[1], args[2:]
    if len(args) != 3 or args[0] != "push":
        return False
    from amprenta_backup.core.wal.names import WAL_FILE
    from amprenta_backup.core.wal.spool import Spool

    path, name = args[1], args[2]
    if not WAL_FILE.match(name):
        return False
    try:
        folder = quick_spool_dir(settings_environment(config), Path(os.path.abspath(path)).parent)
    except BackupError:
        return False  # the full path reports it
    return folder is not None and Spool(folder).take_ok(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    raw = sys.argv[1:] if argv is None else list(argv)
    if already_stored(raw):
        return EXIT_OK
    import logging

    args = build_parser().parse_args(raw)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="amprenta-wal: %(levelname)s %(message)s", stream=sys.stderr)
    handlers = {"push": _push, "fetch": _fetch, "archiver": _archiver, "list": _list,
                "check": _check, "cleanup": _retention}
    try:
        env = settings_environment(args.config)
        os.environ.update(env)  # boto3 reads credentials from the process environment
        return handlers[args.command](args, env)
    except WalSegmentMissing as exc:
        print(f"amprenta-wal: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (BackupError, TimeoutError, OSError) as exc:
        print(f"amprenta-wal: error: {exc}", file=sys.stderr)
        if args.command == "fetch":
            return EXIT_ABORT_RECOVERY
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("amprenta-wal")


def _engine(env: dict[str, str]) -> BackupEngine:
    from amprenta_backup.core.engine import BackupEngine
    from amprenta_backup.core.settings import BackupConfig

    return BackupEngine(BackupConfig.from_env(env))


def _archive(env: dict[str, str]) -> WalArchive:
    from amprenta_backup.core.settings import WalSettings

    settings = WalSettings.from_env(env)
    return _engine(env).wal_archive(settings.target, settings.compression_level)


def _push(args: argparse.Namespace, env: dict[str, str]) -> int:
    from amprenta_backup.core.wal.asyncpush import await_push
    from amprenta_backup.core.wal.names import check_wal_name
    from amprenta_backup.core.wal.spool import Spool

    name = check_wal_name(args.name)
    from amprenta_backup.core.settings import WalSettings

    settings = WalSettings.from_env(env)
    if not settings.async_push:
        _archive(env).push(args.path, name)
        return EXIT_OK
    pg_wal = Path(os.path.abspath(args.path)).parent
    spool = Spool(settings.spool_dir(pg_wal)).prepare()

    def start_archiver() -> None:
        import subprocess

        argv = [sys.executable, "-m", "amprenta_backup.cli.wal", "archiver",
                "--pg-wal", str(pg_wal)]
        with open(spool.log_path, "ab") as log_file:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                             start_new_session=True, close_fds=True)

    how = await_push(spool, name, settings.wait_seconds, start_archiver,
                     lambda: _archive(env).push(args.path, name))
    _log().info("%s stored (%s)", name, how)
    return EXIT_OK


def _fetch(args: argparse.Namespace, env: dict[str, str]) -> int:
    _archive(env).fetch(args.name, args.path)
    _log().info("restored %s", args.name)
    return EXIT_OK


def _archiver(args: argparse.Namespace, env: dict[str, str]) -> int:
    import logging

    from amprenta_backup.core.settings import WalSettings
    from amprenta_backup.core.wal.asyncpush import AsyncArchiver
    from amprenta_backup.core.wal.spool import Spool

    settings = WalSettings.from_env(env)
    pg_wal = Path(args.pg_wal).resolve()
    spool = Spool(settings.spool_dir(pg_wal)).prepare()
    lock = spool.lock()
    if lock is None:
        _log().info("another archiver already runs for %s", pg_wal)
        return EXIT_OK
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in root.handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    archive = _archive(env)
    idle = settings.idle_exit_seconds if args.idle_exit is None else args.idle_exit
    archiver = AsyncArchiver(pg_wal, spool, lambda path, name: archive.push(path, name).sha256,
                             parallel=settings.parallel, idle_exit_seconds=idle)
    _log().info("archiver started for %s (pid %d, %d in parallel)", pg_wal, os.getpid(),
                settings.parallel)
    try:
        archiver.run()
    finally:
        _log().info("archiver exits after pushing %d files", archiver.pushed)
        lock.close()
    return EXIT_OK


def _list(args: argparse.Namespace, env: dict[str, str]) -> int:
    for name in _archive(env).list_names(args.timeline):
        print(name)
    return EXIT_OK


def _check(args: argparse.Namespace, env: dict[str, str]) -> int:
    from amprenta_backup.core.wal.archive import wal_prefix

    archive = _archive(env)
    archive.storage.check_ready()
    archive.storage.check_writable()
    where = archive.storage.uri(wal_prefix(archive.prefix, archive.target))
    print(f"ok: WAL of {archive.target} is archived to {where}")
    return EXIT_OK


def _retention(args: argparse.Namespace, env: dict[str, str]) -> int:
    from amprenta_backup.core.settings import WalSettings

    report = _engine(env).wal_retention(WalSettings.from_env(env).target, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(report.removed)} WAL files ({report.bytes_freed} bytes), kept "
          f"{report.kept}; base backups: {', '.join(report.base_backups) or 'none (kept all)'}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
