"""The commands of ``amprenta-backup``, listed without importing them: each one's module in this
package and the text the root help lists it with.

``amprenta-backup --help`` and a mistyped command answer from this table alone; a command's
module (and what it imports: the engine, the settings, psycopg) is imported only when that
command runs or its own help is asked for (:class:`amprenta_backup.cli.main.LazyCommands`).
Each module's ``register`` passes the same text (``**listed(name)``), so the listing and the
command cannot differ. Stdlib only.
"""

from __future__ import annotations

from typing import TypedDict


class Listing(TypedDict, total=False):
    """How the root help lists a command: its ``help``, or its ``short_help``."""

    help: str
    short_help: str


# module of amprenta_backup.cli -> {command: the text the root help lists it with}, in the
# order `--help` lists them (typer puts the groups, drill and export, after the commands)
BY_MODULE: dict[str, dict[str, str]] = {
    "backups": {"backup": "back up one target now", "list": "list backups, newest first",
                "show": "show one backup and its manifest",
                "rebuild-catalog": "re-create records from storage"},
    "health": {"health": "check backup age, failures, storage, catalog and client versions"},
    "metrics": {"metrics": "backup success rate, size, duration, trend"},
    "retention": {"cleanup": "delete backups that no retention policy keeps (see --dry-run)"},
    "restore": {"verify": "read a backup back whole and check it (exit 3 if corrupt)",
                "restore": "restore a backup into a new database, or replace one",
                "download": "save a backup's dump to a file, checked against its sha256"},
    "server_globals": {"restore-globals": "create a backup's roles and tablespaces on a server"},
    "recover": {"recover": "rebuild the catalog, then every target's newest backup, on a new "
                           "server"},
    "copy": {"copy": "copy a backup to the second storage and check its sha256 there"},
    "dags": {"install-dags": "copy (or link) the package's DAG files into a dags folder"},
    "drill": {"drill": "restore a backup into a scratch database and check it (BACKUP_DRILL_*)"},
    "export": {"export": "project exports: one project's rows as a ZIP (BACKUP_PROJECT_ROOT)"},
}
# the commands listed by their `short_help` (their own help is longer); the others by `help`
SHORT = frozenset({"restore", "restore-globals", "recover"})
# command -> (its module, how the root help lists it)
COMMANDS: dict[str, tuple[str, Listing]] = {
    name: (module, Listing(short_help=text) if name in SHORT else Listing(help=text))
    for module, texts in BY_MODULE.items() for name, text in texts.items()}


def listed(name: str) -> Listing:
    """The keyword argument (``help`` or ``short_help``) that lists command ``name``."""
    return Listing(**COMMANDS[name][1])


def modules() -> list[str]:
    """Every command module, once each, in the order of the listing."""
    return list(BY_MODULE)


def short_help(name: str) -> str:
    """The ``short_help`` that lists command ``name``, one whose own help is longer."""
    return COMMANDS[name][1]["short_help"]
