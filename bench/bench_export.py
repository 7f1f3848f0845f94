"""Benchmark a project export and import against psql \\copy of the same rows (not a test).

    python bench/bench_export.py [--rows 1000000] [--repeat 2] [--level 1]

One project of about ``--rows`` rows across 11 tables (tests/integration/export/schema.sql:
a self-reference, a cycle, composite keys, a link table, a partitioned table), plus a second
project of 0.1 % of them. Export: ``create_project_export`` (graph walk in the snapshot, COPY
per table into one deflated ZIP in local storage) against one psql session that ``\\copy``s
every table to CSV files. Import: ``import_project`` of the ZIP into an empty database (every
checksum verified, the schema from the export's DDL, one transaction, sequences reset)
against ``psql -1`` of the schema and a ``\\copy`` of every file in dependency order. Targets:
both at most 1.5x.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the shared tree

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _bench_results import exit_on_sigterm, save_results  # noqa: E402

HERE = Path(__file__).resolve().parent
SCHEMA = HERE.parent / "tests" / "integration" / "export" / "schema.sql"
BIG, SMALL = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
TARGET = 1.5
START = time.monotonic()
ORDER = ["ref.statuses", "ref.units", "app.projects", "app.experiments", "app.samples",
         "app.tags", "app.sample_tags", "app.measurements", "app.annotations",
         "app.documents", "app.audit"]
# per 1,000,000 rows: 1,000 experiments, 50,000 samples, 100,000 tag links, 600,000
# measurements, 200,000 annotations, 49,000 documents
_DATA = """
ALTER TABLE app.experiments ALTER CONSTRAINT experiments_lead_sample_id_fkey
    DEFERRABLE INITIALLY DEFERRED;  -- so that plain \\copy can load the cycle
INSERT INTO app.tags (label) SELECT 'tag ' || g FROM generate_series(4, 10) g;
INSERT INTO app.projects VALUES ('{big}', 'big', 1, 0), ('{small}', 'small', 2, 0);
INSERT INTO app.experiments (id, project_id, parent_id, status_id, title)
    SELECT g, CASE WHEN g <= {e} * 999 / 1000 THEN '{big}'::uuid ELSE '{small}'::uuid END,
           CASE WHEN g % 10 <> 1 THEN g - 1 END, 1 + g % 2, 'experiment ' || g
    FROM generate_series(1, {e}) g;
INSERT INTO app.samples (id, experiment_id, label)
    SELECT g, 1 + (g - 1) / 50, md5(g::text) FROM generate_series(1, {e} * 50) g;
UPDATE app.experiments SET lead_sample_id = (id - 1) * 50 + 1;
INSERT INTO app.sample_tags SELECT s, t FROM generate_series(1, {e} * 50) s,
    LATERAL (VALUES (1 + s % 10), (1 + (s + 1) % 10)) v(t);
INSERT INTO app.measurements SELECT 1 + (g - 1) / 12, (g - 1) % 12 + 1,
    CASE WHEN (g - 1) % 12 < 6 THEN date '2025-06-01' ELSE date '2026-02-01' END,
    g * 0.5, CASE WHEN g % 2 = 0 THEN 'mg' ELSE 'ml' END FROM generate_series(1, {e} * 600) g;
INSERT INTO app.annotations (sample_id, seq, taken_on, note)
    SELECT s, q, date '2025-06-01', md5(s::text || q) FROM generate_series(1, {e} * 50) s,
    generate_series(1, 4) q;
INSERT INTO app.documents (experiment_id, path)
    SELECT 1 + (g - 1) / 49, 'docs/' || g FROM generate_series(1, {e} * 49) g;
