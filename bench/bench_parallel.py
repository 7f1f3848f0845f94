"""Benchmark parallel logical backups (BACKUP_DUMP_JOBS) on a database of 16 uneven tables.

    python bench/bench_parallel.py [--size-mb 500] [--rounds 3] [--jobs 1,2,4]

Each round runs, in an order rotated from round to round: the raw pipe
``pg_dump -Fc -Z0 | zstd -1 -T2 > file``, the same by hand in two streams on one exported
snapshot (``raw2``: one ``pg_dump -Fc -Z0 --snapshot | zstd -1 -T1 > file`` per stream of our
2-job split, both at once) and our backup into local storage with each number of jobs (one
stream, then parallel streams on one snapshot). Printed: the median wall of
each, the ratio of each to our single-stream backup in the same round (median over rounds;
target for 2 jobs on 2 cores: at most 0.65x), the stored size against the single stream's
(target at most 1.05x) and the backup process's peak RSS (target 150 MB + 40 MB per extra
job). Not a test; see bench/README.md.

Beside each wall: the core-seconds it used (the server's backends, every ``pg_dump``, our
Python process with its zstd threads, the raw pipe's ``zstd``; and the whole machine from
``/proc/stat``) and the CPU floor, those core-seconds over the cores: no schedule of that work
on this machine ends sooner. With ``--trace-rounds`` (default 1) each jobs value runs once
more, traced: the engine's step spans, Python vs zstd threads, start-up and imports, the
start and wall of every ``pg_dump`` stream (not in the ratios).
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the shared tree

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _bench_cpu import machine_busy_s, proc_cpu  # noqa: E402
from _bench_results import exit_on_sigterm, save_results  # noqa: E402

HERE = Path(__file__).resolve().parent
SPAWN, CHILD = HERE / "_spawn_measured.py", HERE / "_backup_child.py"
DBNAME, CATALOG_DB = "many16", "catalog"
# 16 uneven tables; scaled to --size-mb (these add up to 500)
SHARES = [96, 72, 60, 48, 40, 36, 30, 26, 22, 18, 14, 12, 10, 8, 5, 3]
CORES = len(os.sched_getaffinity(0))
CPU_KEYS = ("server_s", "pg_dump_s", "py_s", "zstd_s")


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500, help="about the database's size")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds, order rotated")
    parser.add_argument("--jobs", default="1,2,4",
                        help="BACKUP_DUMP_JOBS values to run; JtT runs J jobs with T zstd "
                        "threads in all (default 2, shared out between the streams), e.g. 2t0")
    parser.add_argument("--trace-rounds", type=int, default=1,
                        help="traced runs per jobs value after the rounds (steps, threads)")
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
        self.tables: list[str] = []
        self.plan: Any = None  # the 2-stream split of the raw two-stream pipe

    def build(self) -> dict[str, Any]:
        from amprenta_backup.sandbox.dataset import load_tables

        self.cluster.start()
        self.cluster.create_database(CATALOG_DB)
        # the primary keys take about a tenth more: size the tables to hit --size-mb
        sizes = [share * self.args.size_mb / sum(SHARES) / 1.1 for share in SHARES]
        note(f"building {DBNAME}: 16 tables of {sizes[-1]:.0f} to {sizes[0]:.0f} MiB")
        started = time.monotonic()
        self.tables = load_tables(self.cluster, DBNAME, sizes)
        size = int(self.cluster.query("SELECT pg_database_size(current_database())",
                                      DBNAME)[0][0])
        note(f"{DBNAME}: {size:,} bytes in {time.monotonic() - started:.0f} s")
        self.plan = self.two_streams()
        self.raw_pipe("warm-up")
        counted = self.measured(self.count_all)
        note(f"count(*) of every table (what the row counts cost the server): "
             f"{counted['wall_s']:.2f} s, {counted['cpu']['server_s']:.2f} core-s")
        return {"size_bytes": size, "tables_mib": [round(s, 1) for s in sizes],
                "count_all": counted}

    def count_all(self) -> dict[str, Any]:
        """One ``count(*)`` of every table, as the backup's row counter runs them."""
        query = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in self.tables)
        started = time.monotonic()
        self.cluster.query(query, DBNAME)
        return {"wall_s": round(time.monotonic() - started, 4)}

    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.cluster.env(DBNAME), "PYTHONDONTWRITEBYTECODE": "1"}
        env["PATH"] = f"{Path(self.pg_dump).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def measured(self, run: Any) -> dict[str, Any]:
        """``run()``'s sample with the core-seconds of the server's backends and of the
        whole machine during it added to its ``cpu``."""
        server, machine = proc_cpu(self.cluster.server_pid(), True), machine_busy_s()
        sample: dict[str, Any] = run()
        time.sleep(0.2)  # let the postmaster reap the run's backends before reading CPU
        cpu = sample.setdefault("cpu", {})
        cpu["server_s"] = round(proc_cpu(self.cluster.server_pid(), True) - server, 3)
        cpu["machine_s"] = round(machine_busy_s() - machine, 3)
        return sample

    def raw_pipe(self, label: str) -> dict[str, Any]:
        out, dumps = self.workdir / "raw.pgc.zst", self.workdir / "raw-pg_dump.jsonl"
        dumps.unlink(missing_ok=True)
        measured = f"{sys.executable} -S -I {SPAWN} {dumps} -- {self.pg_dump}"
        script = f"set -o pipefail; {measured} -Fc -Z0 | zstd -q -1 -T2 > {out}"
        record, _ = spawn(self.workdir, ["bash", "-c", script], self.env(), label)
        stored = out.stat().st_size
        out.unlink()
        dump = _cpu_s(_jsonl(dumps)[0])
        return {"wall_s": record["wall_s"], "stored_bytes": stored,
                "cpu": {"pg_dump_s": dump, "zstd_s": round(_cpu_s(record) - dump, 3)}}

    def two_streams(self) -> Any:
        """Our 2-job split of the tables (the engine's plan); at sizes where no two tables are
        sizeable (a small run) every table counts, so that the raw pipe still has 2 streams."""
        from amprenta_backup.core.backup.parallel import plan_dump, read_tables
        from amprenta_backup.core.constants import DEFAULT_DUMP_MIN_TABLE_MB

        with self.cluster.connect(DBNAME) as db:
            tables = read_tables(db)
        plan = plan_dump(tables, 2, DEFAULT_DUMP_MIN_TABLE_MB * 2**20)
        return plan if plan.parallel else plan_dump(tables, 2, 1)

    def raw_streams(self, label: str) -> dict[str, Any]:
        """The hand-written parallel pipe: ``pg_dump -Fc -Z0 | zstd -q -1 -T1 > file`` per
        stream of :meth:`two_streams` (the engine's ``pg_dump`` arguments for each stream), all
        at once on one snapshot exported by a transaction held open meanwhile."""
        import psycopg

        from amprenta_backup.core.backup.parallel import ParallelDump
        from amprenta_backup.core.pgtools import pg_dump_argv
        from amprenta_backup.core.pipeline import Compression

        dumps = self.workdir / "raw-pg_dump.jsonl"
        dumps.unlink(missing_ok=True)
        outs = [self.workdir / f"raw2-{i}.pgc.zst" for i in range(len(self.plan.groups))]
        with self.cluster.connect(DBNAME, autocommit=False) as db:
            db.isolation_level, db.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
            snapshot = str(db.execute("SELECT pg_export_snapshot()").fetchone()[0])
            base = [sys.executable, "-S", "-I", str(SPAWN), str(dumps), "--",
                    *pg_dump_argv(snapshot=snapshot, binary=self.pg_dump)]
            dump = ParallelDump(None, Compression(), True, None, None)  # for its argv only
            streams = dump.streams(self.plan, base, "raw2")
            pipes = [f"({shlex.join(s.argv)} | zstd -q -1 -T1 > {o}) & p{i}=$!"
                     for i, (s, o) in enumerate(zip(streams, outs, strict=True))]
            waits = "; ".join(f"wait $p{i} || rc=1" for i in range(len(pipes)))
            script = f"set -o pipefail; rc=0; {'; '.join(pipes)}; {waits}; exit $rc"
            record, _ = spawn(self.workdir, ["bash", "-c", script], self.env(), label)
        stored = sum(o.stat().st_size for o in outs)
        for out in outs:
            out.unlink()
        dumped = sum(_cpu_s(d) for d in _jsonl(dumps))
        return {"wall_s": record["wall_s"], "stored_bytes": stored, "parts": len(outs),
                "cpu": {"pg_dump_s": round(dumped, 3),
                        "zstd_s": round(_cpu_s(record) - dumped, 3)}}

    def ours(self, spec: str, label: str, trace: bool = False) -> dict[str, Any]:
        jobs, _, threads = spec.partition("t")
        conn = self.cluster.conninfo(DBNAME)
        root, dumps = self.workdir / "storage", self.workdir / "pg_dump.jsonl"
        dumps.unlink(missing_ok=True)
        argv = [sys.executable, str(CHILD), "--host", conn["host"], "--port", str(conn["port"]),
                "--user", conn["user"], "--dbname", DBNAME, "--catalog-dbname", CATALOG_DB,
                "--target", DBNAME, "--storage", "local", "--local-root", str(root),
                "--level", "1", "--threads", threads or "2", "--jobs", jobs,
                "--pg-dump-rss", str(dumps)] + (["--trace"] if trace else [])
        record, out = spawn(self.workdir, argv, self.env(), label)
        child = json.loads(out.strip().splitlines()[-1])
        shutil.rmtree(root, ignore_errors=True)
        streams = _jsonl(dumps)
        sample = {"wall_s": record["wall_s"], "rss_kib": record["maxrss_kib"],
                  "stored_bytes": child["stored_bytes"], "parts": child["parts"],
                  "run_s": child["run_s"],
                  "cpu": {"pg_dump_s": round(sum(_cpu_s(d) for d in streams), 3),
                          "py_s": round(child["self_user_s"] + child["self_sys_s"], 3)},
                  "streams": [{"start_s": round(d["start_monotonic"] - record["start_monotonic"],
                                                3), "wall_s": d["wall_s"], "cpu_s": _cpu_s(d),
                               "data_only": d.get("data_only", False)}
                              for d in streams if d["wall_s"] > 0.1]}  # not pg_dump --version
        if trace:
            ended = record["start_monotonic"] + record["wall_s"]
            sample["trace"] = {
                "startup_s": round(child["t0_monotonic"] - record["start_monotonic"], 4),
                "exit_s": round(ended - child["printed_monotonic"], 4),
                **{k: child[k] for k in ("imports_s", "setup_s", "spans", "py_threads_s",
                                         "native_threads_s")}}
        return sample

    def close(self) -> None:
        self.cluster.stop()


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cpu_s(record: dict[str, Any]) -> float:
    return round(float(record["user_s"]) + float(record["sys_s"]), 3)


