"""Summaries, ratios against targets, and the printed table of bench_backup.py."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any

MB = 1_000_000
TARGETS = {"d/a": 0.35, "stored d/a": 1.0, "peak_rss_mb": 150.0, "double_rss_pct": 10.0,
           "copy e/d": 1.05, "f/c": 1.1, "g/h": 1.0}
LABELS = {
    "a": "(a) pg_dump -Fc (zlib) -> file",
    "b": "(b) pg_dump -Fc -Z0 > /dev/null",
    "c": "(c) ours -> LocalStorage",
    "d": "(d) ours -> moto S3",
    "e": "(e) (d), second copy on",
    "f": "(f) (c), client-side encryption on",
    "g": "(g) ours -> SeaweedFS S3",
    "h": "(h) pg_dump|zstd|aws s3 cp -> weed",
}
CPU_KEYS = ("py_s", "pg_dump_s", "server_s", "moto_s", "seaweed_s", "machine_busy_s")


def _key(sample: dict[str, Any]) -> str:
    return sample["variant"] if sample["db"] == "bench" else f"{sample['variant']}@{sample['db']}"


def _stats(values: Iterable[float | None]) -> dict[str, float] | None:
    clean = [float(v) for v in values if v is not None]
    if not clean:
        return None
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean),
            "n": len(clean)}


def summarize(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Median/min/max per variant (and database) of every measured quantity."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        groups.setdefault(_key(sample), []).append(sample)

    def col(rows: list[dict[str, Any]], get: Callable[[dict[str, Any]], Any]) -> Any:
        return _stats(get(r) for r in rows)

    summary: dict[str, dict[str, Any]] = {}
    for key, rows in groups.items():
        summary[key] = {
            "wall_s": col(rows, lambda r: r["wall_s"]),
            "rss_mb": col(rows, lambda r: r["rss_kib"] * 1024 / MB),
            "pg_dump_rss_mb": col(rows, lambda r: r.get("pg_dump_rss_kib", 0) * 1024 / MB
                                  if "pg_dump_rss_kib" in r else None),
            "self_vmhwm_mb": col(rows, lambda r: r["self_vmhwm_kib"] * 1024 / MB
                                 if r.get("self_vmhwm_kib") else None),
            "stored_mb": col(rows, lambda r: r["stored_bytes"] / MB
                             if r["stored_bytes"] is not None else None),
            "raw_mb": col(rows, lambda r: r["raw_bytes"] / MB if r.get("raw_bytes") else None),
            "run_s": col(rows, lambda r: r.get("run_s")),
            "copy_s": col(rows, lambda r: r.get("copy_s")),
            "cpu": {k: col(rows, lambda r, k=k: r["cpu"].get(k)) for k in CPU_KEYS},
        }
    return summary


def _verdict(value: float, target: float, unit: str = "") -> str:
    if value <= target:
        return "met"
    over = value - target
    return f"MISSED by {over:.3g}{unit} ({over / target * 100:.0f}% over)"


def _per_round(samples: list[dict[str, Any]], num: str, den: str,
               get: Callable[[dict[str, Any]], float]) -> list[float]:
    by_round: dict[int, dict[str, float]] = {}
    for s in samples:
        by_round.setdefault(s["round"], {})[_key(s)] = get(s)
    return [r[num] / r[den] for r in by_round.values() if num in r and den in r and r[den]]


def ratios(summary: dict[str, Any], samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ratios the brief asks for, each with its target (None: reported only)."""
    out: list[dict[str, Any]] = []

    def wall_ratio(num: str, den: str, target: float | None) -> None:
        if num not in summary or den not in summary:
            return
        value = summary[num]["wall_s"]["median"] / summary[den]["wall_s"]["median"]
        rounds = _per_round(samples, num, den, lambda s: s["wall_s"])
        out.append({"name": f"wall {num}/{den}", "value": value, "target": target,
                    "per_round": rounds, "unit": "",
                    "verdict": _verdict(value, target) if target is not None else "-"})

    wall_ratio("c", "a", None)
    wall_ratio("d", "a", TARGETS["d/a"])
    wall_ratio("d", "b", None)
    wall_ratio("g", "a", TARGETS["d/a"])
    wall_ratio("g", "h", TARGETS["g/h"])  # ours vs the hand-written aws s3 cp pipe, same server
    wall_ratio("d", "g", None)  # moto vs SeaweedFS
    if "e" in summary and "d" in summary:  # the primary's backup alone, copy on vs off
        value = summary["e"]["run_s"]["median"] / summary["d"]["run_s"]["median"]
        copy_s = summary["e"]["copy_s"]["median"]
        rounds = _per_round(samples, "e", "d", lambda s: s.get("run_s") or 0.0)
        out.append({"name": "primary backup, copy on/off e/d", "value": value,
                    "target": TARGETS["copy e/d"], "unit": "", "verdict":
                    _verdict(value, TARGETS["copy e/d"]), "per_round": rounds, "detail":
                    f"per round {min(rounds):.3f}-{max(rounds):.3f}; the copy after it: "
                    f"{copy_s:.2f} s, {summary['e']['stored_mb']['median'] / copy_s:.0f} MB/s"})
    wall_ratio("f", "c", TARGETS["f/c"])  # client-side encryption on vs off, same run
    if "d" in summary and "a" in summary:
        value = summary["d"]["stored_mb"]["median"] / summary["a"]["stored_mb"]["median"]
        rounds = _per_round(samples, "d", "a", lambda s: s["stored_bytes"] or 0)
        out.append({"name": "stored size d/a", "value": value, "target": TARGETS["stored d/a"],
                    "per_round": rounds, "unit": "",
                    "verdict": _verdict(value, TARGETS["stored d/a"])})
    for key in ("c", "d", "c@bench2x", "d@bench2x"):
        if key in summary:
            worst = summary[key]["rss_mb"]["max"]
            out.append({"name": f"our peak RSS ({key}), worst run", "value": worst,
                        "target": TARGETS["peak_rss_mb"], "unit": " MB",
                        "per_round": [], "median": summary[key]["rss_mb"]["median"],
                        "verdict": _verdict(worst, TARGETS["peak_rss_mb"], " MB")})
    for variant in ("c", "d"):
        big = f"{variant}@bench2x"
        if big in summary and variant in summary:
            small_mb = summary[variant]["rss_mb"]["median"]
            big_mb = summary[big]["rss_mb"]["median"]
            pct = (big_mb - small_mb) / small_mb * 100
            out.append({"name": f"peak RSS growth ({variant}), 1x -> 2x db", "value": pct,
                        "target": TARGETS["double_rss_pct"], "unit": " %", "per_round": [],
                        "detail": f"{small_mb:.1f} MB -> {big_mb:.1f} MB",
                        "verdict": _verdict(pct, TARGETS["double_rss_pct"], " %")})
    return out


