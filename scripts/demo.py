"""`make demo`: back up a throwaway PostgreSQL database with the real daily_backup DAG
(``airflow dags test``), then print the catalog's record and the next commands to try.

The sandbox (PostgreSQL, and moto for ``--storage s3``) keeps running for those commands;
``--stop`` stops it, ``--no-keep`` stops it at the end of the run."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import RESTORABLE, BackupRecord
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.sandbox.cluster import ClusterBase, SandboxError, ThrowawayCluster
from amprenta_backup.sandbox.container import start_cluster
from amprenta_backup.sandbox.dataset import load_sample
from amprenta_backup.sandbox.s3server import MotoServer

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
LOG = DEMO / "dags-test.log"
ENV_FILE, STATE = DEMO / "env.sh", DEMO / "sandbox.json"  # the CLI's settings; what runs
SOURCE_DB, CATALOG_DB, BUCKET = "amprenta", "backup_catalog", "amprenta-backups"
DAG_ID = "daily_backup"


class DemoError(Exception):
    """The demo failed in a way the message explains."""


@contextmanager
def step(text: str) -> Iterator[None]:
    """Print ``text ...`` then ``ok (1.2 s)`` or ``FAILED`` on the same line."""
    print(f"  {text} ...", end="", flush=True)
    started = time.monotonic()
    try:
        yield
    except BaseException:
        print(" FAILED", flush=True)
        raise
    print(f" ok ({time.monotonic() - started:.1f} s)", flush=True)


def human(n: int | None) -> str:
    size, unit = float(n or 0), 0
    while size >= 1024 and unit < 3:
        size, unit = size / 1024, unit + 1
    return f"{size:.1f} {('B', 'KiB', 'MiB', 'GiB')[unit]}"


def airflow_env(cluster: ClusterBase, moto: MotoServer | None) -> dict[str, str]:
    home = DEMO / "airflow"
    pg = {"conn_type": "postgres", "host": cluster.host, "port": cluster.port,
          "login": cluster.user, "password": cluster.password}  # in the env only, never argv
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "AIRFLOW_CONN_PG_SOURCE": json.dumps({**pg, "schema": SOURCE_DB}),
           "AIRFLOW_CONN_BACKUP_CATALOG": json.dumps({**pg, "schema": CATALOG_DB}),
           "BACKUP_TARGETS": "pg_source", "BACKUP_CATALOG_CONN_ID": "backup_catalog",
           # a demo failure shows at once, not after retry_delay; and no deadline alert:
           # `airflow dags test` 3.3.2 crashes after a run of a DAG that has one
           # (apache/airflow#73428); scheduled runs are not affected
           "BACKUP_TASK_RETRIES": "0", "BACKUP_DEADLINE_HOURS": "0"}
    if moto is None:
        env.update(BACKUP_STORAGE_TYPE="local", BACKUP_LOCAL_PATH=str(DEMO / "backups"))
    else:
        aws = {"conn_type": "aws", "login": moto.access_key, "password": moto.secret_key,
               "extra": {"endpoint_url": moto.endpoint_url, "region_name": moto.region}}
        env.update(BACKUP_STORAGE_TYPE="s3", BACKUP_S3_BUCKET=BUCKET,
                   BACKUP_S3_PREFIX="database/", BACKUP_S3_REGION=moto.region,
                   BACKUP_AWS_CONN_ID="aws_default", AIRFLOW_CONN_AWS_DEFAULT=json.dumps(aws))
    return env


def run_airflow(argv: list[str], env: dict[str, str], log: Any, timeout: float) -> int:
    """Run the airflow CLI in its own process group (killed on any way out), output to ``log``."""
    exe = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    log.write(f"\n$ airflow {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.Popen([exe, *argv], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                return proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise DemoError(f"`airflow {' '.join(argv)}` did not finish in {timeout:.0f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # `airflow dags test` ignores SIGTERM
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def summary(record: BackupRecord) -> str:
    ratio = (record.raw_bytes or 0) / record.stored_bytes if record.stored_bytes else 0.0
    tables = record.manifest.table_counts if record.manifest else {}
    return "\n".join([
        f"Backup {record.backup_id}  [{record.status}]",
        f"  target     {record.target}",
        f"  location   {record.location}",
        f"  stored     {human(record.stored_bytes)} ({record.stored_bytes or 0:,} bytes)",
        f"  raw        {human(record.raw_bytes)} ({record.raw_bytes or 0:,} bytes)",
        f"  ratio      {ratio:.2f}x",
        f"  sha256     {record.sha256 or '-'}",
        f"  duration   {record.duration_seconds or 0:.2f} s",
        f"  tables     {len(tables)} ({sum(tables.values()):,} rows counted at backup time)",
    ])


CLI_VARIABLES = ("AIRFLOW_CONN_PG_SOURCE", "AIRFLOW_CONN_BACKUP_CATALOG", "BACKUP_TARGETS",
                 "BACKUP_CATALOG_CONN_ID", "BACKUP_STORAGE_TYPE", "BACKUP_LOCAL_PATH",
                 "BACKUP_S3_BUCKET", "BACKUP_S3_PREFIX", "BACKUP_S3_REGION", "BACKUP_AWS_CONN_ID",
                 "AIRFLOW_CONN_AWS_DEFAULT")


def write_cli_env(env: dict[str, str]) -> None:
    """The variables the CLI needs, passwords included, in a file only its owner reads."""
    ENV_FILE.unlink(missing_ok=True)
    fd = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# written by scripts/demo.py: the demo sandbox's connections and settings\n")
        out.writelines(f"export {name}={shlex.quote(env[name])}\n"
                       for name in CLI_VARIABLES if name in env)


def next_steps(record: BackupRecord, where: str) -> str:
    """What to try next on the sandbox that keeps running, and the environment it needs."""
    rel = ENV_FILE.relative_to(ROOT)
    return "\n".join([
        f"The sandbox keeps running ({where}); stop it with: "
        ".venv/bin/python scripts/demo.py --stop",
        f"Try the CLI on it; its settings, passwords included, are in {rel} (mode 600):",
        f"  source scripts/env.sh && source {rel}",
        "  amprenta-backup list",
        f"  amprenta-backup verify {record.backup_id}",
        f"  amprenta-backup restore {record.backup_id} --database amprenta_restored --dry-run",
    ])


def stop_kept() -> bool:
    """Stop the sandbox an earlier run kept (its PostgreSQL and moto); False if none."""
    if not STATE.exists():
        return False
    state = json.loads(STATE.read_text())
    ThrowawayCluster(base_dir=Path(state["pg_dir"]), port=int(state["pg_port"])).stop()
    shutil.rmtree(state["pg_dir"], ignore_errors=True)
    if state.get("moto_pid"):
        try:
            os.kill(int(state["moto_pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    STATE.unlink()
    ENV_FILE.unlink(missing_ok=True)
    return True


def keep(cluster: ClusterBase, moto: MotoServer | None) -> str:
    """Leave the servers running after this process exits; say where they are."""
    atexit.unregister(cluster.stop)
    pid = moto._proc.pid if moto is not None and moto._proc is not None else None
    STATE.write_text(json.dumps({"pg_dir": str(DEMO / "pg"), "pg_port": cluster.port,
                                 "moto_pid": pid}))
    where = f"PostgreSQL on {cluster.host}:{cluster.port}"
    return where + (f", moto S3 on {moto.endpoint_url}" if moto is not None else "")


def run(args: argparse.Namespace, stack: ExitStack) -> BackupRecord:
    """Start the sandbox servers (stopped by ``stack`` unless kept), run the DAG, return its
    record."""
    with step("starting a throwaway PostgreSQL cluster"):
        cluster = start_cluster(base_dir=DEMO / "pg")
        stack.callback(cluster.stop)
    with step(f"loading the sample dataset into '{SOURCE_DB}' ({args.rows} rows)"):
        load_sample(cluster, SOURCE_DB, rows=args.rows)
        cluster.create_database(CATALOG_DB)
    moto: MotoServer | None = None
    if args.storage == "s3":
        with step(f"starting moto S3 server, bucket '{BUCKET}'"):
            moto = MotoServer().start()
            stack.callback(moto.stop)
            moto.create_bucket(BUCKET)
    env = airflow_env(cluster, moto)
    write_cli_env(env)
    with LOG.open("w", encoding="utf-8") as log:
        for argv, text in (
            (["db", "migrate"], "airflow db migrate (SQLite metadata in .demo/airflow)"),
            (["dags", "test", DAG_ID],
             f"running DAG {DAG_ID} with `airflow dags test` (log: {LOG.relative_to(ROOT)})"),
        ):
            with step(text):
                rc = run_airflow(argv, env, log, args.timeout)
                if rc != 0:
                    raise DemoError(f"`airflow {' '.join(argv)}` exited with {rc}")
    conn = PgConnInfo(host=cluster.host, port=cluster.port, user=cluster.user,
                      dbname=CATALOG_DB, password=cluster.password)
    records = Catalog(conn).find(target="pg_source", statuses=RESTORABLE, limit=1)
    if not records:
        raise DemoError("the DAG run succeeded but the catalog has no completed backup")
    if args.keep:
        args.kept = keep(cluster, moto)
        stack.pop_all()  # nothing of the sandbox is stopped on the way out
    return records[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", choices=("local", "s3"), default="local")
    parser.add_argument("--rows", type=int, default=2000, help="rows in the main sample tables")
    parser.add_argument("--keep", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the sandbox running for the CLI afterwards (default; "
                             "--no-keep stops it at the end)")
    parser.add_argument("--stop", action="store_true",
                        help="stop the sandbox an earlier run kept, and exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per airflow command")
    args = parser.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # clean up on these, too
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    if stop_kept():
        print("stopped the sandbox an earlier demo kept")
    if args.stop:
        return 0
    for old in (DEMO / "airflow", DEMO / "backups", DEMO / "pg"):
        shutil.rmtree(old, ignore_errors=True)
    (DEMO / "airflow").mkdir(parents=True, exist_ok=True)
    LOG.unlink(missing_ok=True)
    print(f"amprenta-backup demo ({args.storage} storage)")
    try:
        with ExitStack() as stack:
            record = run(args, stack)
            print("\n" + summary(record))
        if args.keep:
            print("\n" + next_steps(record, args.kept))
        else:
            ENV_FILE.unlink(missing_ok=True)
        return 0
    except (DemoError, SandboxError) as exc:
        lines = LOG.read_text(errors="replace").splitlines()[-40:] if LOG.exists() else []
        log_tail = f"\n--- last lines of {LOG} ---\n" + "\n".join(lines) if lines else ""
        print(f"\nDemo FAILED: {exc}{log_tail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
