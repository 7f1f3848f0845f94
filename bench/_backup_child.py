"""Run ONE amprenta backup in this process and print one JSON line (a bench helper).

Started by ``bench_backup.py`` (through ``_spawn_measured.py``) so that this process's peak
RSS is measured alone. Connection settings come from arguments or ``PGHOST``/``PGPORT``/
``PGUSER``/``PGDATABASE``; the password ONLY from ``PGPASSWORD`` (never argv). S3
credentials come from the standard ``AWS_*`` variables.

With ``--pg-dump-rss FILE`` the engine's ``pg_dump`` is reached through a wrapper (via
``AMPRENTA_PG_BINDIR``) that runs the real one under ``_spawn_measured.py``, so pg_dump's own
peak RSS is recorded in FILE; pg_dump's stdout still goes straight into the pipeline.
"""

from __future__ import annotations

import time

T0 = time.monotonic()  # CLOCK_MONOTONIC: the spawner's start time is comparable

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

from _child_trace import ThreadCpu, record_spans, span_seconds  # noqa: E402

from amprenta_backup.core.constants import (  # noqa: E402
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_DUMP_MIN_TABLE_MB,
)

HERE = Path(__file__).resolve().parent
SPAWN = HERE / "_spawn_measured.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=env.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("PGPORT", "5432")))
    parser.add_argument("--user", default=env.get("PGUSER", "postgres"))
    parser.add_argument("--dbname", default=env.get("PGDATABASE", "postgres"))
    parser.add_argument("--catalog-dbname", default="catalog")
    parser.add_argument("--target", default="bench")
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--storage", choices=("local", "s3"), required=True)
    parser.add_argument("--local-root", help="LocalStorage root (storage=local)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (storage=s3)")
    parser.add_argument("--bucket", help="S3 bucket (storage=s3)")
    parser.add_argument("--region", default=env.get("AWS_DEFAULT_REGION", "us-east-1"))
    parser.add_argument("--level", type=int, default=DEFAULT_COMPRESSION_LEVEL, help="zstd level")
    parser.add_argument("--threads", type=int, default=2, help="zstd worker threads")
    parser.add_argument("--part-size-mib", type=int,
                        help="S3 multipart part size (default: the engine's)")
    parser.add_argument("--in-flight", type=int,
                        help="S3 parts uploaded at once (default: the engine's)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="BACKUP_DUMP_JOBS: dump streams at once (1 = one stream)")
    parser.add_argument("--min-table-mb", type=int, default=DEFAULT_DUMP_MIN_TABLE_MB,
                        help="BACKUP_DUMP_MIN_TABLE_MB: the size of a table worth a stream")
    parser.add_argument("--encrypt", action="store_true",
                        help="client-side encryption on (a random master key of this run)")
    parser.add_argument("--pg-dump-rss", metavar="FILE",
                        help="record pg_dump's own peak RSS (JSON lines) in FILE")
    parser.add_argument("--copy-root", metavar="DIR",
                        help="after the backup, copy it to a local second storage here (as "
                        "daily_backup's copy task does) and time that apart")
    parser.add_argument("--trace", action="store_true",
                        help="report the engine's step spans and the CPU of Python vs native "
                        "(zstd) threads (see _child_trace.py)")
    parser.add_argument("--phases", action="store_true",
                        help="time the engine's steps by function (see _phases.py)")
    return parser.parse_args(argv)


def _install_pg_dump_wrapper(result_file: str) -> Path:
    """A bin folder whose ``pg_dump`` runs the real one under the RSS trampoline (the other
    tools linked as they are)."""
    from amprenta_backup.core import pgtools

    real = pgtools.tool("pg_dump")
    folder = Path(tempfile.mkdtemp(prefix="amprenta-bench-bin-"))
    script = folder / "pg_dump"
    command = [sys.executable, "-S", "-I", str(SPAWN), result_file, "--", real]
    script.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(c) for c in command)
                      + ' "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    for sibling in ("pg_dumpall", "pg_restore"):  # the globals step needs pg_dumpall too
        if (Path(real).parent / sibling).exists():
            (folder / sibling).symlink_to(Path(real).parent / sibling)
    os.environ["AMPRENTA_PG_BINDIR"] = str(folder)
    return folder


def _storage(args: argparse.Namespace) -> Any:
    if args.storage == "local":
        from amprenta_backup.core.storage.local import LocalStorage

        if not args.local_root:
            raise SystemExit("--local-root is required with --storage local")
        return LocalStorage(args.local_root)
    from amprenta_backup.core.storage.s3 import LazyClient, S3Storage, client_config, new_client

    if not (args.endpoint_url and args.bucket):
        raise SystemExit("--endpoint-url and --bucket are required with --storage s3")

    def make() -> Any:  # on first use, as the engine's storage does (storage/factory.py)
        from botocore.config import Config

        return new_client(client_config(base=Config(s3={"addressing_style": "path"}),
                                        endpoint_url=args.endpoint_url),
                          endpoint_url=args.endpoint_url, region_name=args.region)

    client = LazyClient(make)
    tuning: dict[str, int] = {}
    if args.part_size_mib:
        tuning["part_size"] = args.part_size_mib * 1024 * 1024
    if args.in_flight:
        tuning["in_flight"] = args.in_flight
    return S3Storage(client, args.bucket, **tuning)


