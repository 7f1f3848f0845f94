"""bench_wal: base backups and WAL archiving of ours against the raw tools, in the same run.

(1) Base backup of a cluster of --size-mb or more: ``BaseBackupRunner.take()`` into
    LocalStorage against raw ``pg_basebackup -Ft -Z server-zstd:level=3,workers=2 -X fetch
    -c fast`` into a local folder. Target: ours <= 1.15x raw.
(2) WAL archiving: ``amprenta-wal push`` (asynchronous archiver) against
    ``test ! -f ARCH/%f && cp %p ARCH/%f``: drain capacity (a backlog of .ready segments built
    with archiving paused and, by default, flushed to disk (``--backlog``), then timed until
    none is left) and a sustained pgbench load
    (largest .ready backlog seen, segments archived per second, pgbench tps). Paired rounds,
    the order rotated. Targets (issue 17): drain >= 25 segments/s; pgbench tps with our
    archiving >= 0.9x the same run's with ``cp`` (the median of the per-round ratios).
Not a test: prints figures and ratios; never fails because a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import RunContext, utcnow
from amprenta_backup.core.pgtools import PgConnInfo, tool
from amprenta_backup.core.pitr.basebackup import BaseBackupRunner
from amprenta_backup.core.pitr.localserver import give_to
from amprenta_backup.core.settings import WalSettings
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.ranges import WalRange
from amprenta_backup.core.wal.settings import read_config_file, write_config_file
from amprenta_backup.core.wal.shellpush import archive_command_line
from amprenta_backup.core.wal.spool import Spool
from amprenta_backup.sandbox.cluster import ThrowawayCluster
from amprenta_backup.sandbox.dataset import load_bulk
from amprenta_backup.sandbox.serverenv import wal_command

TARGET = "bench.pitr"
MB = 1_000_000


def note(message: str) -> None:
    print(f"[bench_wal {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="MiB of bulk data (>= 1024)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measurement")
    parser.add_argument("--backlog-segments", type=int, default=40,
                        help="WAL segments to pile up for each drain measurement")
    parser.add_argument("--pgbench-seconds", type=int, default=30)
    parser.add_argument("--backlog", choices=("settled", "fresh", "both"), default="settled",
                        help="settled: the drain starts once the backlog's writing is on disk "
                             "(CHECKPOINT, sync); fresh: at once, behind the writeback of the "
                             "table just written to build it; both: every drain (variants "
                             "too) both ways, the fresh ones reported as 'METHOD fresh'")
    parser.add_argument("--only", choices=("all", "basebackup", "wal"), default="all",
                        help="basebackup: the base backup rounds alone (no WAL archiving); "
                             "wal: the WAL archiving alone")
    parser.add_argument("--parallel", type=int, default=None,
                        help="BACKUP_WAL_PARALLEL of our archiver (default: the setting's)")
    parser.add_argument("--command", choices=("shell", "push"), default="shell",
                        help="ours: the line `amprenta-wal archive-command` prints (shell), or "
                             "plain `amprenta-wal push %%p %%f`")
    parser.add_argument("--level", type=int, default=None,
                        help="BACKUP_WAL_COMPRESSION_LEVEL of ours (default: the setting's)")
    parser.add_argument("--catchup-levels", default="",
                        help="extra drain variants of ours, one per BACKUP_WAL_CATCHUP_LEVEL "
                             "(comma-separated, e.g. -5,1), measured in the same rounds as "
                             "'ours' and reported as 'ours catch-up L'")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:K=V[,K=V]",
                        help="an extra drain of ours with these BACKUP_* settings, e.g. "
                             "p3:BACKUP_WAL_PARALLEL=3 (repeatable), as 'ours NAME'")
    parser.add_argument("--output", help="JSON file (default bench/results/wal-<size>mb.json)")
    return parser.parse_args(argv)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class WalBench:
    """One cluster, two archives (ours and cp), and the measurements."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="amprenta-bench-wal-", dir="/tmp"))
        self.work.chmod(0o711)
        self.cluster = ThrowawayCluster(settings={
            "wal_level": "replica", "archive_mode": "on", "archive_command": "",
            "max_wal_size": "4GB", "checkpoint_timeout": "30s", "shared_buffers": "256MB"})
        self.store = self.work / "store"      # ours: LocalStorage
        self.copies = self.work / "cp"         # the cp archive
        self.config = self.work / "private" / "wal.env"
        self.samples: list[dict[str, Any]] = []

    # -- set-up --------------------------------------------------------------------------
    def setup(self) -> None:
        self.cluster.start()
        os_user = self.cluster.os_user
        for folder in (self.store, self.copies, self.config.parent):
            folder.mkdir(mode=0o700)
        write_config_file(self.config, {
            "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(self.store),
            "BACKUP_WAL_TARGET": TARGET, "BACKUP_WAL_SPOOL": str(self.work / "private" / "spool"),
            "BACKUP_WAL_IDLE_EXIT_SECONDS": "5",
            **({"BACKUP_WAL_PARALLEL": str(self.args.parallel)} if self.args.parallel else {}),
            **({} if self.args.level is None else
               {"BACKUP_WAL_COMPRESSION_LEVEL": str(self.args.level)})})
        for folder in (self.store, self.copies, self.config.parent):
            give_to(folder, os_user)
        self.ours = f"{wal_command(os_user)} --config {self.config} push %p %f"
        if self.args.command == "shell":
            settings = WalSettings.from_env(read_config_file(self.config))
            pg_wal = self.cluster.data_dir / "pg_wal"
            self.ours = archive_command_line(wal_command(os_user), self.config, pg_wal,
                                             Spool(settings.spool_dir(pg_wal)),
                                             settings.wait_seconds)
        self.cp = f"test ! -f {self.copies}/%f && cp %p {self.copies}/%f"
        self.variants = {f"ours catch-up {level}": self._variant(
            f"catchup{level}", {"BACKUP_WAL_CATCHUP_LEVEL": level})
            for level in filter(None, self.args.catchup_levels.split(","))}
        for spec in self.args.variant:
            name, _, pairs = spec.partition(":")
            self.variants[f"ours {name}"] = self._variant(name, dict(
                pair.split("=", 1) for pair in pairs.split(",")))
        started = time.monotonic()
        load_bulk(self.cluster, "bench", self.args.size_mb)
        self.run_tool("pgbench", "-i", "-s", "10", "-q", "bench")
        self.setup_s = time.monotonic() - started
        self.cluster.execute("CREATE DATABASE bench_catalog")
        self.archive_with(self.cp)  # the WAL of the load is not part of any measurement
        self.wait_drained()
        self.size = int(self.cluster.query("SELECT sum(pg_database_size(oid)) FROM pg_database")
                        [0][0])
        note(f"cluster holds {self.size / MB:.0f} MB (built in {self.setup_s:.0f} s)")

    def _variant(self, name: str, settings: dict[str, str]) -> str:
        """``self.ours`` reading a copy of the settings file with other ``settings``."""
        config = self.config.with_name(f"wal-{name}.env")
        write_config_file(config, {**read_config_file(self.config), **settings})
        give_to(config, self.cluster.os_user)
        return self.ours.replace(str(self.config), str(config))

    def run_tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.cluster.env()}
        done = subprocess.run([tool(name), *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed: {done.stderr.strip()[-500:]}")
        return done

    def conn(self, dbname: str = "postgres") -> PgConnInfo:
        info = self.cluster.conninfo(dbname)
        return PgConnInfo(host=info["host"], port=info["port"], user=info["user"],
                          dbname=dbname, password=info["password"])

    # -- archiving -----------------------------------------------------------------------
    def archive_with(self, command: str) -> None:
        self.cluster.execute(f"ALTER SYSTEM SET archive_command = {_literal(command)}")
        self.cluster.execute("SELECT pg_reload_conf()")

    def ready(self) -> int:
        status = self.cluster.data_dir / "pg_wal" / "archive_status"
        return sum(1 for n in os.listdir(status) if n.endswith(".ready"))

    def wait_drained(self, timeout: float = 600) -> float:
        started = time.monotonic()
        while self.ready() and time.monotonic() - started < timeout:
            time.sleep(0.02)
        return time.monotonic() - started

    def drain(self, method: str, command: str, round_: int, settle: bool = True) -> None:
        self.wait_drained()  # whatever the current command left
        self.archive_with("")
        self.wait_archiver_gone()  # else ours would push the backlog ahead while it builds
        rows = int(self.args.backlog_segments * 16 * 1024 * 1024 / 200)
        self.cluster.execute(f"CREATE TABLE churn AS SELECT * FROM bulk.readings LIMIT {rows}",
                             dbname="bench")
        self.cluster.execute("DROP TABLE churn", dbname="bench")
        self.cluster.execute("SELECT pg_switch_wal()")
        if settle:
            settle_backlog(self.cluster)
        backlog = self.ready()
        load = os.getloadavg()[0]
        pg_archiver = int(self.cluster.query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'")[0][0])
        before = _proc_cpu_seconds(pg_archiver)
        self.archive_with(command)
        started = time.monotonic()
        while self.ready() >= backlog and time.monotonic() - started < 60:
            time.sleep(0.005)
        first = time.monotonic() - started  # ours: the archiver's cold start is in it
        seconds = self.wait_drained() + first
        pid = self._spool().archiver_pid()  # ours: the archiver is not PostgreSQL's child
        shell_cpu = _proc_cpu_seconds(pg_archiver) - before  # archive_command and its children
        archiver_cpu = _proc_cpu_seconds(pid, own=True) if pid else 0.0
        cpu = shell_cpu + archiver_cpu
        self.samples.append({"kind": "drain", "method": method, "round": round_,
                             "segments": backlog, "seconds": seconds, "first_s": first,
                             "seg_per_s": backlog / seconds,
                             "seg_per_s_after_first": (backlog - 1) / max(seconds - first, 1e-3),
                             "cpu_ms_per_segment": 1000 * cpu / backlog,
                             "command_cpu_ms_per_segment": 1000 * shell_cpu / backlog,
                             "archiver_cpu_ms_per_segment": 1000 * archiver_cpu / backlog,
                             "load_before": load,
                             "load_after": os.getloadavg()[0]})
        note(f"drain {method}: {backlog} segments in {seconds:.2f} s = "
             f"{backlog / seconds:.1f} seg/s (first after {first:.2f} s), "
             f"{1000 * cpu / backlog:.0f} CPU-ms a segment ({1000 * shell_cpu / backlog:.0f} "
             f"archive_command, {1000 * archiver_cpu / backlog:.0f} archiver; load {load:.1f})")

    def sustained(self, method: str, command: str, round_: int) -> None:
        self.archive_with(command)
        self.wait_drained()
        load = os.getloadavg()[0]
        before = self.archived()
        env = {**os.environ, **self.cluster.env("bench")}
        proc = subprocess.Popen([tool("pgbench"), "-n", "-c", "2", "-j", "2", "-T",
                                 str(self.args.pgbench_seconds), "bench"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        peak, readings = 0, []
        while proc.poll() is None:
            readings.append(self.ready())
            peak = max(peak, readings[-1])
            time.sleep(1)
        out = proc.communicate()[0]
        tps = next((float(line.split("=")[1].split()[0]) for line in out.splitlines()
                    if line.startswith("tps")), None)
        self.cluster.execute("SELECT pg_switch_wal()")
        tail = self.wait_drained()
        archived = self.archived() - before
        seconds = self.args.pgbench_seconds
        self.samples.append({"kind": "sustained", "method": method, "round": round_, "tps": tps,
                             "max_ready": peak, "last_ready": readings[-1] if readings else 0,
                             "segments": archived, "seg_per_s": archived / seconds,
                             "tail_drain_s": tail, "load_before": load,
                             "load_after": os.getloadavg()[0]})
        note(f"sustained {method}: {archived} segments in {seconds} s ({archived / seconds:.2f}"
             f" seg/s), max .ready {peak}, pgbench {tps} tps")

    def _spool(self) -> Any:
        settings = WalSettings.from_env(read_config_file(self.config))
        return Spool(settings.spool_dir(self.cluster.data_dir / "pg_wal"))

    def wait_archiver_gone(self, timeout: float = 60) -> None:
        spool = self._spool()
        deadline = time.monotonic() + timeout
        while spool.archiver_running() and time.monotonic() < deadline:
            time.sleep(0.2)

    def archived(self) -> int:
        return int(self.cluster.query("SELECT archived_count FROM pg_stat_archiver")[0][0])

    # -- base backups --------------------------------------------------------------------
    def raw_basebackup(self, sync: bool) -> None:
        folder = self.work / "raw"
        shutil.rmtree(folder, ignore_errors=True)
        argv = ["-D", str(folder), "-Ft", "-Z", "server-zstd:level=3,workers=2", "-X", "fetch",
                "-c", "fast", *([] if sync else ["--no-sync"])]
        started, cpu = time.monotonic(), _cpu_seconds()
        self.run_tool("pg_basebackup", *argv)
        seconds, cpu = time.monotonic() - started, _cpu_seconds() - cpu
        size = sum(p.stat().st_size for p in folder.iterdir())
        shutil.rmtree(folder)
        method = "raw" if sync else "raw --no-sync"
        self.samples.append({"kind": "basebackup", "method": method, "seconds": seconds,
                             "client_cpu_s": cpu, "stored_bytes": size,
                             "load_before": os.getloadavg()[0]})
        note(f"{method} pg_basebackup: {seconds:.2f} s, {size / MB:.0f} MB")

    def our_basebackup(self) -> None:
        storage = LocalStorage(self.work / "ours-bb")
        runner = BaseBackupRunner(storage, Catalog(self.conn("bench_catalog")), "database")
        backup_id = layout.make_backup_id(utcnow())
        started, cpu = time.monotonic(), _cpu_seconds()
        manifest = runner.take(TARGET, self.conn(), RunContext(), backup_id)
        seconds, cpu = time.monotonic() - started, _cpu_seconds() - cpu
        archive = WalArchive(LocalStorage(self.store), "database", TARGET)
        waited = time.monotonic()
        archive.wait_for(WalRange.of(manifest).stop_segment, 120, 0.05)
        runner.complete(manifest, archive)
        complete_s = time.monotonic() - waited
        shutil.rmtree(self.work / "ours-bb")
        self.samples.append({"kind": "basebackup", "method": "ours", "seconds": seconds,
                             "client_cpu_s": cpu, "complete_s": complete_s,
                             "stored_bytes": manifest.stored_bytes,
                             "raw_bytes": manifest.raw_bytes, "load_before": os.getloadavg()[0]})
        note(f"ours base backup: {seconds:.2f} s (+{complete_s:.2f} s until its WAL was "
             f"archived), {manifest.stored_bytes / MB:.0f} MB")

    # -- the per-segment call --------------------------------------------------------------
    def fast_path(self, calls: int = 20) -> None:
        fake = self.work / "fast" / "pg_wal"
        (fake / "archive_status").mkdir(parents=True)
        env = {**os.environ, "BACKUP_WAL_TARGET": TARGET, "BACKUP_STORAGE_TYPE": "local",
               "BACKUP_LOCAL_PATH": str(self.work / "fast" / "store"),
               "BACKUP_WAL_SPOOL": str(self.work / "fast" / "spool")}
        command = wal_command(None)
        times, bare = [], []
        python = Path(command).parent / "python"
        for n in range(calls):
            name = f"0000000100000000000000{n:02X}"
            (fake / name).write_bytes(b"x")
            spool = self._spool_for(fake, env)
            (spool / "ok" / name).write_text("sha")
            started = time.monotonic()
            subprocess.run([command, "push", f"pg_wal/{name}", name], cwd=fake.parent,
                           env=env, check=True)
            times.append(time.monotonic() - started)
            started = time.monotonic()
            subprocess.run([str(python), "-c", "pass"], check=True)
            bare.append(time.monotonic() - started)
        self.samples.append({"kind": "fast_path", "push_ms": 1000 * statistics.median(times),
                             "python_ms": 1000 * statistics.median(bare)})
        note(f"push with a marker: {1000 * statistics.median(times):.0f} ms median "
             f"(python -c pass {1000 * statistics.median(bare):.0f} ms)")

    @staticmethod
    def _spool_for(pg_wal: Path, env: dict[str, str]) -> Path:
        return Spool(WalSettings.from_env(env).spool_dir(pg_wal)).prepare().root

    def stop(self) -> None:
        self.cluster.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def settle_backlog(cluster: ThrowawayCluster) -> None:
    """Let the writing that built a backlog reach the disk before its drain is timed.

    A backlog builds while archiving is stopped, over minutes, so its table's and its WAL's
    writeback is long done when archiving resumes. Built in one second here, 640 MB would
    still be in writeback during the drain, and every fsync of an archived segment (ours;
    ``cp`` does not fsync) would queue behind it (ext4 ``data=ordered``).
    """
    cluster.execute("CHECKPOINT")
    os.sync()  # returns once the writeback is done (Linux)


def _cpu_seconds() -> float:
    """CPU of this process and its reaped children (pg_basebackup): the client side; the
    server's walsender and its zstd workers are the same in both and not counted."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _proc_cpu_seconds(pid: int, own: bool = False) -> float:
    """CPU seconds of ``pid`` itself (``own``) or of the children it has reaped (PostgreSQL's
    archiver: every archive_command and what it ran), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    first = 11 if own else 13  # utime, stime / cutime, cstime (fields 14-17, 1-based)
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _paired(samples: list[dict[str, Any]], kind: str, key: str) -> list[float]:
    """ours/cp of ``key`` in each round (both measured back to back)."""
    by_round: dict[int, dict[str, float]] = {}
    for s in samples:
        if s["kind"] == kind and s.get(key):
            by_round.setdefault(s["round"], {})[s["method"]] = s[key]
    return [r["ours"] / r["cp"] for r in by_round.values() if "ours" in r and "cp" in r]


def summarize(bench: WalBench) -> dict[str, Any]:
    def pick(kind: str, method: str, key: str) -> list[float]:
        return [s[key] for s in bench.samples if s["kind"] == kind and s.get("method") == method
                and s.get(key) is not None]

    summary: dict[str, Any] = {}
    for kind, keys in (
            ("basebackup", ("seconds", "client_cpu_s", "stored_bytes")),
            ("drain", ("seg_per_s", "segments", "cpu_ms_per_segment", "command_cpu_ms_per_segment",
                       "archiver_cpu_ms_per_segment", "first_s", "seg_per_s_after_first")),
            ("sustained", ("seg_per_s", "max_ready", "tps"))):
        for method in dict.fromkeys(s["method"] for s in bench.samples if s["kind"] == kind):
            summary[f"{kind}/{method}"] = {key: median(pick(kind, method, key)) for key in keys}
    for kind, key in (("drain", "seg_per_s"), ("sustained", "tps")):
        summary[f"ratio {kind} {key} ours/cp"] = median(_paired(bench.samples, kind, key))
    loads = [s["load_before"] for s in bench.samples if "load_before" in s]
    summary["load"] = [min(loads), max(loads)] if loads else None
    raw = summary.get("basebackup/raw", {}).get("seconds")
    ours = summary.get("basebackup/ours", {}).get("seconds")
    summary["ratio base backup ours/raw"] = ours / raw if raw and ours else None
    pairs = zip(pick("basebackup", "ours", "seconds"), pick("basebackup", "raw", "seconds"),
                strict=False)  # round n's ours and raw ran next to each other, order rotated
    summary["ratio base backup ours/raw per round"] = [round(a / b, 3) for a, b in pairs]
    summary["load base backup rounds"] = pick("basebackup", "ours", "load_before")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = WalBench(args)
    try:
        bench.setup()
        order = [("cp", bench.cp), ("ours", bench.ours)]
        ways = {"settled": (True,), "fresh": (False,), "both": (True, False)}[args.backlog]
        drains = [(method if settle or args.backlog == "fresh" else f"{method} fresh", command,
                   settle) for settle in ways for method, command in
                  order + list(bench.variants.items())]
        if args.only != "basebackup":
            bench.fast_path()
            for round_ in range(args.rounds):  # paired rounds, the order rotated
                for method, command, settle in drains if round_ % 2 == 0 else drains[::-1]:
                    bench.drain(method, command, round_, settle)
            for round_ in range(args.rounds):
                for method, command in order if round_ % 2 else order[::-1]:
                    bench.sustained(method, command, round_)
        bench.archive_with(bench.ours)
        for round_ in range(0 if args.only == "wal" else args.rounds):
            steps = [lambda: bench.raw_basebackup(True), bench.our_basebackup]
            for step in steps if round_ % 2 == 0 else steps[::-1]:
                step()
            if round_ == 0:
                bench.raw_basebackup(False)
        bench.archive_with(bench.cp)  # stop() must not wait for our archiver
        result = {"cluster_bytes": bench.size, "setup_s": bench.setup_s, "cpus": os.cpu_count(),
                  "args": vars(args), "samples": bench.samples, "summary": summarize(bench)}
    finally:
        bench.stop()
    output = Path(args.output or f"bench/results/wal-{args.size_mb}mb.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result["summary"], indent=2))
    note(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
