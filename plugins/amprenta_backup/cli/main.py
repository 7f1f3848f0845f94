"""``amprenta-backup``: backups, verification and restores from a terminal (no Airflow needed).

Each module in this package adds its subcommands through ``register(subparsers)``.
Exit codes: 0 success, 1 the operation failed, 2 bad usage or settings, 3 a backup is corrupt.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from amprenta_backup.cli import (
    backups,
    drill,
    health,
    metrics,
    recover,
    restore,
    retention,
    server_globals,
)
from amprenta_backup.core.errors import (
    BackupError,
    ChecksumMismatch,
    ConfigError,
    ObjectMissing,
    PreconditionError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CORRUPT = 0, 1, 2, 3
COMMAND_MODULES = [backups, health, metrics, retention, restore, server_globals, recover, drill]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amprenta-backup",
        description="PostgreSQL backups: settings from BACKUP_* and AIRFLOW_CONN_* variables.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.handler(args))
    except (ChecksumMismatch, ObjectMissing) as exc:  # a backup's object damaged or gone
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    except (ConfigError, PreconditionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