RAW = ("raw", "raw2")  # the raw pipe in one stream and in two


def run_rounds(bench: Bench, jobs: list[str]) -> list[dict[str, Any]]:
    variants = [*RAW, *(f"jobs={j}" for j in jobs)]
    run = {"raw": bench.raw_pipe, "raw2": bench.raw_streams}
    samples = []
    for round_no in range(bench.args.rounds):
        shift = round_no % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            label = f"{variant}-r{round_no}"
            sample = bench.measured(lambda v=variant, lb=label: (
                run[v](lb) if v in run else bench.ours(v.split("=")[1], lb)))
            sample.update(variant=variant, round=round_no, load=os.getloadavg()[0])
            note(f"{label}: {sample['wall_s']:.2f} s, {sample['stored_bytes']:,} B stored, "
                 f"{_own_cpu(sample):.2f} core-s (machine {sample['cpu']['machine_s']:.2f})"
                 + (f", {sample['parts']} objects, RSS {sample['rss_kib'] / 1024:.0f} MiB"
                    if "rss_kib" in sample else ""))
            samples.append(sample)
    return samples


def traced_runs(bench: Bench, jobs: list[str]) -> list[dict[str, Any]]:
    """Each jobs value once more per trace round, with the child's steps and threads."""
    found = []
    for round_no in range(bench.args.trace_rounds):
        for job in jobs:
            label = f"traced-jobs={job}-r{round_no}"
            sample = bench.measured(lambda j=job, lb=label: bench.ours(j, lb, trace=True))
            sample.update(variant=f"jobs={job}", round=round_no, load=os.getloadavg()[0])
            note(f"{label}: {sample['wall_s']:.2f} s, steps {sample['trace']['spans']}")
            found.append(sample)
    return found


