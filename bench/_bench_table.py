"""Issue 17's checks as one table, built from the JSON results of the benchmarks (no running).

``PARTS`` says which benchmark runs with which arguments; ``CHECKS`` says which key of which
part's JSON makes which row, and its target. ``build_rows`` turns the parts' results into
rows with a verdict each; a key a benchmark no longer writes gives a row that names the key
(the other rows still print), so a change to one benchmark's JSON never hides the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Path = tuple[str, ...]  # keys into a part's JSON; "[name=X]" picks the list item named X
LE, GE = "<=", ">="


@dataclass(frozen=True)
class Part:
    """One benchmark run of ``bench_all``: ``args`` are formatted with the run's options
    (``{rounds}``, ``{backup_mb}``...); the runner adds ``--output FILE``."""

    name: str
    script: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """``op`` is ``<=`` or ``>=``; ``value`` in the check's unit."""

    op: str
    value: float

    def met(self, value: float) -> bool:
        return value <= self.value if self.op == "<=" else value >= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Check:
    """One row: ``value`` (divided by ``per`` when given) from part ``part``'s JSON.

    :param point: the issue's point(s) the row answers
    :param rounds: a path to the per-round values, or two paths to their min and max
    :param detail: a format string over ``detail_keys`` (paths), printed after the row
    """

    point: str
    what: str
    part: str
    value: Path
    target: Target | None = None
    per: Path | None = None
    unit: str = ""
    rounds: tuple[Path, ...] = ()
    detail: str = ""
    detail_keys: dict[str, Path] = field(default_factory=dict)


@dataclass
class Row:
    """A check's outcome: ``verdict`` is met / MISSED ... / reported / a reason it is empty."""

    check: Check
    value: float | None = None
    verdict: str = ""
    rounds: str = ""
    detail: str = ""
    load: str = ""

    def as_dict(self) -> dict[str, Any]:
        target = self.check.target
        return {"point": self.check.point, "what": self.check.what, "part": self.check.part,
                "value": self.value, "unit": self.check.unit,
                "target": None if target is None else {"op": target.op, "value": target.value},
                "verdict": self.verdict, "rounds": self.rounds, "detail": self.detail,
                "load": self.load}


class MissingKey(LookupError):
    """A path that is not in a part's JSON (the benchmark changed or did not measure it)."""


def lookup(data: Any, path: Path) -> Any:
    """``data[path[0]][path[1]]...``; ``[name=X]`` selects the dict whose ``name`` is X."""
    node = data
    for depth, key in enumerate(path):
        where = " > ".join(path[: depth + 1])
        if key.startswith("[name=") and isinstance(node, list):
            wanted = key[len("[name="):-1]
            found = [item for item in node if isinstance(item, dict) and
                     item.get("name") == wanted]
            if not found:
                names = [item.get("name") for item in node if isinstance(item, dict)]
                raise MissingKey(f"no {where} (names there: {', '.join(map(str, names))})")
            node = found[0]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            there = ", ".join(map(str, node)) if isinstance(node, dict) else type(node).__name__
            raise MissingKey(f"no {where} (found: {there[:200]})")
    if node is None:
        raise MissingKey(f"{' > '.join(path)} is null (not measured in this run)")
    return node


def number(data: Any, path: Path) -> float:
    value = lookup(data, path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MissingKey(f"{' > '.join(path)} is {value!r}, not a number")
    return float(value)


def verdict(value: float, target: Target | None) -> str:
    if target is None:
        return "reported"
    if target.met(value):
        return "met"
    gap = abs(value - target.value)
    side = "over" if target.op == LE else "under"
    return f"MISSED by {gap:.3g} ({100 * gap / abs(target.value):.0f}% {side})"


def _rounds(data: Any, check: Check) -> str:
    if not check.rounds:
        return ""
    try:
        if len(check.rounds) == 2:
            low, high = (number(data, p) for p in check.rounds)
        else:
            values = [float(v) for v in lookup(data, check.rounds[0])]
            if not values:
                return ""
            low, high = min(values), max(values)
    except (MissingKey, TypeError, ValueError):
        return ""
    return f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}"


