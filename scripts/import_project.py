#!/usr/bin/env python3
"""Import a project export (the spec's script): a thin wrapper over BackupEngine.import_project.

    python scripts/import_project.py --export-dir ./project_export_20231201 \\
        --target-database amprenta --dry-run

``--export-dir`` takes the folder the export ZIP was unzipped into, or the ZIP itself, or the
id of an export in backup storage. Every checksum is verified before the database is touched;
the rows go in in one transaction. Exit codes: 0 imported (or the dry run passed), 1 failed,
2 refused (conflicts, schema, settings), 3 the export is damaged or altered.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import (
    BackupError,
    ChecksumMismatch,
    ConfigError,
    PreconditionError,
    reword,
)
from amprenta_backup.core.export.plan import POLICIES

OPTION_WORDS = {"target_conn_id": "--target-conn-id", "target_database": "--target-database",
                "on_conflict": "--on-conflict", "export_id": "--export-dir"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="import_project.py", description=__doc__.split("\n")[0])
    parser.add_argument("--export-dir", required=True, metavar="DIR",
                        help="unzipped export folder, the export ZIP, or an export id")
    parser.add_argument("--target-database", required=True, metavar="DB")
    parser.add_argument("--target-conn-id", metavar="CONN_ID",
                        help="Postgres connection of the target server (AIRFLOW_CONN_<ID>; "
                        "default: BACKUP_PROJECT_SOURCE's)")
    parser.add_argument("--on-conflict", choices=POLICIES, default="fail",
                        help="rows whose key the target holds with other content: fail "
                        "(default), skip (keep the target's), remap (new keys)")
    parser.add_argument("--dry-run", action="store_true",
                        help="do everything in a transaction that is rolled back")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = BackupEngine().import_project(args.export_dir, args.target_database,
                                               args.target_conn_id, args.on_conflict,
                                               args.dry_run)
    except ChecksumMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (ConfigError, PreconditionError) as exc:  # the fields named by our options
        print(f"error: {reword(str(exc), OPTION_WORDS)}", file=sys.stderr)
        return 2
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    verb = "would import" if report.dry_run else "imported"
    print(f"{verb} export {report.export_id} into {report.database} (policy {report.policy}"
          f"{', schema created' if report.created_schema else ''}):")
    for table in report.tables:
        extra = ", ".join(f"{n} {k}" for k, n in (("already there", table.present),
                          ("skipped", table.skipped), ("remapped", table.remapped)) if n)
        print(f"  {table.table:40} {table.loaded:>10} rows{f' ({extra})' if extra else ''}")
    if report.dry_run:
        print("dry run: rolled back, nothing was written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