def build_report(raw: dict[str, Any]) -> dict[str, Any]:
    summary = summarize(raw["samples"])
    return {**raw, "summary": summary, "targets": TARGETS,
            "ratios": ratios(summary, raw["samples"])}


def _fmt(stat: dict[str, float] | None, digits: int = 2) -> str:
    if stat is None:
        return "-"
    if stat["n"] == 1:
        return f"{stat['median']:.{digits}f}"
    return f"{stat['median']:.{digits}f} [{stat['min']:.{digits}f}-{stat['max']:.{digits}f}]"


def _median(stat: dict[str, float] | None) -> str:
    return "-" if stat is None else f"{stat['median']:.1f}"


def _label(key: str) -> str:
    variant, _, db = key.partition("@")
    return LABELS[variant] + (", 2x db" if db else "")


def print_report(report: dict[str, Any]) -> None:
    env, dbs = report["environment"], report["databases"]
    args = report["args"]
    print(f"\namprenta-backup benchmark: {env['cpus']} CPUs, {env['server']}, {env['pg_dump']}, "
          f"zstandard {env['zstandard']}, boto3 {env['boto3']}, moto {env['moto']}")
    s3 = ""
    if args.get("part_size_mib") or args.get("in_flight"):
        s3 = (f"S3 parts {args.get('part_size_mib') or 'default'} MiB x "
              f"{args.get('in_flight') or 'default'} in flight, ")
    print(f"ours: zstd level {args['level']}, {args['threads']} threads, {s3}sha256, catalog "
          f"record, row counts; rounds: {args['repeat']} (order rotated each round); "
          "figures: median [min-max]; MB = 10^6 bytes")
    for name, db in dbs.items():
        print(f"database {name}: pg_database_size {db['size_bytes']:,} B "
              f"({db['size_bytes'] / 2**20:.0f} MiB), built in {db['build_s']:.1f} s, "
              f"{db['rows']:,} rows; SELECT count(*) alone {db['count_star_s']:.2f} s")
    print(f"RSS floor of the wait4 trampoline: {report['spawn_floor_kib'] * 1024 / MB:.1f} MB "
          "(values near it mean 'at most this')\n")
    head = (f"{'variant':<38} {'wall s':<21} {'peak RSS MB: process':<23} "
            f"{'pg_dump':<19} {'stored MB':<10} {'raw MB':<8}")
    print(head)
    print("-" * len(head))
    summary = report["summary"]
    order = [k for k in ("a", "b", "c", "d", "e", "f", "g", "h", "c@bench2x", "d@bench2x")
             if k in summary]
    for key in order:
        row = summary[key]
        ours = key[0] in "cdefg"
        process = ("py " if ours else "pg_dump ") + _fmt(row["rss_mb"], 1)
        pg_dump = _fmt(row["pg_dump_rss_mb"], 1) if ours else "(same)"
        print(f"{_label(key):<38} {_fmt(row['wall_s']):<21} {process:<23} {pg_dump:<19} "
              f"{_median(row['stored_mb']):<10} {_median(row['raw_mb']):<8}")
    print("\nCPU seconds per run, median (machine = busy core-seconds of every process)")
    print(f"  {'':<36} {'py':>7} {'pg_dump':>8} {'server':>7} {'moto':>6} {'weed':>6} "
          f"{'machine':>8}")
    for key in order:
        cpu = summary[key]["cpu"]
        c = [f"{cpu[k]['median']:.2f}" if cpu[k] else "-" for k in CPU_KEYS]
        print(f"  {_label(key):<36} {c[0]:>7} {c[1]:>8} {c[2]:>7} {c[3]:>6} {c[4]:>6} "
              f"{c[5]:>8}")
    print("\nratio / check                                  value      target    verdict")
    for r in report["ratios"]:
        target = "-" if r["target"] is None else (
            f"<= {r['target']:g}{r['unit']}")
        value = f"{r['value']:.3f}" if not r["unit"] else f"{r['value']:.1f}{r['unit']}"
        extra = ""
        if r["per_round"]:
            extra = f"  (per round {min(r['per_round']):.3f}-{max(r['per_round']):.3f})"
        if r.get("detail"):
            extra = f"  ({r['detail']})"
        if r.get("median") is not None:
            extra = f"  (median {r['median']:.1f} MB)"
        print(f"{r['name']:<46} {value:<10} {target:<9} {r['verdict']}{extra}")
