"""``amprenta-wal``: PostgreSQL's ``archive_command`` and ``restore_command`` (no Airflow needed).

PostgreSQL runs ``push`` once per WAL segment, so this module imports nothing at the top but
``os`` and ``sys``: :func:`amprenta_backup.core.wal.quick.quick_push` first looks for the
segment's marker and, while the archiver works on it, waits for it; only when that cannot
answer are click, the settings (pydantic) and storage imported.

Exit codes: 0 done; 1 failed, or (``fetch``) the file is not in the archive, which PostgreSQL
reads as the end of the archive; 2 bad usage or settings (``push``, ``list``, ``check``);
``fetch`` exits with :data:`EXIT_ABORT_RECOVERY` for anything but a missing file (a damaged
segment, unreachable storage, bad settings) so that recovery stops instead of ending early.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # no typing import on the per-segment path; mypy reads the name
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from types import SimpleNamespace

    import click

    from amprenta_backup.core.engine import BackupEngine
    from amprenta_backup.core.wal.archive import WalArchive

CONFIG_VARIABLE = "AMPRENTA_WAL_CONFIG"  # as in core.wal.settings (imported only when needed)
PROG = "amprenta-wal"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_ABORT_RECOVERY = 200  # > 125: PostgreSQL treats it as fatal and stops recovery



def build_cli() -> click.Group:
    """The commands; each returns its parsed arguments for :func:`main` to run (so that the
    exit code of a failure depends on the command, ``fetch`` above all)."""
    from types import SimpleNamespace

    import click

    def parsed(command: str) -> Callable[..., SimpleNamespace]:
        def collect(**params: object) -> SimpleNamespace:
            return SimpleNamespace(command=command, **click.get_current_context().obj, **params)
        return collect

    @click.group(name=PROG, context_settings={"help_option_names": ["-h", "--help"]},
                 help="Archive and fetch PostgreSQL WAL in backup storage. Settings come from "
                      "BACKUP_* variables, or from an env-style file (--config / "
                      f"{CONFIG_VARIABLE}) which wins over the environment.")
    @click.option("--config", metavar="FILE", help=f"settings file, mode 600 (default "
                                                   f"${CONFIG_VARIABLE})")
    @click.option("-v", "--verbose", is_flag=True, help="log progress to stderr")
    @click.pass_context
    def cli(ctx: click.Context, config: str | None, verbose: bool) -> None:
        ctx.obj = {"config": config, "verbose": verbose}

    path, name = click.argument("path"), click.argument("name")
    as_json = click.option("--json", "as_json", is_flag=True, help="print JSON")
    cli.command("push", short_help="archive_command: amprenta-wal push %p %f",
                help="archive_command: amprenta-wal push %p %f (%p: the file to archive, %f: "
                     "its WAL file name)")(path(name(parsed("push"))))
    cli.command("fetch", short_help="restore_command: amprenta-wal fetch %f %p",
                help="restore_command: amprenta-wal fetch %f %p (%f: the WAL file wanted, "
                     "%p: where to write it)")(name(path(parsed("fetch"))))
    cli.command("archiver", help="push .ready segments ahead (started by push)")(
        click.option("--pg-wal", required=True, metavar="DIR", help="the cluster's pg_wal folder")(
            click.option("--idle-exit", type=float, metavar="SECONDS",
                         help="seconds idle before exiting, 0=never")(parsed("archiver"))))
    cli.command("archive-command", help="print the archive_command line that answers from "
                "the archiver's markers in the shell, without starting Python per segment "
                "(run it as the server's OS user)")(
        click.option("--pg-wal", required=True, metavar="DIR", help="the cluster's pg_wal folder")(
            click.option("--command", "wal_command", metavar="PATH",
                         help="the amprenta-wal the server runs (default: this one)")(
                parsed("archive-command"))))
    cli.command("list", help="list archived WAL files")(click.option(
        "--timeline", help="only this timeline (8 hex digits)")(as_json(parsed("list"))))
    cli.command("check", help="check the settings and that storage can be written")(
        as_json(parsed("check")))
    cli.command("cleanup", help="delete WAL no stored base backup needs")(
        click.option("--dry-run", is_flag=True, help="only report")(as_json(parsed("cleanup"))))
    cli = click.version_option(package_name="amprenta-backup", prog_name=PROG,
                               message="%(prog)s %(version)s")(cli)
    return cli


def parse(argv: list[str]) -> SimpleNamespace | int:
    """The parsed command, or the exit code when there is nothing to run (help, bad usage)."""
    from types import SimpleNamespace

    import click

    try:
        result = build_cli().main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.ClickException as exc:
        if "--json" in argv:  # the same error object as amprenta-backup's for bad usage
            from amprenta_backup.cli.jsonlines import write

            write("error", {"type": "usage", "message": exc.format_message(),
                            "exit_code": exc.exit_code})
        else:
            exc.show()
        return exc.exit_code
    except click.Abort:
        return EXIT_FAILED
    return result if isinstance(result, SimpleNamespace) else int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code. Run as a process (``argv`` None) it
    ends with ``os._exit`` once its output is flushed: the interpreter's teardown after
    pydantic and boto3 costs up to 1 s of CPU per call under load, once per WAL segment.
    A process also runs without the cyclic garbage collector's passes over what the slow path
    imports (pydantic's objects above all); the archiver freezes them and collects from then on
    (:func:`_collect_from_here`)."""
    if argv is None:
        import gc

        gc.disable()
    code = _run(sys.argv[1:] if argv is None else list(argv))
    if argv is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(raw: list[str]) -> int:
    from amprenta_backup.core.wal.quick import quick_push

    stored, waited = quick_push(raw)
    if stored:
        return EXIT_OK
    from amprenta_backup.cli.jsonlines import configure_logging, write
    from amprenta_backup.core.errors import BackupError, ConfigError, WalSegmentMissing
    from amprenta_backup.core.wal.settings import settings_environment

    args = parse(raw)
    if isinstance(args, int):
        return args
    as_json = bool(getattr(args, "as_json", False))  # stderr in JSON Lines too
    configure_logging(args.verbose, "amprenta-wal: %(levelname)s %(message)s", as_json)
    handlers = {"push": _push, "fetch": _fetch, "archiver": _archiver, "list": _list,
                "check": _check, "cleanup": _retention, "archive-command": _archive_command}
    try:
        env = settings_environment(args.config)
        os.environ.update(env)  # boto3 reads credentials from the process environment
        args.waited = waited
        return handlers[args.command](args, env)
    except WalSegmentMissing as exc:
        print(f"amprenta-wal: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (BackupError, TimeoutError, OSError) as exc:
        code = EXIT_ABORT_RECOVERY if args.command == "fetch" else \
            EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
        if as_json:  # the same error object as amprenta-backup's
            write("error", {"type": type(exc).__name__, "message": str(exc), "exit_code": code})
        else:
            print(f"amprenta-wal: error: {exc}", file=sys.stderr)
        return code


def _collect_from_here() -> None:
    """A long-lived process (the archiver): what was imported is frozen (never scanned), the
    collector runs again for what comes next."""
    import gc

    gc.freeze()
    gc.enable()


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


def _push(args: SimpleNamespace, env: dict[str, str]) -> int:
    from pathlib import Path

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
        if os.fork() == 0:  # the child becomes the archiver with what is already imported
            _become_archiver(args, env, pg_wal, spool.log_path)

    how = await_push(spool, name, max(settings.wait_seconds - args.waited, 1.0), start_archiver,
                     lambda: _archive(env).push(args.path, name))
    _log().info("%s stored (%s)", name, how)
    return EXIT_OK


def _become_archiver(args: SimpleNamespace, env: dict[str, str], pg_wal: Path,
                     log_path: Path) -> None:
    """In a forked child of ``push``: detach (own session, output to the spool's log) and run
    the archiver; never returns. Forking skips a second interpreter start and the settings'
    imports, about 1 s of CPU per start under load."""
    code = EXIT_FAILED
    try:
        os.setsid()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        for fd in (1, 2):
            os.dup2(log_fd, fd)
        os.closerange(3, 1024)
        args.pg_wal, args.idle_exit = str(pg_wal), None
        code = _archiver(args, env)
    except BaseException:
        _log().exception("the archiver failed")
    finally:
        os._exit(code)


def _fetch(args: SimpleNamespace, env: dict[str, str]) -> int:
    _archive(env).fetch(args.name, args.path)
    _log().info("restored %s", args.name)
    return EXIT_OK


def _archiver(args: SimpleNamespace, env: dict[str, str]) -> int:
    import logging
    from pathlib import Path

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
    fast = settings.catchup_level
    catchup = None if fast == settings.compression_level else \
        (lambda path, name: archive.push(path, name, fast).sha256)
    archiver = AsyncArchiver(pg_wal, spool, lambda path, name: archive.push(path, name).sha256,
                             parallel=settings.parallel, idle_exit_seconds=idle,
                             catchup=catchup, catchup_backlog=settings.catchup_backlog)
    _log().info("archiver started for %s (pid %d, %d in parallel, zstd level %d, %s)", pg_wal,
                os.getpid(), settings.parallel, settings.compression_level,
                f"{fast} from {settings.catchup_backlog} waiting" if catchup else "no catch-up")
    _collect_from_here()
    try:
        archiver.run()
    finally:
        _log().info("archiver exits after pushing %d files (%d catching up)", archiver.pushed,
                    archiver.caught_up)
        lock.close()
    return EXIT_OK


def _archive_command(args: SimpleNamespace, env: dict[str, str]) -> int:
    from pathlib import Path

    from amprenta_backup.core.errors import ConfigError
    from amprenta_backup.core.settings import WalSettings
    from amprenta_backup.core.wal.shellpush import archive_command_line
    from amprenta_backup.core.wal.spool import Spool

    settings = WalSettings.from_env(env)
    pg_wal = Path(args.pg_wal).resolve()
    if not (pg_wal / "archive_status").is_dir():
        raise ConfigError(f"{pg_wal} is not a pg_wal folder (it has no archive_status); give "
                          "the cluster's pg_wal with --pg-wal")
    owner = pg_wal.stat().st_uid
    if owner != os.getuid() and not WalSettings.is_set("spool_root", env):
        raise ConfigError(f"{pg_wal} belongs to uid {owner}, not to you (uid {os.getuid()}): "
                          "the archiver's spool folder depends on the OS user, so run this as "
                          "the user PostgreSQL runs as (e.g. sudo -u postgres amprenta-wal ...)")
    command = Path(args.wal_command or Path(sys.executable).parent / PROG)
    if not os.access(command, os.X_OK):
        raise ConfigError(f"{command} is not an executable amprenta-wal; give the one the "
                          "server's OS user runs with --command PATH")
    print(archive_command_line(command.absolute(), env.get(CONFIG_VARIABLE), pg_wal,
                               Spool(settings.spool_dir(pg_wal)), settings.wait_seconds))
    return EXIT_OK


def _list(args: SimpleNamespace, env: dict[str, str]) -> int:
    import json

    names = _archive(env).list_names(args.timeline)
    if args.as_json:
        print(json.dumps(list(names), indent=2))
    for name in () if args.as_json else names:
        print(name)
    return EXIT_OK


def _check(args: SimpleNamespace, env: dict[str, str]) -> int:
    import json

    from amprenta_backup.core.wal.archive import wal_prefix

    archive = _archive(env)
    archive.storage.check_ready()
    archive.storage.check_writable()
    where = archive.storage.uri(wal_prefix(archive.prefix, archive.target))
    print(json.dumps({"ok": True, "target": archive.target, "storage": where}, indent=2)
          if args.as_json else f"ok: WAL of {archive.target} is archived to {where}")
    return EXIT_OK


def _retention(args: SimpleNamespace, env: dict[str, str]) -> int:
    import json

    from amprenta_backup.core.settings import WalSettings

    report = _engine(env).wal_retention(WalSettings.from_env(env).target, dry_run=args.dry_run)
    from amprenta_backup.core.models import human_bytes

    if args.as_json:
        print(json.dumps({"dry_run": args.dry_run, "removed": list(report.removed),
                          "bytes_freed": report.bytes_freed, "kept": report.kept,
                          "base_backups": list(report.base_backups)}, indent=2))
        return EXIT_OK
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(report.removed)} WAL files ({human_bytes(report.bytes_freed)}), kept "
          f"{report.kept}; base backups: {', '.join(report.base_backups) or 'none (kept all)'}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
