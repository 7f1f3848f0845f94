"""bench_dashboard: each endpoint of the plugin app against the same SQL run directly.

A throwaway cluster's catalog is filled with --targets targets x --days days of daily
backups (50 x 1095 = 54,750 records by default, with verifies, drills and health results:
sandbox/history.py). Each endpoint is served by uvicorn over HTTP, as Airflow's api-server
serves it; Airflow's login check is left out (one JWT decode, not the catalog's cost). The
"direct" figure replays exactly the statements that endpoint ran (recorded on the catalog)
on one open psycopg connection, fetching every row and committing (the endpoint runs them in
one transaction too). Each endpoint is measured in paired rounds, the endpoint first and the
SQL first in turn, and each side's median is reported with the machine's load. The first
request of each endpoint is reported apart (``first_request_ms``: the page draws its charts
then; later requests with the same points reuse them). Target: endpoint <= 1.5x direct and
under 300 ms. Not a test: prints figures and ratios; never fails because a target is missed.
"""

from __future__ import annotations

import argparse
import os
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


def _ms(run: Any) -> float:
    began = time.perf_counter()
    run()
    return (time.perf_counter() - began) * 1000


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


def _recorded(client: httpx.Client, catalog: RecordingCatalog, path: str,
              ) -> tuple[httpx.Response, list[tuple[Any, Any]], float]:
    """One request with every statement it ran written down; its time (the first request of
    the page draws its charts: ``cold``)."""
    catalog.log = []
    began = time.perf_counter()
    answer = client.get(path)
    cold = (time.perf_counter() - began) * 1000
    answer.raise_for_status()
    statements, catalog.log = catalog.log, None
    return answer, statements, cold


def measure(conn: PgConnInfo, catalog: RecordingCatalog, base: str, rounds: int,
            ) -> list[dict[str, Any]]:
    """Per endpoint, ``rounds`` paired rounds (the endpoint then its SQL, or the SQL then the
    endpoint, in turn); the medians of each side and their ratio."""
    rows = []
    with httpx.Client(base_url=base, timeout=60) as client, \
            psycopg.connect(**conn.connect_kwargs()) as db:
        client.get("/docs").raise_for_status()
        floor = statistics.median(_ms(lambda: client.get("/docs").raise_for_status())
                                  for _ in range(rounds))
        print(f"HTTP floor (GET /docs of the same app, no catalog): {floor:.1f} ms", flush=True)
        rows.append({"endpoint": "GET /api/v1/backup/docs (HTTP floor, no SQL)",
                     "endpoint_ms": round(floor, 1), "load": round(os.getloadavg()[0], 1)})
        for path in ENDPOINTS:
            answer, statements, cold = _recorded(client, catalog, path)

            def direct(statements: list[tuple[Any, Any]] = statements) -> None:
                with db.cursor() as cur:
                    for query, params in statements:
                        cur.execute(query, params)
                        if cur.description:
                            cur.fetchall()
                db.commit()

            def endpoint(p: str = path) -> None:
                client.get(p).raise_for_status()

            direct()
            endpoint()  # warm: plans, pools, templates
            ours, theirs = [], []
            for i in range(rounds):
                pair = (endpoint, direct) if i % 2 == 0 else (direct, endpoint)
                first, second = _ms(pair[0]), _ms(pair[1])
                ours.append(first if i % 2 == 0 else second)
                theirs.append(second if i % 2 == 0 else first)
            endpoint_ms, direct_ms = statistics.median(ours), statistics.median(theirs)
            rows.append({"endpoint": f"GET /api/v1/backup{path}", "statements": len(statements),
                         "bytes": len(answer.content), "first_request_ms": round(cold, 1),
                         "endpoint_ms": round(endpoint_ms, 1),
                         "direct_sql_ms": round(direct_ms, 1),
                         "ratio": round(endpoint_ms / direct_ms, 2) if direct_ms else None,
                         "load": round(os.getloadavg()[0], 1)})
            print(f"{rows[-1]['endpoint']:<42} {endpoint_ms:8.1f} ms  direct {direct_ms:7.1f} ms"
                  f"  {rows[-1]['ratio']:5.2f}x  first {cold:7.1f} ms  ({len(statements)} "
                  f"statements, {len(answer.content):,} bytes, load {rows[-1]['load']})",
                  flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--days", type=int, default=1095)
    parser.add_argument("--rounds", type=int, default=15,
                        help="paired, order-rotated rounds per endpoint (medians)")
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
        print(f"catalog: {len(history.records):,} backup records, {len(history.copies):,} "
              "copies, "
              f"{len(history.verifications):,} verifications, {len(history.drills):,} drills, "
              f"{len(history.health):,} health results (loaded in "
              f"{time.perf_counter() - began:.1f} s)", flush=True)
        config = BackupConfig(targets=",".join(f"db{t:03d}" for t in range(args.targets)))
        engine = BackupEngine(config, storage=LocalStorage(cluster.base_dir / "storage"),
                              catalog=catalog)
        server, base = _serve(engine)
        load_before = os.getloadavg()
        rows = measure(conn, catalog, base, args.rounds)
        measured = [r for r in rows if "ratio" in r]
        worst = max(r["endpoint_ms"] for r in measured)
        print(f"\nslowest endpoint {worst:.1f} ms (target < 300 ms); highest ratio "
              f"{max(r['ratio'] for r in measured):.2f}x (target <= 1.5x)")
        save_results({"records": len(history.records), "copies": len(history.copies),
                      "targets": args.targets, "days": args.days, "rounds": args.rounds,
                      "load_before": [round(x, 1) for x in load_before],
                      "load_after": [round(x, 1) for x in os.getloadavg()],
                      "cpus": os.cpu_count(), "endpoints": rows}, args.output)
    finally:
        if server is not None:
            server.should_exit = True
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
