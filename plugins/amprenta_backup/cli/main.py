"""``amprenta-backup``: backups, verification and restores from a terminal (no Airflow needed).

Each module in this package adds its commands to the typer app through ``register(app)``.
Exit codes: 0 success, 1 the operation failed, 2 bad usage or settings, 3 a backup is corrupt.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import typer

from amprenta_backup.cli import (
    backups,
    copy,
    dags,
    drill,
    export,
    health,
    metrics,
    recover,
    restore,
    retention,
    server_globals,
)
from amprenta_backup.cli.connections import use_airflow_connections
from amprenta_backup.cli.jsonlines import configure_logging
from amprenta_backup.cli.output import fail, package_version, reader_gone
from amprenta_backup.core.errors import (
    BackupError,
    ChecksumMismatch,
    ConfigError,
    ObjectMissing,
    PreconditionError,
)

PROG = "amprenta-backup"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CORRUPT = 0, 1, 2, 3
COMMAND_MODULES = [backups, health, metrics, retention, restore, server_globals, recover, drill,
                   copy, export, dags]


@dataclass(frozen=True)
class Output:
    """How the command writes stderr, on click's context (``ctx.obj``) for every command.

    :param json: JSON Lines (``--json``, seen in the arguments before they are parsed: the
        root callback configures logging before the command parses its own options)
    """

    json: bool = False


def _version(shown: bool) -> None:
    if shown:
        print(f"{PROG} {package_version()}")
        raise typer.Exit()


def _root(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("-v", "--verbose",
                                          help="log progress to stderr")] = False,
    _: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                    help="print the version and exit")] = False,
) -> None:
    """PostgreSQL backups: settings from BACKUP_* variables, connections from AIRFLOW_CONN_*
    variables (or Airflow's secrets backends when Airflow is installed)."""
    as_json = isinstance(ctx.obj, Output) and ctx.obj.json
    configure_logging(verbose, "%(levelname)s %(name)s: %(message)s", as_json)
    use_airflow_connections()


def build_app() -> typer.Typer:
    app = typer.Typer(name=PROG, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, context_settings={
                          "help_option_names": ["-h", "--help"]})
    app.callback()(_root)
    for module in COMMAND_MODULES:
        module.register(app)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    return _run(args, "--json" in args)  # seen before parsing: usage errors, -v's logging


def _run(args: list[str], as_json: bool) -> int:
    try:
        code = int(build_app()(args=args, prog_name=PROG, standalone_mode=False,
                               obj=Output(json=as_json)) or 0)  # stderr as JSON Lines too
        sys.stdout.flush()  # here, so that a reader gone is seen here and not at exit
        return code
    except typer.TyperException as exc:  # bad usage: the message names the option
        show = getattr(exc, "show", None)
        if as_json or show is None:
            return fail(exc.format_message(), "usage", exc.exit_code, as_json)
        show()
        return exc.exit_code
    except typer.Abort:
        return fail("aborted", "aborted", EXIT_FAILED, as_json)
    except BrokenPipeError:  # `amprenta-backup show ID | head`: the reader has gone
        return reader_gone()
    except BackupError as exc:
        return fail(str(exc), type(exc).__name__, exit_code(exc), as_json)


def exit_code(exc: BackupError) -> int:
    if isinstance(exc, ChecksumMismatch | ObjectMissing):  # a backup's object damaged or gone
        return EXIT_CORRUPT
    if isinstance(exc, ConfigError | PreconditionError):
        return EXIT_USAGE
    return EXIT_FAILED