def _copy(args: argparse.Namespace, primary: Any, catalog: Any, backup_id: str
          ) -> dict[str, Any]:
    """Copy the backup just taken to a LocalStorage (the copy task's work), timed."""
    from amprenta_backup.core.copy.copier import Copier
    from amprenta_backup.core.storage.local import LocalStorage
    from amprenta_backup.core.storage.rebased import RebasedStorage

    copy = RebasedStorage(LocalStorage(args.copy_root), args.prefix, args.prefix)
    started = time.monotonic()
    outcome = Copier(primary, copy, catalog).run(catalog.get(backup_id))
    return {"copy_s": round(time.monotonic() - started, 4),
            "copy_bytes": outcome.record.stored_bytes, "copy_objects": len(outcome.copied)}


def _keys() -> Any:
    """Encryption as ``BACKUP_ENCRYPTION=key`` does it, with a random master key."""
    import base64

    from amprenta_backup.core.encryption import KeyConfig, KeyService

    master = base64.b64encode(os.urandom(32)).decode()
    return KeyService(KeyConfig(mode="key", key_conn="bench", key_id="bench"),
                      lookup=lambda conn_id: {"password": master, "extra": {}})


def _start_trace() -> tuple[Any, ThreadCpu]:
    threads = ThreadCpu()
    threads.start()
    return record_spans(), threads


def _vm_hwm_kib() -> int | None:
    """VmHWM of this process (its own address space since exec), in KiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    wrapper_dir = _install_pg_dump_wrapper(args.pg_dump_rss) if args.pg_dump_rss else None
    imports_started = time.monotonic()
    if args.phases:
        import _phases

        _phases.install()
    trace: dict[str, Any] = {}
    try:
        from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
        from amprenta_backup.core.catalog import Catalog
        from amprenta_backup.core.layout import make_backup_id
        from amprenta_backup.core.models import RunContext
        from amprenta_backup.core.pgtools import PgConnInfo
        from amprenta_backup.core.pipeline import Compression

        trace["imports_s"] = round(time.monotonic() - imports_started, 4)
        spans, threads = _start_trace() if args.trace else (None, None)
        conn = PgConnInfo(host=args.host, port=args.port, user=args.user, dbname=args.dbname,
                          password=os.environ.get("PGPASSWORD") or None)
        catalog = Catalog(conn.with_database(args.catalog_dbname))
        settings = BackupSettings(prefix=args.prefix, checksum=True,
                                  compression=Compression(enabled=True, level=args.level,
                                                          threads=args.threads),
                                  keys=_keys() if args.encrypt else None,
                                  dump_jobs=args.jobs,
                                  min_table_bytes=args.min_table_mb * 1024 * 1024)
        runner = BackupRunner(_storage(args), catalog, settings)
        backup_id = make_backup_id(datetime.now(UTC))
        started = time.monotonic()
        trace["setup_s"] = round(started - imports_started - trace["imports_s"], 4)
        manifest = runner.run(args.target, conn, RunContext(task_id="bench"), backup_id)
        run_s = time.monotonic() - started
        if threads is not None:
            trace.update(spans=span_seconds(spans), **threads.finish())
        copy = _copy(args, runner.storage, catalog, backup_id) if args.copy_root else {}
    finally:
        if wrapper_dir is not None:
            shutil.rmtree(wrapper_dir, ignore_errors=True)
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "backup_id": backup_id, "key": manifest.key,
        "stored_bytes": manifest.stored_bytes, "raw_bytes": manifest.raw_bytes,
        "sha256": manifest.sha256, "duration_seconds": round(manifest.duration_seconds, 4),
        "run_s": round(run_s, 4), "tables": len(manifest.table_counts),
        "parts": len(manifest.objects()),
        "rows": sum(manifest.table_counts.values()),
        "self_maxrss_kib": own.ru_maxrss, "self_vmhwm_kib": _vm_hwm_kib(),
        "self_user_s": round(own.ru_utime, 3), "self_sys_s": round(own.ru_stime, 3),
        "children_user_s": round(kids.ru_utime, 3), "children_sys_s": round(kids.ru_stime, 3),
        "t0_monotonic": T0, "printed_monotonic": time.monotonic(), **trace, **copy,
        **({"phases": _phases.report(), "lived_s": round(time.monotonic() - T0, 4)}
           if args.phases else {}),
    }), flush=True)
    return 0


def leave(code: int) -> NoReturn:
    """Leave as an Airflow task process does (``supervisor._fork_main``: flush, then
    ``os._exit``): no interpreter teardown, which takes 0.15-0.3 s once boto3 and psycopg
    are loaded and which no task waits for."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
