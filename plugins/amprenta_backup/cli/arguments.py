"""Argument types shared by the CLI commands: numbers with bounds and choices, with the fix
in the message (click prefixes it with the option: ``Invalid value for '--limit': ...``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.layout import target_name
from amprenta_backup.core.settings import BackupTarget

if TYPE_CHECKING:
    from amprenta_backup.core.engine import BackupEngine


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """A typer ``parser`` accepting whole numbers from ``low`` to ``high``; anything else is
    a usage error (exit 2) naming the range."""

    def parse(text: str | int) -> int:
        if isinstance(text, int):  # a default passes through the parser too
            return text
        try:
            value = int(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is not a whole number; give one from {low} to {high}") from None
        if not low <= value <= high:
            raise typer.BadParameter(
                f"{value} is out of range; give a whole number from {low} to {high}")
        return value

    return parse


def choice(values: Sequence[str]) -> Callable[[str], str]:
    """A typer ``parser`` accepting one of ``values``."""

    def parse(text: str) -> str:
        if text not in values:
            raise typer.BadParameter(f"{text!r} is not one of {', '.join(values)}")
        return text

    return parse


JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="print the plan, touch nothing")]


FromCopyOption = Annotated[bool, typer.Option(
    "--from-copy", help="read the second copy (BACKUP_COPY_*) instead of the primary storage; "
    "without it, a primary that cannot be read falls back to the copy")]


def target_spelling(text: str) -> str:
    """A typer ``parser`` for a backup target in either spelling (``pg_main:sales`` or
    ``pg_main.sales``), giving the one it is filed under (``pg_main.sales``)."""
    try:
        return target_name(text)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


def configured_target(engine: BackupEngine, text: str) -> BackupTarget:
    """The target ``text`` names in either spelling: the ``BACKUP_TARGETS`` entry filed under
    it (``pg_main.sales`` is the entry ``pg_main:sales``), else ``text`` read as
    ``conn_id[:database]``."""
    name = target_name(text)  # a malformed name: the error says what a target looks like
    for target in engine.config.targets:
        if target.name == name:
            return target
    return BackupTarget.parse(text)


TargetOption = Annotated[str | None, typer.Option(
    "--target", parser=target_spelling, metavar="TARGET",
    help="only this target: conn_id or conn_id.database (conn_id:database works too)")]
ProgressOption = Annotated[bool, typer.Option(
    "--progress", help="show progress on stderr even when it is not a terminal")]