def _own_cpu(sample: dict[str, Any]) -> float:
    """Core-seconds of the run's own processes: server backends, pg_dump, ours, zstd."""
    return float(sum(sample["cpu"].get(k, 0.0) for k in CPU_KEYS))


def stream_times(sample: dict[str, Any]) -> dict[str, float]:
    """Where a backup's wall went around its ``pg_dump`` streams: ``start_s`` until the first
    one started (our start-up, imports, catalog, snapshot), ``tail_s`` from the first one's end
    to the last one's (fewer streams than jobs ran), ``end_s`` after the last one."""
    ends = [s["start_s"] + s["wall_s"] for s in sample["streams"]]
    return {"start_s": min(s["start_s"] for s in sample["streams"]),
            "tail_s": max(ends) - min(ends), "end_s": sample["wall_s"] - max(ends)}


def _per_round(mine: list[dict[str, Any]], other: list[dict[str, Any]], key: str) -> float:
    """The median over the rounds of ``mine``'s ``key`` over ``other``'s in the same round."""
    return statistics.median(m[key] / o[key] for m, o in zip(mine, other, strict=True))


def report(samples: list[dict[str, Any]], jobs: list[str]) -> dict[str, Any]:
    by = {(s["variant"], s["round"]): s for s in samples}
    rounds = sorted({s["round"] for s in samples})
    rows = {}
    for variant in [*RAW, *(f"jobs={j}" for j in jobs)]:
        mine = [by[(variant, r)] for r in rounds]
        single = [by[("jobs=1", r)] for r in rounds]
        rows[variant] = {
            "wall_s": statistics.median(s["wall_s"] for s in mine),
            "wall_vs_single": _per_round(mine, single, "wall_s"),
            "wall_vs_raw": _per_round(mine, [by[("raw", r)] for r in rounds], "wall_s"),
            "stored_vs_single": _per_round(mine, single, "stored_bytes"),
            "rss_mib": (statistics.median(s["rss_kib"] for s in mine) / 1024
                        if "rss_kib" in mine[0] else None),
            "objects": mine[0].get("parts"),
            "cpu": {k: statistics.median(s["cpu"].get(k, 0.0) for s in mine)
                    for k in (*CPU_KEYS, "machine_s")},
            "own_core_s": statistics.median(_own_cpu(s) for s in mine),
            # other work on the machine meanwhile (other sessions' tests): ratios of rounds
            # where it is large compare disturbed walls
            "others_core_s": statistics.median(s["cpu"]["machine_s"] - _own_cpu(s)
                                               for s in mine),
            "floor_s": statistics.median(_own_cpu(s) / CORES for s in mine),
            "wall_vs_floor": statistics.median(s["wall_s"] / (_own_cpu(s) / CORES)
                                               for s in mine),
            "floor_vs_single": statistics.median(_own_cpu(m) / CORES / o["wall_s"]
                                                 for m, o in zip(mine, single, strict=True)),
            **({k: statistics.median(stream_times(s)[k] for s in mine)
                for k in ("start_s", "tail_s", "end_s")} if "streams" in mine[0] else {}),
        }
    print(f"\n{'variant':<10} {'wall s':>7} {'x single':>9} {'stored x':>9} {'RSS MiB':>8} "
          f"{'objects':>7}  target")
    for variant, row in rows.items():
        job = int(variant.split("=")[1].partition("t")[0]) if variant not in RAW else 0
        target = (f"wall <= 0.65x, stored <= 1.05x, RSS <= {150 + 40 * (job - 1)} MB"
                  if job == 2 else (f"RSS <= {150 + 40 * (job - 1)} MB" if job else "anchor"))
        rss = f"{row['rss_mib']:.0f}" if row["rss_mib"] is not None else "-"
        print(f"{variant:<10} {row['wall_s']:>7.2f} {row['wall_vs_single']:>8.2f}x "
              f"{row['stored_vs_single']:>8.3f}x {rss:>8} {row['objects'] or '-':>7}  {target}")
    print_cpu(rows)
    return rows


