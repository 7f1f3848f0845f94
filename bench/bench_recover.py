"""Benchmark the whole-service RTO of ``recover`` against raw pg_restore runs (not a test).

    python bench/bench_recover.py --size-mb 1024 [--repeat 1] [--storage s3|local]

Three databases of about ``size-mb / 3`` MiB each are backed up (not measured) into moto S3
(or local storage). Ours: ``Recovery.run`` onto a NEW empty cluster: catalog rebuilt from the
manifests, the three restored ``--parallel 2`` (streamed from storage, sha256 checked) and
each checked as the drill checks it (rows, keys, constraints, sequences). Raw: the sum of
``CREATE DATABASE`` + ``pg_restore`` of the same dumps from local files, one after another,
onto the same new cluster, in the same run. Target: ours / raw <= 1.2.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the shared tree

import argparse  # noqa: E402
import contextlib  # noqa: E402
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
BUCKET = "amprenta-bench-recover"
CATALOG_DB = "catalog"
DATABASES = ("bench_a", "bench_b", "bench_c")
TARGET = 1.2
START = time.monotonic()


def note(message: str) -> None:
    print(f"[{time.monotonic() - START:7.1f}s] {message}", file=sys.stderr, flush=True)


def busy_seconds() -> float:
    """Busy core-seconds of the whole machine so far (other people's work included)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def conn(cluster: Any, dbname: str) -> Any:
    from amprenta_backup.core.pgtools import PgConnInfo

    info = cluster.conninfo(dbname)
    return PgConnInfo(host=info["host"], port=int(info["port"]), user=info["user"],
                      dbname=dbname, password=info["password"])


class Bench:
    """A source cluster with three databases backed up, local copies of the dumps, and a new
    empty cluster to recover onto."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="amprenta-bench-recover-"))
        self.source: Any = None
        self.new: Any = None
        self.moto: Any = None
        self.dumps: dict[str, Path] = {}

    def start(self) -> None:
        from amprenta_backup.core.catalog import Catalog
        from amprenta_backup.core.storage import LocalStorage, S3Storage
        from amprenta_backup.sandbox.cluster import ThrowawayCluster
        from amprenta_backup.sandbox.dataset import load_bulk
        from amprenta_backup.sandbox.s3server import MotoServer

        note("starting the source cluster, the new (empty) cluster and storage")
        self.source = ThrowawayCluster().start()
        self.new = ThrowawayCluster().start()
        self.source.create_database(CATALOG_DB)
        if self.args.storage == "s3":
            self.moto = MotoServer().start()
            self.moto.create_bucket(BUCKET)
            self.storage: Any = S3Storage(self.moto.client(), BUCKET)
        else:
            self.storage = LocalStorage(self.workdir / "storage")
        self.catalog = Catalog(conn(self.source, CATALOG_DB))
        each = max(self.args.size_mb // len(DATABASES), 1)
        self.sizes = {}
        for name in DATABASES:
            note(f"building {name} with load_bulk ({each} MiB)")
            self.sizes[name] = load_bulk(self.source, name, each)

    def back_up(self) -> None:
        from amprenta_backup.core import layout
        from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
        from amprenta_backup.core.models import RunContext
        from amprenta_backup.core.pipeline import Compression
        from amprenta_backup.core.readback import download

        note("backing up the three (not measured) and keeping local copies of the dumps")
        runner = BackupRunner(self.storage, self.catalog,
                              BackupSettings(prefix="bench", compression=Compression()))
        self.manifests = {}
        for name in DATABASES:
            manifest = runner.run(f"src.{name}", conn(self.source, name), RunContext(),
                                  layout.make_backup_id(datetime.now(UTC)))
            self.manifests[name] = manifest
            self.dumps[name] = self.workdir / f"{name}.pgc"
            download(self.storage, manifest, self.dumps[name])
        raw = sum(m.raw_bytes for m in self.manifests.values())
        note(f"dumps: {raw:,} B raw, {sum(m.stored_bytes for m in self.manifests.values()):,}"
             " B stored")

    def close(self) -> None:
        """Stop what start() started, even half-way, and remove the temp dir."""
        with contextlib.ExitStack() as stack:
            stack.callback(note, "cleaned up (clusters, moto server, temp dir)")
            stack.callback(shutil.rmtree, self.workdir, ignore_errors=True)
            for server in (self.source, self.new, self.moto):
                if server is not None:
                    stack.callback(server.stop)

    def clear_new(self) -> None:
        for name in DATABASES:
            self.new.drop_database(name)

    def raw_sum(self) -> dict[str, Any]:
        """CREATE DATABASE + pg_restore of each local dump, one after another."""
        from amprenta_backup.core.pgtools import tool

        walls = {}
        for name in DATABASES:
            started = time.monotonic()
            self.new.create_database(name)
            env = {**os.environ, **self.new.env(name)}
            subprocess.run([tool("pg_restore"), "--exit-on-error", f"--dbname={name}",
                            str(self.dumps[name])], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            walls[name] = round(time.monotonic() - started, 3)
        return {"per_database_s": walls, "sum_s": round(sum(walls.values()), 3)}

    def ours(self) -> dict[str, Any]:
        if self.args.drill:
            return self.drill()
        return self.recover(conn(self.new, "postgres"), "recover")

    def drill(self) -> dict[str, Any]:
        """The dr_drill path: a scratch cluster made (not timed) and removed for the run."""
        from amprenta_backup.core.pitr.localserver import server_user
        from amprenta_backup.core.recovery.scratch import ScratchCluster, server_bin_dir

        major = self.args.drill_major
        scratch = ScratchCluster.create(None, server_bin_dir(major), server_user("postgres"))
        try:
            return self.recover(scratch.conninfo(), "dr_drill")
        finally:
            scratch.remove()

    def recover(self, new: Any, kind: str) -> dict[str, Any]:
        from amprenta_backup.core.errors import ConfigError
        from amprenta_backup.core.recovery.plan import RecoveryRequest
        from amprenta_backup.core.recovery.run import Recovery

        def resolve(conn_id: str, database: str | None) -> Any:
            if conn_id != "new":
                raise ConfigError(f"connection {conn_id!r} is not defined")
            return new.with_database(database or "postgres")

        recovery = Recovery(self.storage, "bench", self.catalog, resolve, kind)
        report = recovery.run(RecoveryRequest(server_conn_id="new",
                                              parallel=self.args.parallel))
        assert report.passed, report.summary
        return {"rto_s": report.rto_seconds, "catalog_s": report.catalog_seconds,
                "per_database_s": {d.database: d.seconds for d in report.databases}}


def measure(action: Any) -> dict[str, Any]:
    busy, started = busy_seconds(), time.monotonic()
    extra = action()
    return {"wall_s": round(time.monotonic() - started, 3),
            "machine_busy_s": round(busy_seconds() - busy, 2), **extra}


def run(bench: Bench) -> dict[str, Any]:
    bench.start()
    bench.back_up()
    samples: dict[str, list[dict[str, Any]]] = {"raw": [], "ours": []}
    for round_no in range(bench.args.repeat):
        order = ("raw", "ours") if round_no % 2 == 0 else ("ours", "raw")
        for name in order:
            sample = measure(bench.raw_sum if name == "raw" else bench.ours)
            samples[name].append(sample)
            note(f"round {round_no + 1}: {name:4} {sample['wall_s']:7.2f} s (machine busy "
                 f"{sample['machine_busy_s']:.1f} core-s)")
            bench.clear_new()
    return {"started_at": datetime.now(UTC).isoformat(), "size_mb": bench.args.size_mb,
            "storage": bench.args.storage, "parallel": bench.args.parallel,
            "kind": "dr_drill" if bench.args.drill else "recover",
            "drill_major": bench.args.drill_major,
            "database_bytes": bench.sizes,
            "raw_bytes": {n: m.raw_bytes for n, m in bench.manifests.items()},
            "stored_bytes": {n: m.stored_bytes for n, m in bench.manifests.items()},
            "cpus": os.cpu_count(), "load_average": os.getloadavg(), "samples": samples}


def report(raw: dict[str, Any]) -> dict[str, Any]:
    raw_sums = [s["sum_s"] for s in raw["samples"]["raw"]]
    ours = [s["rto_s"] for s in raw["samples"]["ours"]]
    total = sum(raw["database_bytes"].values())
    print(f"\nthree databases, {total / 1e6:.0f} MB together; dumps "
          f"{sum(raw['raw_bytes'].values()) / 1e6:.0f} MB raw, "
          f"{sum(raw['stored_bytes'].values()) / 1e6:.0f} MB stored (zstd) in {raw['storage']};"
          f" {raw['cpus']} CPUs, load average at the end {raw['load_average'][0]:.2f}")
    print(f"\n{'variant':66} {'s: median [min-max]':>22}")
    print(f"{'raw: sum of CREATE DATABASE + pg_restore <local file>, one by one':66} "
          f"{statistics.median(raw_sums):8.2f} [{min(raw_sums):.2f}-{max(raw_sums):.2f}]")
    label = f"ours: {raw['kind']} --parallel {raw['parallel']} (catalog, restores, checks)"
    print(f"{label:66} {statistics.median(ours):8.2f} [{min(ours):.2f}-{max(ours):.2f}]")
    catalog = statistics.median(s["catalog_s"] for s in raw["samples"]["ours"])
    print(f"  ours: catalog rebuilt from the manifests in {catalog:.2f} s")
    value = statistics.median(ours) / statistics.median(raw_sums)
    verdict = "met" if value <= TARGET else f"MISSED by {value - TARGET:.2f}"
    print(f"\nratio ours/raw (medians) {value:.3f}  target <= {TARGET}  {verdict}")
    return {**raw, "ratio": value, "target": TARGET}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="all three together, MiB")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds")
    parser.add_argument("--parallel", type=int, default=2, help="recover --parallel")
    parser.add_argument("--storage", choices=("s3", "local"), default="s3")
    parser.add_argument("--drill", action="store_true",
                        help="ours is the dr_drill path: into a scratch cluster on this host")
    parser.add_argument("--drill-major", type=int, metavar="N",
                        help="with --drill: the scratch cluster's major (upgrade rehearsal)")
    parser.add_argument("--output", type=Path, help="JSON results file")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    with contextlib.closing(Bench(args)) as bench:
        raw = run(bench)
    result = report(raw)
    stem = ("dr-drill" + (f"-pg{args.drill_major}" if args.drill_major else "")
            if args.drill else "recover")
    output = args.output or HERE / "results" / f"{stem}-{args.size_mb}mb.json"
    save_results(result, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
