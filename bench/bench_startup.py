"""Benchmark the start-up of the commands: this tree against another revision (not a test).

    python bench/bench_startup.py --base main --rounds 12 [--output FILE]

Both trees' ``plugins/`` are copied into a temporary folder and precompiled (so neither pays
for compiling, nor sees edits made during the run), and each command runs as a process with
``PYTHONPATH`` pointing at one of them, the two alternated round by round (the order flipped
every round). A throwaway cluster holds the catalog and one backup (local storage); its
password reaches the commands in their environment only. Wall and CPU (user + system of the
process and its children) per run; medians, minima and the 1-minute load are printed and
written as JSON. Commands: ``--help``, ``--version``, a mistyped command, ``list``, ``show``,
``python -c 'import amprenta_backup.cli.main'`` and a synchronous ``amprenta-wal push`` of a
16 MiB segment already archived (settings, storage, the object's checksum compared).
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the shared tree

import argparse  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import quote  # noqa: E402

from _bench_results import exit_on_sigterm, save_results  # noqa: E402

from amprenta_backup.sandbox.cluster import ThrowawayCluster  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SEGMENT = "000000010000000000000001"


def tree(work: Path, name: str, rev: str | None) -> Path:
    """``plugins/`` of ``rev`` (None: this working tree) in ``work/name``, precompiled."""
    dest = work / name
    dest.mkdir()
    if rev is None:
        subprocess.run(["cp", "-r", str(ROOT / "plugins"), str(dest)], check=True)
    else:
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "plugins"], check=True,
                             capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            archive.extractall(dest, filter="data")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(dest / "plugins")],
                   check=True, capture_output=True)
    return dest / "plugins"


def commands(backup_id: str, wal_config: Path, segment: Path) -> dict[str, list[str]]:
    cli, wal = str(BIN / "amprenta-backup"), str(BIN / "amprenta-wal")
    return {
        "help": [cli, "--help"], "version": [cli, "--version"], "mistyped": [cli, "lst"],
        "list": [cli, "list"], "show": [cli, "show", backup_id],
        "import": [sys.executable, "-c", "import amprenta_backup.cli.main"],
        "wal_push": [wal, "--config", str(wal_config), "push", str(segment), SEGMENT],
    }


def timed(argv: list[str], env: dict[str, str], usage_error: bool = False
          ) -> tuple[float, float]:
    """Wall and CPU seconds of one run; it must exit 0 (2 where ``usage_error``)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    error = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != (2 if usage_error else 0):
        raise SystemExit(f"{' '.join(argv[:3])} exited {code}: {error.decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def prepare(cluster: ThrowawayCluster, work: Path) -> tuple[dict[str, str], str, Path, Path]:
    """The commands' environment, one backup's id, the WAL settings file and segment."""
    def uri(db: str) -> str:
        return (f"postgresql://{cluster.user}:{quote(cluster.password, safe='')}@"
                f"{cluster.host}:{cluster.port}/{db}")

    cluster.create_database("amprenta")
    cluster.execute("CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, "
                    "md5(g::text) FROM generate_series(1, 1000) g", "amprenta")
    env = {"PATH": os.environ["PATH"], "AIRFLOW_CONN_BACKUP_CATALOG": uri("backup_catalog"),
           "AIRFLOW_CONN_PG_MAIN": uri("amprenta"), "BACKUP_STORAGE_TYPE": "local",
           "BACKUP_LOCAL_PATH": str(work / "store"), "BACKUP_TARGETS": "pg_main"}
    cli = [str(BIN / "amprenta-backup")]
    subprocess.run([*cli, "rebuild-catalog"], env=env, check=True, capture_output=True)
    subprocess.run([*cli, "backup", "pg_main"], env=env, check=True, capture_output=True)
    listed = subprocess.run([*cli, "list"], env=env, check=True, capture_output=True, text=True)
    backup_id = listed.stdout.splitlines()[2].split()[0]
    segment = work / "pg_wal" / SEGMENT
    segment.parent.mkdir()
    segment.write_bytes(os.urandom(16 << 20))
    config = work / "wal.conf"
    config.touch(mode=0o600)
    config.write_text(f"BACKUP_STORAGE_TYPE=local\nBACKUP_LOCAL_PATH={work}/walstore\n"
                      "BACKUP_WAL_TARGET=bench\nBACKUP_WAL_ASYNC=false\n")
    subprocess.run([str(BIN / "amprenta-wal"), "--config", str(config), "push", str(segment),
                    SEGMENT], env=env, check=True, capture_output=True)
    return env, backup_id, config, segment


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        work = Path(folder)
        trees = {"base": tree(work, "base", args.base), "this": tree(work, "this", None)}
        cluster = ThrowawayCluster().start()
        try:
            env, backup_id, config, segment = prepare(cluster, work)
            argvs = commands(backup_id, config, segment)
            runs: dict[str, dict[str, dict[str, list[float]]]] = {
                name: {label: {"wall": [], "cpu": []} for label in trees} for name in argvs}
            loads: list[float] = []
            for n in range(args.rounds):
                order = list(trees.items()) if n % 2 == 0 else list(trees.items())[::-1]
                for name, argv in argvs.items():
                    for label, path in order:
                        wall, cpu = timed(argv, {**env, "PYTHONPATH": str(path)},
                                          usage_error=name == "mistyped")
                        runs[name][label]["wall"].append(wall)
                        runs[name][label]["cpu"].append(cpu)
                loads.append(os.getloadavg()[0])
        finally:
            cluster.stop()
    summary = {name: {label: {key: {"median": statistics.median(values), "min": min(values)}
                              for key, values in figures.items()}
                      for label, figures in by_tree.items()} for name, by_tree in runs.items()}
    return {"base": args.base, "rounds": args.rounds, "load_1min": loads, "summary": summary,
            "runs": runs}


def report(result: dict[str, Any]) -> None:
    print(f"{'command':10} {'base wall':>10} {'this wall':>10} {'base CPU':>9} {'this CPU':>9}"
          "  (medians, s)")
    for name, by_tree in result["summary"].items():
        base, this = by_tree["base"], by_tree["this"]
        print(f"{name:10} {base['wall']['median']:10.3f} {this['wall']['median']:10.3f} "
              f"{base['cpu']['median']:9.3f} {this['cpu']['median']:9.3f}")
    loads = result["load_1min"]
    print(f"{result['rounds']} rounds alternated, base {result['base']}; load "
          f"{min(loads):.2f}-{max(loads):.2f}")


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" /
                        "startup.json")
    args = parser.parse_args()
    result = run(args)
    report(result)
    save_results(result, args.output)


if __name__ == "__main__":
    main()
