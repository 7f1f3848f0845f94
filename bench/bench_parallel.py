"""Benchmark parallel logical backups (BACKUP_DUMP_JOBS) on a database of 16 uneven tables.

    python bench/bench_parallel.py [--size-mb 500] [--rounds 3] [--jobs 1,2,4]

Each round runs, in an order rotated from round to round: the raw pipe
``pg_dump -Fc -Z0 | zstd -1 -T2 > file`` and our backup into local storage with each number
of jobs (one stream, then parallel streams on one snapshot). Printed: the median wall of
each, the ratio of each to our single-stream backup in the same round (median over rounds;
target for 2 jobs on 2 cores: at most 0.65x), the stored size against the single stream's
(target at most 1.05x) and the backup process's peak RSS (target 150 MB + 40 MB per extra
job). Not a test; see bench/README.md.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the shared tree

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _bench_results import exit_on_sigterm, save_results  # noqa: E402

HERE = Path(__file__).resolve().parent
SPAWN, CHILD = HERE / "_spawn_measured.py", HERE / "_backup_child.py"
DBNAME, CATALOG_DB = "many16", "catalog"
# 16 uneven tables; scaled to --size-mb (these add up to 500)
SHARES = [96, 72, 60, 48, 40, 36, 30, 26, 22, 18, 14, 12, 10, 8, 5, 3]


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500, help="about the database's size")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds, order rotated")
    parser.add_argument("--jobs", default="1,2,4", help="BACKUP_DUMP_JOBS values to run")
    parser.add_argument("--output", type=Path, help="JSON results (default bench/results/)")
    return parser.parse_args(argv)


def spawn(workdir: Path, argv: list[str], env: dict[str, str], label: str
          ) -> tuple[dict[str, Any], str]:
    """Run ``argv`` under the RSS trampoline; its wait4 record and its stdout."""
    result = workdir / "spawn.jsonl"
    result.unlink(missing_ok=True)
    with open(workdir / f"{label}.log", "wb") as err:
        done = subprocess.run([sys.executable, "-S", "-I", str(SPAWN), str(result), "--",
                               *argv], env=env, stdout=subprocess.PIPE, stderr=err)
    if done.returncode != 0:
        tail = (workdir / f"{label}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{label} failed (rc={done.returncode}):\n{tail}")
    return json.loads(result.read_text().splitlines()[-1]), done.stdout.decode()


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        from amprenta_backup.core.pgtools import tool
        from amprenta_backup.sandbox.cluster import ThrowawayCluster

        self.args, self.workdir = args, workdir
        self.pg_dump = tool("pg_dump")
        self.cluster = ThrowawayCluster()

    def build(self) -> dict[str, Any]:
        from amprenta_backup.sandbox.dataset import load_tables

        self.cluster.start()
        self.cluster.create_database(CATALOG_DB)
        # the primary keys take about a tenth more: size the tables to hit --size-mb
        sizes = [share * self.args.size_mb / sum(SHARES) / 1.1 for share in SHARES]
        note(f"building {DBNAME}: 16 tables of {sizes[-1]:.0f} to {sizes[0]:.0f} MiB")
        started = time.monotonic()
        load_tables(self.cluster, DBNAME, sizes)
        size = int(self.cluster.query("SELECT pg_database_size(current_database())",
                                      DBNAME)[0][0])
        note(f"{DBNAME}: {size:,} bytes in {time.monotonic() - started:.0f} s")
        self.raw_pipe("warm-up")
        return {"size_bytes": size, "tables_mib": [round(s, 1) for s in sizes]}

    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.cluster.env(DBNAME), "PYTHONDONTWRITEBYTECODE": "1"}
        env["PATH"] = f"{Path(self.pg_dump).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def raw_pipe(self, label: str) -> dict[str, Any]:
        out = self.workdir / "raw.pgc.zst"
        script = f"set -o pipefail; {self.pg_dump} -Fc -Z0 | zstd -q -1 -T2 > {out}"
        record, _ = spawn(self.workdir, ["bash", "-c", script], self.env(), label)
        stored = out.stat().st_size
        out.unlink()
        return {"wall_s": record["wall_s"], "stored_bytes": stored}

    def ours(self, jobs: int, label: str) -> dict[str, Any]:
        conn = self.cluster.conninfo(DBNAME)
        root = self.workdir / "storage"
        argv = [sys.executable, str(CHILD), "--host", conn["host"], "--port", str(conn["port"]),
                "--user", conn["user"], "--dbname", DBNAME, "--catalog-dbname", CATALOG_DB,
                "--target", DBNAME, "--storage", "local", "--local-root", str(root),
                "--level", "1", "--threads", "2", "--jobs", str(jobs)]
        record, out = spawn(self.workdir, argv, self.env(), label)
        child = json.loads(out.strip().splitlines()[-1])
        shutil.rmtree(root, ignore_errors=True)
        return {"wall_s": record["wall_s"], "rss_kib": record["maxrss_kib"],
                "stored_bytes": child["stored_bytes"], "parts": child["parts"]}

    def close(self) -> None:
        self.cluster.stop()


def run_rounds(bench: Bench, jobs: list[int]) -> list[dict[str, Any]]:
    variants = ["raw"] + [f"jobs={j}" for j in jobs]
    samples = []
    for round_no in range(bench.args.rounds):
        shift = round_no % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            label = f"{variant}-r{round_no}"
            sample = (bench.raw_pipe(label) if variant == "raw"
                      else bench.ours(int(variant.split("=")[1]), label))
            sample.update(variant=variant, round=round_no, load=os.getloadavg()[0])
            note(f"{label}: {sample['wall_s']:.2f} s, {sample['stored_bytes']:,} B stored"
                 + (f", {sample['parts']} objects, RSS {sample['rss_kib'] / 1024:.0f} MiB"
                    if "parts" in sample else ""))
            samples.append(sample)
    return samples


def report(samples: list[dict[str, Any]], jobs: list[int]) -> dict[str, Any]:
    by = {(s["variant"], s["round"]): s for s in samples}
    rounds = sorted({s["round"] for s in samples})
    rows = {}
    for variant in ["raw"] + [f"jobs={j}" for j in jobs]:
        mine = [by[(variant, r)] for r in rounds]
        single = [by[("jobs=1", r)] for r in rounds]
        rows[variant] = {
            "wall_s": statistics.median(s["wall_s"] for s in mine),
            "wall_vs_single": statistics.median(m["wall_s"] / o["wall_s"]
                                                for m, o in zip(mine, single, strict=True)),
            "stored_vs_single": statistics.median(m["stored_bytes"] / o["stored_bytes"]
                                                  for m, o in zip(mine, single, strict=True)),
            "rss_mib": (statistics.median(s["rss_kib"] for s in mine) / 1024
                        if "rss_kib" in mine[0] else None),
            "objects": mine[0].get("parts"),
        }
    print(f"\n{'variant':<10} {'wall s':>7} {'x single':>9} {'stored x':>9} {'RSS MiB':>8} "
          f"{'objects':>7}  target")
    for variant, row in rows.items():
        job = int(variant.split("=")[1]) if variant != "raw" else 0
        target = (f"wall <= 0.65x, stored <= 1.05x, RSS <= {150 + 40 * (job - 1)} MB"
                  if job == 2 else (f"RSS <= {150 + 40 * (job - 1)} MB" if job else "anchor"))
        rss = f"{row['rss_mib']:.0f}" if row["rss_mib"] is not None else "-"
        print(f"{variant:<10} {row['wall_s']:>7.2f} {row['wall_vs_single']:>8.2f}x "
              f"{row['stored_vs_single']:>8.3f}x {rss:>8} {row['objects'] or '-':>7}  {target}")
    return rows


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)
    jobs = [int(j) for j in args.jobs.split(",")]
    if 1 not in jobs:
        jobs.insert(0, 1)
    workdir = Path(tempfile.mkdtemp(prefix="amprenta-bench-parallel-"))
    bench = Bench(args, workdir)
    try:
        database = bench.build()
        load_before = os.getloadavg()
        samples = run_rounds(bench, jobs)
        rows = report(samples, jobs)
        print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; "
              f"{os.cpu_count()} cores")
        save_results({"database": database, "rows": rows, "samples": samples,
                      "cores": os.cpu_count(), "load_before": load_before,
                      "load_after": os.getloadavg()},
                     args.output or HERE / "results" / f"parallel-{args.size_mb}mb.json")
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