def _detail(data: Any, check: Check) -> str:
    if not check.detail:
        return ""
    try:
        return check.detail.format(**{k: number(data, p) for k, p in check.detail_keys.items()})
    except MissingKey:
        return ""


def build_row(check: Check, results: dict[str, Any], loads: dict[str, str]) -> Row:
    """One check against ``results`` (part name -> its JSON, or a string saying why not)."""
    row = Row(check, load=loads.get(check.part, ""))
    data = results.get(check.part)
    if data is None or isinstance(data, str):
        row.verdict = f"not run: {data or 'part not in this run'}"
        return row
    try:
        value = number(data, check.value)
        if check.per is not None:
            value /= number(data, check.per)
    except (MissingKey, ZeroDivisionError) as exc:
        row.verdict = f"missing: {exc}"
        return row
    row.value, row.verdict = value, verdict(value, check.target)
    row.rounds, row.detail = _rounds(data, check), _detail(data, check)
    return row


def build_rows(results: dict[str, Any], loads: dict[str, str] | None = None,
               checks: tuple[Check, ...] | None = None) -> list[Row]:
    return [build_row(c, results, loads or {}) for c in (CHECKS if checks is None else checks)]


def load_range(samples: list[float]) -> str:
    """``1.2-3.4``: the lowest and highest 1-minute load average sampled during a part."""
    if not samples:
        return ""
    low, high = f"{min(samples):.1f}", f"{max(samples):.1f}"
    return low if low == high else f"{low}-{high}"


def _value(row: Row) -> str:
    if row.value is None:
        return "-"
    return f"{row.value:.1f}{row.check.unit}" if row.check.unit else f"{row.value:.3f}"


def _target(row: Row) -> str:
    return f"{row.check.target}{row.check.unit}" if row.check.target else "-"


def _short(verdict: str) -> str:
    """A verdict for the column: why a row is empty is said under the table."""
    return verdict.split(":", 1)[0] + " (below)" if ":" in verdict else verdict


def render(rows: list[Row]) -> str:
    """The table as text, one line per check; details and empty rows' reasons under it."""
    head = ("pt", "check", "value", "target", "verdict", "per round", "load 1m")
    lines = [(r.check.point, r.check.what, _value(r), _target(r), _short(r.verdict),
              r.rounds or "-", r.load or "-") for r in rows]
    widths = [max(len(x) for x in column) for column in zip(head, *lines, strict=True)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
           for cells in [head, *lines]]
    out += [f"  {r.check.what}: {r.detail}" for r in rows if r.detail]
    out += [f"  {r.check.what}: {r.verdict}" for r in rows if ":" in r.verdict]
    return "\n".join(out)


def markdown(rows: list[Row], compact: bool = False) -> str:
    """The same table in Markdown; ``compact`` (the README's) has no per-round column and
    gives a verdict's first words only (the reasons are in ``--report``'s output)."""
    head = ("point", "check", "value", "target", "verdict", *(() if compact else ("per round",)),
            "load")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        what = f"{r.check.what} ({r.detail})" if r.detail else r.check.what
        verdict = r.verdict.split(" (")[0].split(":")[0] if compact else r.verdict
        cells = (r.check.point, what, _value(r), _target(r), verdict,
                 *(() if compact else (r.rounds or "-",)), r.load or "-")
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out)


# -- issue 17 -------------------------------------------------------------------------------
PARTS = (
    Part("backup", "bench_backup.py",
         ("--size-mb", "{backup_mb}", "--repeat", "{rounds}", "--variants", "a,b,c,d,g,h",
          "--double")),
    Part("parallel", "bench_parallel.py",
         ("--size-mb", "{parallel_mb}", "--rounds", "{rounds}", "--jobs", "1,2,4")),
    Part("restore", "bench_restore.py",
         ("--size-mb", "{restore_mb}", "--repeat", "{rounds}",
          "--variants", "raw_j2,ours_j2,verify,read_sha256,floor")),
    Part("restore16", "bench_restore.py",
         ("--size-mb", "{restore_mb}", "--repeat", "{rounds}", "--tables", "16",
          "--variants", "raw_j2,ours_j2")),
    Part("wal", "bench_wal.py",
         ("--size-mb", "{wal_mb}", "--rounds", "{rounds}", "--backlog-segments",
          "{backlog_segments}", "--pgbench-seconds", "{pgbench_seconds}")),
)



