"""Issue 17's benchmarks in one run, and one table of every ratio against its target (not a test).

    python bench/bench_all.py                      # about 15 minutes on 2 quiet cores
    python bench/bench_all.py --size-mb 20 --rounds 1 --backlog-segments 4 --pgbench-seconds 5
    python bench/bench_all.py --report bench/results/all.json   # the table of a saved run

Each benchmark of ``_bench_table.PARTS`` runs in turn as its own process (its own cluster and
servers; its report goes to stderr), writes its JSON, and is read back here; the table's rows
are ``_bench_table.CHECKS``. The 1-minute load average is sampled every few seconds during
each part and printed beside its rows; the machine's speed (``_machine_speed.py``) is
measured before the first part and after the last. Writes ``bench/results/all.json``
(``--output``): the table, each part's command, time and load, and each part's whole JSON
result.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # leave no __pycache__ behind in the shared tree

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _bench_results import exit_on_sigterm, save_results  # noqa: E402
from _bench_table import (  # noqa: E402
    PARTS,
    Part,
    build_rows,
    load_range,
    markdown,
    readme_block,
    render,
    replace_block,
)
from _machine_speed import describe, machine_speed  # noqa: E402

HERE = Path(__file__).resolve().parent
SIZES = ("backup_mb", "parallel_mb", "restore_mb", "wal_mb")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every part (3)")
    parser.add_argument("--backup-mb", type=int, default=200, help="bench_backup size (200)")
    parser.add_argument("--parallel-mb", type=int, default=500, help="bench_parallel size (500)")
    parser.add_argument("--restore-mb", type=int, default=200, help="bench_restore size (200)")
    parser.add_argument("--wal-mb", type=int, default=1024, help="bench_wal size (1024)")
    parser.add_argument("--size-mb", type=int, help="every part's size at once (a quick run)")
    parser.add_argument("--backlog-segments", type=int, default=40,
                        help="WAL segments piled up for each drain (40)")
    parser.add_argument("--pgbench-seconds", type=int, default=30, help="pgbench -T (30)")
    parser.add_argument("--parts", default=",".join(p.name for p in PARTS),
                        help="comma-separated subset of: " + ", ".join(p.name for p in PARTS))
    parser.add_argument("--output", type=Path, default=HERE / "results" / "all.json")
    parser.add_argument("--report", type=Path, metavar="ALL_JSON",
                        help="print the table of a saved run (no benchmark runs)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown too")
    parser.add_argument("--readme", type=Path, metavar="FILE",
                        help="put the run and its table between FILE's bench_all markers")
    args = parser.parse_args(argv)
    if args.size_mb:
        for size in SIZES:
            setattr(args, size, args.size_mb)
    unknown = set(args.parts.split(",")) - {p.name for p in PARTS}
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}")
    return args


class LoadSampler:
    """The 1-minute load average every ``every`` seconds while a part runs."""

    def __init__(self, every: float = 5.0) -> None:
        self.every, self.samples = every, [round(os.getloadavg()[0], 2)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(round(os.getloadavg()[0], 2))

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(round(os.getloadavg()[0], 2))


def busy_seconds() -> float:
    """Busy core-seconds of the whole machine so far (other people's work included)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def run_part(part: Part, options: dict[str, Any], folder: Path) -> tuple[Any, dict[str, Any]]:
    """Run one benchmark; its JSON result (or why there is none) and how the run went."""
    output = folder / f"{part.name}.json"
    argv = [str(HERE / part.script), *(a.format(**options) for a in part.args),
            "--output", str(output)]
    print(f"\n=== {part.name}: {' '.join(argv[1:-2])}", file=sys.stderr, flush=True)
    started, busy = time.monotonic(), busy_seconds()
    with LoadSampler() as load:
        proc = subprocess.Popen([sys.executable, *argv], stdout=sys.stderr)
        try:
            code = proc.wait()
        finally:  # interrupted: let the part stop its own cluster and servers
            if proc.poll() is None:
                proc.terminate()
                proc.wait(120)
    info = {"command": f"python bench/{part.script} " + " ".join(argv[1:-2]),
            "exit_code": code, "wall_s": round(time.monotonic() - started, 1),
            "machine_busy_s": round(busy_seconds() - busy, 1), "load_1m": load.samples}
    print(f"=== {part.name}: exit {code} after {info['wall_s']:.0f} s, load "
          f"{load_range(load.samples)}", file=sys.stderr, flush=True)
    if code:
        return f"{part.script} exited with {code} (its output is above)", info
    try:
        return json.loads(output.read_text(encoding="utf-8")), info
    except (OSError, ValueError) as exc:
        return f"{part.script} wrote no readable JSON to {output}: {exc}", info


def print_table(saved: dict[str, Any], as_markdown: bool) -> None:
    loads = {name: load_range(info["load_1m"]) for name, info in saved["parts"].items()}
    rows = build_rows(saved["results"], loads)
    print(f"\nissue 17 benchmarks, {saved['started_at'][:16]} UTC, {saved['cpus']} cores")
    for name, info in saved["parts"].items():
        print(f"  {name}: {info['wall_s']:.0f} s, load {loads[name]}: {info['command']}")
    if "machine_speed" in saved:  # runs before 2026-12-04 20:00 did not record it
        print("  " + describe(saved["machine_speed"]))
    print("\n" + render(rows))
    if as_markdown:
        print("\n" + markdown(rows))


def write_readme(saved: dict[str, Any], readme: Path | None) -> None:
    if readme is not None:
        text = readme.read_text(encoding="utf-8")
        readme.write_text(replace_block(text, readme_block(saved)), encoding="utf-8")
        print(f"table written into {readme}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text(encoding="utf-8"))
        if not {"parts", "results", "started_at"} <= set(saved):
            raise SystemExit(f"{args.report} is not a bench_all.py result (no parts/results)")
        print_table(saved, args.markdown)
        write_readme(saved, args.readme)
        return 0
    exit_on_sigterm()
    options = {k: v for k, v in vars(args).items() if isinstance(v, int)}
    chosen = [p for p in PARTS if p.name in args.parts.split(",")]
    saved: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(),
                             "options": options, "parts": {}, "results": {}}
    started = time.monotonic()
    saved["machine_speed"] = {"start": machine_speed()}
    with tempfile.TemporaryDirectory(prefix="amprenta-bench-all-") as folder:
        for part in chosen:
            saved["results"][part.name], saved["parts"][part.name] = run_part(
                part, options, Path(folder))
    saved["machine_speed"]["end"] = machine_speed()
    saved["wall_s"] = round(time.monotonic() - started, 1)
    loads = {name: load_range(info["load_1m"]) for name, info in saved["parts"].items()}
    saved["rows"] = [row.as_dict() for row in build_rows(saved["results"], loads)]
    print_table(saved, args.markdown)
    print(f"\nall parts: {saved['wall_s'] / 60:.1f} min", file=sys.stderr)
    save_results(saved, args.output)
    write_readme(saved, args.readme)
    failed = [name for name, result in saved["results"].items() if isinstance(result, str)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
