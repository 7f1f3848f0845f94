"""Benchmark amprenta restores and verification against raw tools, in the same run (not a test).

    python bench/bench_restore.py --size-mb 200 [--repeat 3] [--tables 16]

Ours restores from the moto S3 endpoint (``--storage local``: a local folder; download, sha256,
pg_restore, row counts); raw is
``pg_restore`` from a local file of the same dump. Verification (sha256 + zstd + a full
``pg_restore -f /dev/null`` read) is set against one plain read of the object with sha256.
See bench/README.md for the targets.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the shared tree

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _bench_cpu import proc_cpu  # noqa: E402
from _bench_results import exit_on_sigterm, save_results  # noqa: E402

HERE = Path(__file__).resolve().parent
BUCKET = "amprenta-bench-restore"
CATALOG_DB = "catalog"
SOURCE_DB = "bench"
START = time.monotonic()
TARGETS = {"ours_j2/raw_j2": 1.15, "verify/read_sha256": 1.5}
LABELS = {
    "raw_j2": "raw: CREATE DATABASE + pg_restore -j 2 <local file>",
    "ours_j2": "ours: restore jobs=2 from storage (loaded as it arrives)",
    "raw_j1": "raw: CREATE DATABASE + pg_restore <local file>",
    "ours_j1": "ours: restore jobs=1 from storage (streamed)",
    "verify": "ours: verify from storage (sha256 + full read)",
    "read_sha256": "raw: one read of the object from storage + sha256",
    "floor": "floor: one read + sha256 + zstd decompress, no pg_restore",
    "sha256_local": "raw: sha256 of a local copy of the object",
}


def note(message: str) -> None:
    print(f"[{time.monotonic() - START:7.1f}s] {message}", file=sys.stderr, flush=True)


def busy_seconds() -> float:
    """Busy core-seconds of the whole machine so far (other people's work included)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class Bench:
    """A cluster, a moto server, one backup in S3 and a local copy of the same dump."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="amprenta-bench-restore-"))
        self.cluster: Any = None
        self.moto: Any = None
        self.counter = 0

    def start(self) -> None:
        from amprenta_backup.core.catalog import Catalog
        from amprenta_backup.core.storage import LocalStorage, S3Storage
        from amprenta_backup.sandbox.cluster import ThrowawayCluster
        from amprenta_backup.sandbox.dataset import load_bulk
        from amprenta_backup.sandbox.s3server import MotoServer

        note("starting a throwaway PostgreSQL cluster and a moto S3 server")
        self.cluster = ThrowawayCluster().start()
        self.cluster.create_database(CATALOG_DB)
        self.moto = MotoServer().start()
        self.moto.create_bucket(BUCKET)
        note(f"building {SOURCE_DB} with load_bulk ({self.args.size_mb} MiB)")
        self.size = load_bulk(self.cluster, SOURCE_DB, self.args.size_mb)
        if self.args.tables > 1:
            note(f"splitting it into {self.args.tables} tables of uneven sizes")
            self.size = split_tables(self.cluster, SOURCE_DB, self.args.tables)
        self.storage = (LocalStorage(self.workdir / "storage") if self.args.storage == "local"
                        else S3Storage(self.moto.client(), BUCKET))
        self.catalog = Catalog(self.conn(CATALOG_DB))

    def conn(self, dbname: str) -> Any:
        from amprenta_backup.core.pgtools import PgConnInfo

        info = self.cluster.conninfo(dbname)
        return PgConnInfo(host=info["host"], port=int(info["port"]), user=info["user"],
                          dbname=dbname, password=info["password"])

    def back_up(self) -> None:
        from amprenta_backup.core import layout
        from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
        from amprenta_backup.core.models import RunContext
        from amprenta_backup.core.pipeline import Compression
        from amprenta_backup.core.readback import download

        note("backing up (not measured) and keeping a local copy of the same dump")
        runner = BackupRunner(self.storage, self.catalog,
                              BackupSettings(prefix="bench", compression=Compression(),
                                             dump_jobs=1))  # one stream: the staged restore
        self.manifest = runner.run(SOURCE_DB, self.conn(SOURCE_DB), RunContext(),
                                   layout.make_backup_id(datetime.now(UTC)))
        self.dump = self.workdir / "dump.pgc"
        download(self.storage, self.manifest, self.dump)
        self.stored = self.workdir / "dump.pgc.zst"
        self.stored.write_bytes(self.storage.get_bytes(self.manifest.key))
        note(f"dump: {self.manifest.raw_bytes:,} B raw, {self.manifest.stored_bytes:,} B "
             f"stored; {len(self.manifest.table_counts)} tables")

    def close(self) -> None:
        """Stop what start() started, even half-way, and remove the temp dir."""
        with contextlib.ExitStack() as stack:
            stack.callback(note, "cleaned up (cluster, moto server, temp dir)")
            stack.callback(shutil.rmtree, self.workdir, ignore_errors=True)
            for server in (self.cluster, self.moto):
                if server is not None:
                    stack.callback(server.stop)

    # -- the variants: each returns nothing and is timed by measure() ------------------------

    def fresh(self) -> str:
        self.counter += 1
        return f"restored_{self.counter}"

    def raw(self, jobs: int) -> Callable[[], None]:
        def run() -> None:
            from amprenta_backup.core.pgtools import tool

            name = self.fresh()
            self.cluster.create_database(name)
            argv = [tool("pg_restore"), "--exit-on-error", f"--dbname={name}", str(self.dump)]
            if jobs > 1:
                argv.insert(2, f"--jobs={jobs}")
            env = {**os.environ, **self.cluster.env(name)}
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        return run

    def ours(self, jobs: int) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            from amprenta_backup.core.restore.request import RestoreRequest
            from amprenta_backup.core.restore.run import Restorer

            request = RestoreRequest(self.manifest.backup_id, self.fresh(),
                                     target_conn_id="bench", jobs=jobs)
            result = Restorer(self.storage, self.catalog,
                              lambda _id, db: self.conn(db or SOURCE_DB)).run(
                request, workdir=str(self.workdir))
            assert not result.mismatches
            return {"checksum_s": result.verify_seconds, "restore_s": result.restore_seconds}
        return run

    def verify(self) -> None:
        from amprenta_backup.core.verify import verify_backup

        assert verify_backup(self.storage, self.catalog, self.manifest).ok

    def floor(self) -> None:
        from amprenta_backup.core.readback import read_back

        assert not read_back(self.storage, self.manifest, None).mismatches(self.manifest)

    def read_sha256(self) -> None:
        sha = hashlib.sha256()
        with self.storage.open_reader(self.manifest.key) as reader:
            while chunk := reader.read(1024 * 1024):
                sha.update(chunk)
        assert sha.hexdigest() == self.manifest.sha256

    def sha256_local(self) -> None:
        sha = hashlib.sha256()
        with open(self.stored, "rb") as reader:
            while chunk := reader.read(1024 * 1024):
                sha.update(chunk)
        assert sha.hexdigest() == self.manifest.sha256

    def drop_restored(self) -> None:
        for n in range(1, self.counter + 1):
            self.cluster.drop_database(f"restored_{n}")


def split_tables(cluster: Any, dbname: str, tables: int) -> int:
    """Move ``bulk.readings`` into ``tables`` tables of uneven sizes (the k-th holds k shares
    of the rows), each with its primary key; returns the new pg_database_size."""
    with cluster.connect(dbname) as conn:
        total = int(conn.execute("SELECT max(id) FROM bulk.readings").fetchone()[0])
        shares, start = tables * (tables + 1) // 2, 0
        for k in range(1, tables + 1):
            end = total if k == tables else start + total * k // shares
            conn.execute(f"CREATE TABLE bulk.part_{k:02} (LIKE bulk.readings INCLUDING ALL)")
            conn.execute(f"INSERT INTO bulk.part_{k:02} SELECT * FROM bulk.readings "
                         f"WHERE id > {start} AND id <= {end}")
            start = end
        conn.execute("DROP TABLE bulk.readings")
        conn.execute("VACUUM (ANALYZE)")
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def cpu_seconds(bench: Bench) -> dict[str, float]:
    """CPU-seconds so far: this process (ours runs in it: download, zstd, sha256, feeding),
    its reaped children (every pg_restore), the postmaster with its reaped backends (COPY,
    index builds, row counts) and the moto server."""
    own, tools = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    return {"py": own.ru_utime + own.ru_stime, "pg_restore": tools.ru_utime + tools.ru_stime,
            "server": proc_cpu(bench.cluster.server_pid(), True),
            "moto": proc_cpu(bench.moto.pid, True)}


def measure(action: Callable[[], dict[str, float] | None], bench: Bench) -> dict[str, float]:
    busy, cpu, started = busy_seconds(), cpu_seconds(bench), time.monotonic()
    extra = action() or {}
    wall = time.monotonic() - started
    used = {f"{k}_cpu_s": round(v - cpu[k], 2) for k, v in cpu_seconds(bench).items()}
    return {"wall_s": round(wall, 3), "machine_busy_s": round(busy_seconds() - busy, 2),
            "load_1m": round(os.getloadavg()[0], 2), **used, **extra}


def run(bench: Bench) -> dict[str, Any]:
    bench.start()
    bench.back_up()
    load_start = os.getloadavg()
    variants: dict[str, Callable[[], Any]] = {
        "raw_j2": bench.raw(2), "ours_j2": bench.ours(2), "raw_j1": bench.raw(1),
        "ours_j1": bench.ours(1), "verify": bench.verify, "read_sha256": bench.read_sha256,
        "floor": bench.floor, "sha256_local": bench.sha256_local,
    }
    note("warm-up (not measured): one raw restore and one read")
    bench.raw(2)()
    bench.read_sha256()
    bench.drop_restored()
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    order = [name for name in variants if name in bench.args.variants]
    samples = {k: samples[k] for k in order}
    for round_no in range(bench.args.repeat):
        shift = (round_no * 2) % len(order)
        turn = order[shift:] + order[:shift]
        if round_no % 2:  # every pair (raw, ours) runs ours first in odd rounds
            turn = [turn[i ^ 1] if (i ^ 1) < len(turn) else turn[i] for i in range(len(turn))]
        for name in turn:
            sample = measure(variants[name], bench)
            samples[name].append(sample)
            note(f"round {round_no + 1}: {name:13} {sample['wall_s']:7.2f} s "
                 f"(machine busy {sample['machine_busy_s']:.1f} core-s; CPU-s py "
                 f"{sample['py_cpu_s']:.2f}, pg_restore {sample['pg_restore_cpu_s']:.2f}, "
                 f"server {sample['server_cpu_s']:.2f}, moto {sample['moto_cpu_s']:.2f})")
            bench.drop_restored()
    return {"started_at": datetime.now(UTC).isoformat(), "size_mb": bench.args.size_mb,
            "tables": bench.args.tables, "storage": bench.args.storage,
            "load_average_start": load_start,
            "database_bytes": bench.size, "raw_bytes": bench.manifest.raw_bytes,
            "stored_bytes": bench.manifest.stored_bytes, "cpus": os.cpu_count(),
            "load_average": os.getloadavg(), "samples": samples}


RATIOS = (("ours_j2", "raw_j2"), ("ours_j1", "raw_j1"), ("verify", "read_sha256"),
          ("floor", "read_sha256"), ("verify", "sha256_local"))


def report(raw: dict[str, Any]) -> dict[str, Any]:
    samples = raw["samples"]
    walls = {k: [s["wall_s"] for s in v] for k, v in samples.items()}
    medians = {k: statistics.median(v) for k, v in walls.items()}
    print(f"\ndatabase {raw['database_bytes'] / 1e6:.0f} MB in {raw['tables']} table(s); "
          f"dump {raw['raw_bytes'] / 1e6:.0f} MB "
          f"raw, {raw['stored_bytes'] / 1e6:.0f} MB stored (zstd); {raw['cpus']} CPUs, load "
          f"average at the end {raw['load_average'][0]:.2f}")
    print(f"\n{'variant':62} {'wall s: median [min-max]':>26}")
    for key, label in LABELS.items():
        if key not in walls:
            continue
        values = walls[key]
        print(f"{label:62} {medians[key]:8.2f} [{min(values):.2f}-{max(values):.2f}]")
    for key in [k for k in ("ours_j2", "ours_j1") if k in samples]:
        parts = {part: statistics.median(s[part] for s in samples[key])
                 for part in ("checksum_s", "restore_s")}
        cpu = {part: statistics.median(s.get(f"{part}_cpu_s", 0.0) for s in samples[key])
               for part in ("py", "pg_restore", "server", "moto")}
        print(f"  {key}: plan (+ checksum) {parts['checksum_s']:.2f} s, create + "
              f"pg_restore {parts['restore_s']:.2f} s, row counts "
              f"{medians[key] - sum(parts.values()):.2f} s; CPU-s "
              + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    ratios: dict[str, dict[str, float]] = {}
    print(f"\n{'ratio of medians':24} {'value':>7} {'target':>8}  {'per round':>13}  "
          f"{'median':>6}  verdict")
    for num, den in [(a, b) for a, b in RATIOS if a in walls and b in walls]:
        key = f"{num}/{den}"
        rounds = [a / b for a, b in zip(walls[num], walls[den], strict=True)]
        value, target = medians[num] / medians[den], TARGETS.get(key)
        ratios[key] = {"value": value, "round_min": min(rounds), "round_max": max(rounds),
                       "round_median": statistics.median(rounds)}
        verdict = ("met" if value <= target else f"MISSED by {value - target:.2f}") \
            if target else "reported"
        print(f"{key:24} {value:7.3f} {f'<= {target}' if target else '-':>8}  "
              f"{min(rounds):5.2f}-{max(rounds):5.2f}  {statistics.median(rounds):6.3f}  "
              f"{verdict}")
    return {**raw, "medians_s": medians, "ratios": ratios, "targets": TARGETS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="pg_database_size, MiB")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--tables", type=int, default=1,
                        help="split the data into this many tables of uneven sizes")
    parser.add_argument("--variants", type=lambda text: text.split(","),
                        default=list(LABELS), help="comma-separated, e.g. raw_j2,ours_j2")
    parser.add_argument("--storage", choices=("s3", "local"), default="s3",
                        help="where the backup is: the moto S3 endpoint or a local folder")
    parser.add_argument("--output", type=Path, help="JSON results file")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    with contextlib.closing(Bench(args)) as bench:
        raw = run(bench)
    name = (f"restore-{args.size_mb}mb" + (f"-{args.tables}t" if args.tables > 1 else "")
            + ("-local" if args.storage == "local" else ""))
    save_results(report(raw), args.output or HERE / "results" / f"{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