def print_cpu(rows: dict[str, dict[str, Any]]) -> None:
    """Where the core-seconds went, and the floor they set on the wall."""
    print(f"\ncore-seconds (medians) on {CORES} cores; floor = own core-s / {CORES}; others = "
          "machine - own (other work meanwhile)")
    print(f"{'variant':<10} {'server':>7} {'pg_dump':>8} {'py':>6} {'zstd':>6} {'own':>6} "
          f"{'machine':>8} {'others':>7} {'floor s':>8} {'wall s':>7} {'wall/floor':>10}")
    for variant, row in rows.items():
        cpu = row["cpu"]
        print(f"{variant:<10} {cpu['server_s']:>7.2f} {cpu['pg_dump_s']:>8.2f} "
              f"{cpu['py_s']:>6.2f} {cpu['zstd_s']:>6.2f} {row['own_core_s']:>6.2f} "
              f"{cpu['machine_s']:>8.2f} {row['others_core_s']:>7.2f} {row['floor_s']:>8.2f} "
              f"{row['wall_s']:>7.2f} "
              f"{row['wall_vs_floor']:>9.2f}x")
    single, two = rows.get("jobs=1"), rows.get("jobs=2")
    if single and two:
        print(f"0.65x of one stream is {0.65 * single['wall_s']:.2f} s; the CPU floor of 2 "
              f"jobs is {two['floor_s']:.2f} s ({two['floor_vs_single']:.2f}x of one stream, "
              f"median of the rounds); the raw pipe in 2 streams ran "
              f"{rows['raw2']['wall_vs_raw']:.2f}x of the raw pipe in one, "
              f"{rows['raw2']['wall_vs_single']:.2f}x of our one stream")
    print(f"\naround the pg_dump streams (medians, s): {'variant':<10} {'start':>6} "
          f"{'tail':>6} {'end':>6}")
    for variant, row in rows.items():
        if "start_s" in row:
            print(f"{'':41}{variant:<10} {row['start_s']:>6.2f} {row['tail_s']:>6.2f} "
                  f"{row['end_s']:>6.2f}")