def _backup(name: str) -> dict[str, Any]:
    """A ``bench_backup`` ratio's value and per-round paths."""
    ratio = ("ratios", f"[name={name}]")
    return {"value": (*ratio, "value"), "rounds": ((*ratio, "per_round"),)}


def _restore(key: str) -> dict[str, Any]:
    """A ``bench_restore`` ratio: the ratio of the medians, and the per-round range."""
    ratio = ("ratios", key)
    return {"value": (*ratio, "value"),
            "rounds": ((*ratio, "round_min"), (*ratio, "round_max"))}


def _jobs(n: int) -> tuple[Path, Path, Path]:
    row = ("rows", f"jobs={n}")
    return (*row, "wall_vs_single"), (*row, "stored_vs_single"), (*row, "rss_mib")


CHECKS = (
    Check("1, 3", "ours to SeaweedFS vs pg_dump | zstd | aws s3 cp - (g/h)", "backup",
          **_backup("wall g/h"), target=Target(LE, 1.0),
          detail="ours {g:.2f} s, aws pipe {h:.2f} s",
          detail_keys={"g": ("summary", "g", "wall_s", "median"),
                       "h": ("summary", "h", "wall_s", "median")}),
    Check("1", "ours to moto vs to SeaweedFS (d/g)", "backup", **_backup("wall d/g")),
    Check("2", "parallel backup, 2 jobs vs one stream (wall)", "parallel", _jobs(2)[0],
          Target(LE, 0.65), detail="2 jobs {j2:.2f} s, 4 jobs {j4:.2f} s, one stream {j1:.2f} s",
          detail_keys={f"j{n}": ("rows", f"jobs={n}", "wall_s") for n in (1, 2, 4)}),
    Check("2", "parallel backup, 4 jobs vs one stream (wall)", "parallel", _jobs(4)[0]),
    Check("2", "pg_dump -Fc -Z0 | zstd pipe vs one stream (wall)", "parallel",
          ("rows", "raw", "wall_vs_single")),
    Check("2", "CPU floor of 2 jobs (their core-seconds / the cores) vs one stream", "parallel",
          ("rows", "jobs=2", "floor_vs_single"),
          detail="{own:.2f} core-s / {cores:.0f} = {floor:.2f} s; 2 jobs ran {wall:.2f}x of it",
          detail_keys={"own": ("rows", "jobs=2", "own_core_s"), "cores": ("cores",),
                       "floor": ("rows", "jobs=2", "floor_s"),
                       "wall": ("rows", "jobs=2", "wall_vs_floor")}),
    Check("2", "pg_dump -Fc -Z0 | zstd in 2 streams on one snapshot vs in one (wall)",
          "parallel", ("rows", "raw2", "wall_vs_raw"),
          detail="2 streams {r2:.2f} s, one {r1:.2f} s",
          detail_keys={"r2": ("rows", "raw2", "wall_s"), "r1": ("rows", "raw", "wall_s")}),
    Check("2", "parallel backup, 2 jobs: stored size vs one stream", "parallel", _jobs(2)[1],
          Target(LE, 1.05)),
    Check("2", "parallel backup, 4 jobs: stored size vs one stream", "parallel", _jobs(4)[1],
          Target(LE, 1.05)),
    *(Check("2", f"parallel backup, {n} job{'s' * (n > 1)}: peak RSS", "parallel", _jobs(n)[2],
            Target(LE, 150 + 40 * (n - 1)), unit=" MiB") for n in (1, 2, 4)),
    Check("4", "restore jobs=2 vs pg_restore -j2, 1 table", "restore",
          **_restore("ours_j2/raw_j2"), target=Target(LE, 1.15)),
    Check("4", "restore jobs=2 vs pg_restore -j2, 16 tables", "restore16",
          **_restore("ours_j2/raw_j2"), target=Target(LE, 1.15)),
    Check("5", "WAL drain of the backlog, ours", "wal", ("summary", "drain/ours", "seg_per_s"),
          Target(GE, 25), unit=" seg/s",
          detail="cp {cp:.1f} seg/s", detail_keys={"cp": ("summary", "drain/cp", "seg_per_s")}),
    Check("5", "WAL drain, ours vs cp", "wal", ("summary", "ratio drain seg_per_s ours/cp")),
    Check("5", "pgbench tps with our archiving vs cp archiving", "wal",
          ("summary", "ratio sustained tps ours/cp"), Target(GE, 0.9)),
    Check("6", "base backup vs pg_basebackup -Z server-zstd", "wal",
          ("summary", "ratio base backup ours/raw"), Target(LE, 1.15),
          rounds=(("summary", "ratio base backup ours/raw per round"),)),
    Check("-", "verify vs read + sha256 + zstd -d (no pg_restore; keep it there)", "restore",
          ("medians_s", "verify"), per=("medians_s", "floor")),
    Check("-", "verify vs one read + sha256", "restore",
          **_restore("verify/read_sha256"), target=Target(LE, 1.5)),
    Check("RSS", "our peak RSS, backup to local storage (c), worst run", "backup",
          _backup("our peak RSS (c), worst run")["value"], Target(LE, 150), unit=" MB"),
    Check("RSS", "our peak RSS, backup to S3 (d), worst run", "backup",
          _backup("our peak RSS (d), worst run")["value"], Target(LE, 150), unit=" MB"),
    *(Check("RSS", f"our peak RSS growth ({v}) on a database twice the size", "backup",
            _backup(f"peak RSS growth ({v}), 1x -> 2x db")["value"], Target(LE, 10), unit=" %",
            detail="{small:.1f} MB -> {big:.1f} MB",
            detail_keys={"small": ("summary", v, "rss_mb", "median"),
                         "big": ("summary", f"{v}@bench2x", "rss_mb", "median")})
      for v in ("c", "d")),
)