INSERT INTO app.audit VALUES ('{big}', 'created'), ('{small}', 'created');
SELECT setval('app.experiments_id_seq', {e}), setval('app.samples_id_seq', {e} * 50);
ANALYZE;
"""


def note(message: str) -> None:
    print(f"[{time.monotonic() - START:7.1f}s] {message}", file=sys.stderr, flush=True)


class Bench:
    """A throwaway cluster with the project database, local storage and a catalog."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="amprenta-bench-export-"))
        self.cluster: Any = None
        self.count = 0
        self.last: dict[str, Any] = {}

    def start(self) -> None:
        from amprenta_backup.sandbox.cluster import ThrowawayCluster

        note("starting a throwaway PostgreSQL cluster")
        self.cluster = ThrowawayCluster().start()
        self.cluster.create_database("catalog")
        self.cluster.create_database("projects")
        began = time.monotonic()
        self.cluster.execute(SCHEMA.read_text(), dbname="projects")
        self.cluster.execute(_DATA.format(big=BIG, small=SMALL, e=self.args.rows // 1000),
                             dbname="projects")
        rows = self.cluster.query("SELECT sum(n_live_tup) FROM pg_stat_user_tables",
                                  dbname="projects")[0][0]
        note(f"built the project database: {rows} rows in {time.monotonic() - began:.1f} s")

    def conn(self, dbname: str) -> Any:
        from amprenta_backup.core.pgtools import PgConnInfo

        info = self.cluster.conninfo(dbname)
        return PgConnInfo(host=info["host"], port=int(info["port"]), user=info["user"],
                          dbname=dbname, password=info["password"])

    def engine(self) -> Any:
        from amprenta_backup.core.catalog import Catalog
        from amprenta_backup.core.engine import BackupEngine
        from amprenta_backup.core.settings import BackupConfig
        from amprenta_backup.core.settings.project import ProjectSettings
        from amprenta_backup.core.storage import LocalStorage

        engine = BackupEngine(config=BackupConfig(targets=()),
                              storage=LocalStorage(self.work / "storage"),
                              catalog=Catalog(self.conn("catalog")),
                              resolve=lambda _c, db: self.conn(db or "projects"))
        engine.project_settings = ProjectSettings(root="app.projects.id", source="projects",
                                                  compression_level=self.args.level)
        return engine

    def new_database(self) -> str:
        self.count += 1
        name = f"target_{self.count}"
        self.cluster.create_database(name)
        return name

    def psql(self, dbname: str, script: str, single: bool = False) -> float:
        from amprenta_backup.core.pgtools import tool

        path = self.work / "script.sql"
        path.write_text(script)
        argv = [tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", *(["-1"] if single else []),
                "-f", str(path)]
        began = time.monotonic()
        subprocess.run(argv, env=self.conn(dbname).env(), check=True)
        return time.monotonic() - began

    def raw_out(self) -> float:
        folder = self.work / "raw"
        folder.mkdir(exist_ok=True)
        return self.psql("projects", "".join(
            f"\\copy (SELECT * FROM {t}) TO '{folder / t}.csv' (FORMAT csv, HEADER)\n"
            for t in ORDER))

    def raw_out_filtered(self) -> float:
        """``\\copy`` of each table's rows of the project, selected by hand-written joins
        (tests/integration/export/oracle.py): what a person copying one project writes."""
        sys.path.insert(0, str(HERE.parent))
        from tests.integration.export.oracle import EXPECTED

        folder = self.work / "filtered"
        folder.mkdir(exist_ok=True)
        return self.psql("projects", "".join(
            f"\\copy ({' '.join(EXPECTED[t].replace('%(p)s', repr(BIG)).split())}) TO "
            f"'{folder / t}.csv' (FORMAT csv, HEADER)\n" for t in ORDER))

    def raw_in(self) -> float:
        ddl = self.work / "schema.sql"
        if not ddl.exists():
            ddl.write_text(SCHEMA.read_text().split("INSERT INTO", 1)[0] + (
                "ALTER TABLE app.experiments ALTER CONSTRAINT experiments_lead_sample_id_fkey"
                " DEFERRABLE INITIALLY DEFERRED;\n"))
        script = f"\\i {ddl}\n" + "".join(
            f"\\copy {t} FROM '{self.work / 'raw' / t}.csv' (FORMAT csv, HEADER)\n"
            for t in ORDER)
        return self.psql(self.new_database(), script, single=True)

    def ours_out(self) -> float:
        engine = self.engine()
        began = time.monotonic()
        result = engine.create_project_export(project_ids=[BIG], include_files=False)
        took = time.monotonic() - began
        self.last = result
        engine.project_exports().download(result["export_id"], self.work / "export.zip")
        return took

    def ours_in(self) -> float:
        engine = self.engine()
        target = self.new_database()
        began = time.monotonic()
        engine.import_project(self.work / "export.zip", target)
        return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--level", type=int, default=1, help="deflate level (0: stored)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    exit_on_sigterm()
    bench = Bench(args)
    times: dict[str, list[float]] = {"raw_out": [], "filtered_out": [], "ours_out": [],
                                     "raw_in": [], "ours_in": [], "load": []}
    try:
        bench.start()
        result: dict[str, Any] = {}
        for n in range(args.repeat):
            times["load"].append(os.getloadavg()[0])
            steps = [("raw_out", bench.raw_out), ("filtered_out", bench.raw_out_filtered),
                     ("ours_out", bench.ours_out)]
            for name, step in _rotated(steps, n):
                times[name].append(step())
                note(f"round {n + 1}: {name} {times[name][-1]:.2f} s")
            result = bench.last
            steps = [("raw_in", bench.raw_in), ("ours_in", bench.ours_in)]
            for name, step in _rotated(steps, n):
                times[name].append(step())
                note(f"round {n + 1}: {name} {times[name][-1]:.2f} s")
    finally:
        if bench.cluster is not None:
            bench.cluster.stop()
        shutil.rmtree(bench.work, ignore_errors=True)  # the CSV files and ZIPs of the rounds
    report(args, times, result)


def _rotated(steps: list[Any], n: int) -> list[Any]:
    """``steps`` rotated by ``n``: each goes first in turn (machine load drifts)."""
    return steps[n % len(steps):] + steps[:n % len(steps)]


def report(args: argparse.Namespace, times: dict[str, list[float]],
           result: dict[str, Any]) -> None:
    median = {k: statistics.median(v) for k, v in times.items()}
    pairs = {"export": ("ours_out", "raw_out"), "export_vs_filtered": ("ours_out", "filtered_out"),
             "import": ("ours_in", "raw_in")}
    per_round = {what: [o / r for o, r in zip(times[ours], times[raw], strict=True)]
                 for what, (ours, raw) in pairs.items()}
    ratios = {what: statistics.median(v) for what, v in per_round.items()}
    print(f"\nproject of {result.get('row_count')} rows in {len(result.get('rows', {}))} "
          f"tables; ZIP {result.get('size_bytes', 0) / 2**20:.1f} MiB (deflate level "
          f"{args.level}); medians of {args.repeat} rounds")
    for name, label in (("raw_out", "psql \\copy out of whole tables"),
                        ("filtered_out", "psql \\copy out, rows chosen by joins"),
                        ("ours_out", "create_project_export"),
                        ("raw_in", "psql -1: schema + \\copy in"),
                        ("ours_in", "import_project (verify + schema + load)")):
        print(f"  {label:42} {median[name]:7.2f} s   {times[name]}")
    print(f"  export phases (last round): {result.get('seconds')}")
    print(f"  load (1-minute average at each round's start): {times['load']}")
    for what, ratio in ratios.items():
        rounds = ", ".join(f"{r:.2f}" for r in per_round[what])
        print(f"  {what}: {ratio:.2f}x, median of the rounds' ratios ({rounds}); target at "
              f"most {TARGET}x")
    save_results({"when": datetime.now(UTC).isoformat(), "rows": result.get("row_count"),
                  "zip_bytes": result.get("size_bytes"), "level": args.level, "times": times,
                  "medians": median, "ratios": ratios, "ratios_per_round": per_round,
                  "target": TARGET},
                 args.output or HERE / "results" / f"export-{args.rows // 1000}k.json")


if __name__ == "__main__":
    main()