def print_traced(traced: list[dict[str, Any]]) -> None:
    """The traced runs: start-up, steps, threads, streams."""
    for sample in traced:
        trace = sample["trace"]
        print(f"\ntraced {sample['variant']}: wall {sample['wall_s']:.2f} s, run() "
              f"{sample['run_s']:.2f} s, start-up {trace['startup_s']:.2f} s, imports "
              f"{trace['imports_s']:.2f} s, set-up {trace['setup_s']:.2f} s, exit "
              f"{trace['exit_s']:.2f} s; Python threads {trace['py_threads_s']:.2f} "
              f"core-s, zstd threads {trace['native_threads_s']:.2f} core-s")
        print("  steps: " + ", ".join(f"{k.removeprefix('backup.')} {v:.3f}"
                                      for k, v in trace["spans"].items()))
        serial, own = sample["wall_s"] - trace["spans"]["backup.dump"], _own_cpu(sample)
        print(f"  outside the dump step {serial:.2f} s (one after another); floor with them: "
              f"{serial:.2f} + ({own:.2f} - {serial:.2f}) core-s / {CORES} = "
              f"{serial + max(own - serial, 0) / CORES:.2f} s (the outside at one full core)")
        print("  pg_dump streams (start s, wall s, core-s): " + "; ".join(
            f"{'data' if s['data_only'] else 'whole'} {s['start_s']:.2f} {s['wall_s']:.2f} "
            f"{s['cpu_s']:.2f}" for s in sample["streams"]))


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)
    jobs = [j.strip() for j in args.jobs.split(",")]
    if "1" not in jobs:
        jobs.insert(0, "1")
    workdir = Path(tempfile.mkdtemp(prefix="amprenta-bench-parallel-"))
    bench = Bench(args, workdir)
    try:
        database = bench.build()
        load_before = os.getloadavg()
        samples = run_rounds(bench, jobs)
        traced = traced_runs(bench, jobs)
        rows = report(samples, jobs)
        print_traced(traced)
        print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; "
              f"{os.cpu_count()} cores")
        save_results({"database": database, "rows": rows, "samples": samples,
                      "traced": traced, "cores": CORES, "load_before": load_before,
                      "load_after": os.getloadavg()},
                     args.output or HERE / "results" / f"parallel-{args.size_mb}mb.json")
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