# -- the README's block ---------------------------------------------------------------------
BLOCK_BEGIN = "<!-- bench_all.py --readme: begin -->"
BLOCK_END = "<!-- bench_all.py --readme: end -->"


def run_summary(saved: dict[str, Any]) -> str:
    """One sentence on a saved run: when, how long, sizes and rounds, and the load."""
    o, loads = saved["options"], [x for p in saved["parts"].values() for x in p["load_1m"]]
    minutes = saved.get("wall_s", sum(p["wall_s"] for p in saved["parts"].values())) / 60
    return (f"Run of {saved['started_at'][:16].replace('T', ' ')} UTC: {minutes:.1f} min on "
            f"{saved['cpus']} cores at load {load_range(loads)} ({o['backup_mb']} MiB backup, "
            f"{o['restore_mb']} MiB restore, {o['parallel_mb']} MiB in 16 tables parallel, "
            f"{o['wal_mb']} MiB WAL with {o['backlog_segments']} backlog segments and pgbench "
            f"{o['pgbench_seconds']} s; {o['rounds']} round(s)).")


def readme_block(saved: dict[str, Any]) -> str:
    loads = {name: load_range(info["load_1m"]) for name, info in saved["parts"].items()}
    return "\n".join((BLOCK_BEGIN, run_summary(saved), "",
                      markdown(build_rows(saved["results"], loads), compact=True), BLOCK_END))


def replace_block(text: str, block: str) -> str:
    """``text`` with what lies between the markers (markers included) replaced by ``block``."""
    if BLOCK_BEGIN not in text or BLOCK_END not in text:
        raise ValueError(f"no {BLOCK_BEGIN} ... {BLOCK_END} markers to replace")
    head, rest = text.split(BLOCK_BEGIN, 1)
    return head + block + rest.split(BLOCK_END, 1)[1]
