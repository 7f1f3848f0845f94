"""bench_dashboard: each endpoint of the plugin app against the same SQL run directly.

A throwaway cluster's catalog is filled with --targets targets x --days days of daily
backups (50 x 1095 = 54,750 records by default, with verifies, drills and health results:
sandbox/history.py). Each endpoint is served by uvicorn over HTTP, as Airflow's api-server
serves it; Airflow's login check is left out (one JWT decode, not the catalog's cost). The
"direct" figure replays exactly the statements that endpoint ran (recorded on the catalog)
on one open psycopg connection, fetching every row. Target: endpoint <= 1.5x direct and under
300 ms. Not a test: prints figures and ratios; never fails because a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import uvicorn  # noqa: E402
from _bench_results import exit_on_sigterm, save_results  # noqa: E402

from amprenta_backup.core.catalog import Catalog  # noqa: E402
from amprenta_backup.core.engine import BackupEngine  # noqa: E402
from amprenta_backup.core.pgtools import PgConnInfo  # noqa: E402
from amprenta_backup.core.settings import BackupConfig  # noqa: E402
from amprenta_backup.core.storage import LocalStorage  # noqa: E402
from amprenta_backup.sandbox.cluster import LOCALHOST, ThrowawayCluster, free_port  # noqa: E402
from amprenta_backup.sandbox.history import load_history, make_history  # noqa: E402
from amprenta_backup.web.app import create_app  # noqa: E402
from amprenta_backup.web.auth import require_backup_access  # noqa: E402
from amprenta_backup.web.deps import get_engine  # noqa: E402

ENDPOINTS = ["/backups", "/verifications", "/drills", "/health", "/metrics",
             "/metrics/success-rate", "/metrics/size-duration", "/metrics/storage-trend",
             "/overview", "/dashboard"]


class RecordingCatalog(Catalog):
    """A catalog that writes down every statement its cursors run while ``log`` is a list."""

    log: list[tuple[Any, Any]] | None = None

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with super()._cursor() as cur:
            yield _Recorder(cur, self.log) if self.log is not None else cur


class _Recorder:
    def __init__(self, cur: Any, log: list[tuple[Any, Any]]) -> None:
        self._cur, self._log = cur, log

    def execute(self, query: Any, params: Any = None) -> Any:
        self._log.append((query, params))
        return self._cur.execute(query, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def _median_ms(run: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _serve(engine: BackupEngine) -> tuple[uvicorn.Server, str]:
    app = create_app()
    app.dependency_overrides[get_engine] = lambda: engine
    app.dependency_overrides[require_backup_access] = lambda: None
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOCALHOST, port=port, log_level="warning",
                                           root_path="/api/v1/backup"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://{LOCALHOST}:{port}"


def measure(conn: PgConnInfo, catalog: RecordingCatalog, base: str, repeat: int,
            ) -> list[dict[str, Any]]:
    rows = []
    with httpx.Client(base_url=base, timeout=60) as client, \
            psycopg.connect(**conn.connect_kwargs()) as db:
        for path in ENDPOINTS:
            client.get(path).raise_for_status()  # warm: plans, pools, templates
            catalog.log = []
            answer = client.get(path)
            answer.raise_for_status()
            statements, catalog.log = catalog.log, None

            def direct(statements: list[tuple[Any, Any]] = statements) -> None:
                with db.cursor() as cur:
                    for query, params in statements:
                        cur.execute(query, params)
                        if cur.description:
                            cur.fetchall()

            direct()
            endpoint_ms = _median_ms(lambda p=path: client.get(p).raise_for_status(), repeat)
            direct_ms = _median_ms(direct, repeat)
            rows.append({"endpoint": f"GET /api/v1/backup{path}", "statements": len(statements),
                         "bytes": len(answer.content), "endpoint_ms": round(endpoint_ms, 1),
                         "direct_sql_ms": round(direct_ms, 1),
                         "ratio": round(endpoint_ms / direct_ms, 2) if direct_ms else None})
            print(f"{rows[-1]['endpoint']:<42} {endpoint_ms:8.1f} ms  direct {direct_ms:7.1f} ms"
                  f"  {rows[-1]['ratio']:5.2f}x  ({len(statements)} statements, "
                  f"{len(answer.content):,} bytes)", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--days", type=int, default=1095)
    parser.add_argument("--repeat", type=int, default=7, help="runs per figure (median)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" /
                        "dashboard-55k.json")
    args = parser.parse_args()
    exit_on_sigterm()
    cluster = ThrowawayCluster().start()
    server = None
    try:
        cluster.create_database("catalog")
        info = cluster.conninfo("catalog")
        conn = PgConnInfo(host=info["host"], port=int(info["port"]), user=info["user"],
                          password=info["password"], dbname="catalog")
        catalog = RecordingCatalog(conn, pool_size=4)  # as web/deps.py builds it
        history = make_history(args.targets, args.days, datetime.now(UTC))
        began = time.perf_counter()
        load_history(catalog, history)
        print(f"catalog: {len(history.records):,} backup records, "
              f"{len(history.verifications):,} verifications, {len(history.drills):,} drills, "
              f"{len(history.health):,} health results (loaded in "
              f"{time.perf_counter() - began:.1f} s)", flush=True)
        config = BackupConfig(targets=",".join(f"db{t:03d}" for t in range(args.targets)))
        engine = BackupEngine(config, storage=LocalStorage(cluster.base_dir / "storage"),
                              catalog=catalog)
        server, base = _serve(engine)
        rows = measure(conn, catalog, base, args.repeat)
        worst = max(r["endpoint_ms"] for r in rows)
        print(f"\nslowest endpoint {worst:.1f} ms (target < 300 ms); highest ratio "
              f"{max(r['ratio'] for r in rows):.2f}x (target <= 1.5x)")
        save_results({"records": len(history.records), "targets": args.targets,
                      "days": args.days, "repeat": args.repeat, "endpoints": rows},
                     args.output)
    finally:
        if server is not None:
            server.should_exit = True
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
