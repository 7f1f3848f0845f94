"""``amprenta-backup``: backups, verification and restores from a terminal (no Airflow needed).

Each module in this package adds its commands to the typer app through ``register(app)``,
called only when one of them runs (:class:`LazyCommands`; the list is :mod:`.index`).
Exit codes: 0 success, 1 the operation failed, 2 bad usage or settings, 3 a backup is corrupt.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from amprenta_backup.cli.connections import use_airflow_connections
from amprenta_backup.cli.index import COMMANDS
from amprenta_backup.cli.jsonlines import configure_logging
from amprenta_backup.cli.output import fail, package_version, reader_gone
from amprenta_backup.core.errors import (
    BackupError,
    ChecksumMismatch,
    ConfigError,
    ObjectMissing,
    PreconditionError,
)

if TYPE_CHECKING:
    from typer import _click as click  # typer's own copy of click

PROG = "amprenta-backup"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CORRUPT = 0, 1, 2, 3
_COLLECT_ONCE_LOADED: list[bool] = [False]  # main() of a process: see LazyCommands.load


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


def _unbuilt(name: str, module: str) -> Any:
    """The callback of a listing that is run: its module did not build the command (the index
    names the wrong module); never a silent success."""
    def refuse() -> None:
        raise RuntimeError(f"command {name!r} is not built by amprenta_backup.cli.{module}: "
                           "cli/index.py lists it under the wrong module")
    return refuse


class LazyCommands(TyperGroup):
    """The root command: lists every command from :mod:`amprenta_backup.cli.index` (the root
    help and a mistyped command's "Did you mean" need nothing else) and builds a command from
    its module only when it is resolved to run (or to show its own help)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = {name: TyperCommand(name, callback=_unbuilt(name, module), **text)
                         for name, (module, text) in COMMANDS.items()}  # what the listing reads
        self._loaded: set[str] = set()

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in COMMANDS:
            self.load(COMMANDS[args[0]][0])
        return super().resolve_command(ctx, args)

    def load(self, module: str) -> None:
        """Import ``module``'s commands in place of their listings."""
        if module in self._loaded:
            return
        app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        import_module(f"amprenta_backup.cli.{module}").register(app)
        self.commands.update(typer.main.get_group(app).commands)  # same names, same order
        self._loaded.add(module)
        if _COLLECT_ONCE_LOADED[0]:  # what was imported is frozen: never scanned again
            _COLLECT_ONCE_LOADED[0] = False
            gc.freeze()
            gc.enable()


def build_app() -> typer.Typer:
    app = typer.Typer(name=PROG, cls=LazyCommands, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False, context_settings={
                          "help_option_names": ["-h", "--help"]})
    app.callback()(_root)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code.

    Run as a process (``argv`` None), the cyclic garbage collector is off until the command's
    module is imported, and what exists at the end is frozen so that the interpreter's
    teardown does not scan it: the collector's passes over the objects of the imports
    (pydantic's, typer's) cost about 0.3 s of CPU per command otherwise."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is not None:
        return _run(args, "--json" in args)  # seen before parsing: usage errors, -v's logging
    gc.disable()
    _COLLECT_ONCE_LOADED[0] = True
    try:
        return _run(args, "--json" in args)
    finally:  # no command loaded (help, a usage error): the same end as after one
        _COLLECT_ONCE_LOADED[0] = False
        gc.freeze()
        gc.enable()


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
