"""`make bench`'s one table (bench/_bench_table.py) from recorded results: every issue-17 row,
its verdict against the target, and a row that names what is missing instead of a crash.
No benchmark runs here."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
sys.path.insert(0, str(RESULTS.parent))
import _bench_table as table  # noqa: E402

# bench_all.py --size-mb 20 --rounds 1 at load 3-5; its parallel part re-run alone (load 1.5)
TINY = RESULTS / "all-20mb-1round.json"


def recorded() -> dict[str, Any]:
    return json.loads(TINY.read_text(encoding="utf-8"))["results"]


def rows_by_what(results: dict[str, Any]) -> dict[str, table.Row]:
    return {row.check.what: row for row in table.build_rows(results)}


def test_the_recorded_run_gives_every_issue_17_row_a_value_and_a_verdict() -> None:
    rows = rows_by_what(recorded())
    assert len(rows) == len(table.CHECKS)
    assert {row.check.point for row in rows.values()} >= {"1, 3", "1", "2", "4", "5", "6", "RSS"}
    verdicts = {what: row.verdict.split(" by ")[0] for what, row in rows.items()}
    assert verdicts == {
        "ours to SeaweedFS vs pg_dump | zstd | aws s3 cp - (g/h)": "MISSED",
        "ours to moto vs to SeaweedFS (d/g)": "reported",
        "parallel backup, 2 jobs vs one stream (wall)": "MISSED",
        "parallel backup, 4 jobs vs one stream (wall)": "reported",
        "pg_dump -Fc -Z0 | zstd pipe vs one stream (wall)": "reported",
        "CPU floor of 2 jobs (their core-seconds / the cores) vs one stream": "reported",
        "pg_dump -Fc -Z0 | zstd in 2 streams on one snapshot vs in one (wall)": "reported",
        "parallel backup, 2 jobs: stored size vs one stream": "met",
        "parallel backup, 4 jobs: stored size vs one stream": "met",
        "parallel backup, 1 job: peak RSS": "met",
        "parallel backup, 2 jobs: peak RSS": "met",
        "parallel backup, 4 jobs: peak RSS": "met",
        "restore jobs=2 vs pg_restore -j2, 1 table": "MISSED",
        "restore jobs=2 vs pg_restore -j2, 16 tables": "MISSED",
        "WAL drain of the backlog, ours": "MISSED",
        "WAL drain, ours vs cp": "reported",
        "pgbench tps with our archiving vs cp archiving": "met",
        "base backup vs pg_basebackup -Z server-zstd": "MISSED",
        "verify vs read + sha256 + zstd -d (no pg_restore; keep it there)": "reported",
        "verify vs one read + sha256": "MISSED",
        "our peak RSS, backup to local storage (c), worst run": "met",
        "our peak RSS, backup to S3 (d), worst run": "met",
        "our peak RSS growth (c) on a database twice the size": "met",
        "our peak RSS growth (d) on a database twice the size": "MISSED",
    }
    g_h = rows["ours to SeaweedFS vs pg_dump | zstd | aws s3 cp - (g/h)"]
    assert g_h.value == pytest.approx(1.023, abs=1e-3)
    assert g_h.verdict == "MISSED by 0.0232 (2% over)"
    assert g_h.detail == "ours 1.88 s, aws pipe 1.84 s"
    drain = rows["WAL drain of the backlog, ours"]
    assert (drain.value, drain.verdict) == (pytest.approx(3.66, abs=0.01),
                                            "MISSED by 21.3 (85% under)")
    growth = rows["our peak RSS growth (d) on a database twice the size"]
    assert (growth.verdict, growth.detail) == ("MISSED by 3.31 (33% over)",
                                               "95.4 MB -> 108.1 MB")
    parallel = recorded()["parallel"]["rows"]
    floor = rows["CPU floor of 2 jobs (their core-seconds / the cores) vs one stream"]
    assert floor.value == parallel["jobs=2"]["floor_vs_single"]
    assert floor.detail == (f"{parallel['jobs=2']['own_core_s']:.2f} core-s / 2 = "
                            f"{parallel['jobs=2']['floor_s']:.2f} s; 2 jobs ran "
                            f"{parallel['jobs=2']['wall_vs_floor']:.2f}x of it")
    raw2 = rows["pg_dump -Fc -Z0 | zstd in 2 streams on one snapshot vs in one (wall)"]
    assert raw2.value == parallel["raw2"]["wall_vs_raw"]
    assert raw2.detail == (f"2 streams {parallel['raw2']['wall_s']:.2f} s, "
                           f"one {parallel['raw']['wall_s']:.2f} s")
    medians = recorded()["restore"]["medians_s"]
    verify = rows["verify vs read + sha256 + zstd -d (no pg_restore; keep it there)"]
    assert verify.value == medians["verify"] / medians["floor"]


def test_each_row_agrees_with_the_verdict_its_benchmark_printed() -> None:
    results = recorded()
    rows = rows_by_what(results)
    own = {r["name"]: r for r in results["backup"]["ratios"]}
    for name, what in (("wall g/h", "ours to SeaweedFS vs pg_dump | zstd | aws s3 cp - (g/h)"),
                       ("our peak RSS (d), worst run",
                        "our peak RSS, backup to S3 (d), worst run")):
        assert rows[what].value == own[name]["value"]
        assert (rows[what].verdict == "met") == (own[name]["verdict"] == "met")
    restore = results["restore16"]
    ratio = restore["ratios"]["ours_j2/raw_j2"]["value"]
    row = rows["restore jobs=2 vs pg_restore -j2, 16 tables"]
    assert row.value == ratio
    assert (row.verdict == "met") == (ratio <= restore["targets"]["ours_j2/raw_j2"])


def test_a_key_a_benchmark_no_longer_writes_empties_its_row_only_and_names_the_key() -> None:
    results = copy.deepcopy(recorded())
    del results["wal"]["summary"]["ratio sustained tps ours/cp"]
    results["wal"]["summary"]["drain/ours"]["seg_per_s"] = None
    results["backup"]["ratios"] = [r for r in results["backup"]["ratios"]
                                   if r["name"] != "wall g/h"]
    results["restore16"] = "bench_restore.py exited with 1 (its output is above)"
    rows = rows_by_what(results)
    assert rows["pgbench tps with our archiving vs cp archiving"].verdict.startswith(
        "missing: no summary > ratio sustained tps ours/cp (found: ")
    assert rows["WAL drain of the backlog, ours"].verdict == (
        "missing: summary > drain/ours > seg_per_s is null (not measured in this run)")
    assert "no ratios > [name=wall g/h] (names there: wall c/a" in rows[
        "ours to SeaweedFS vs pg_dump | zstd | aws s3 cp - (g/h)"].verdict
    assert rows["restore jobs=2 vs pg_restore -j2, 16 tables"].verdict == (
        "not run: bench_restore.py exited with 1 (its output is above)")
    assert rows["base backup vs pg_basebackup -Z server-zstd"].verdict.startswith("MISSED")
    text = table.render(list(rows.values()))
    assert "missing (below)" in text and "exited with 1" in text
    assert sum(1 for r in rows.values() if r.value is None) == 4


def test_the_markdown_table_keeps_one_cell_per_column() -> None:
    lines = table.markdown(table.build_rows(recorded(), {"wal": "3.9-4.5"})).splitlines()
    assert len(lines) == 2 + len(table.CHECKS)
    for line in lines:  # a pipe in a check's name ("pg_dump | zstd") is escaped
        assert line.replace("\\|", "").count("|") == 8
    assert lines[-8].endswith("| 3.9-4.5 |")  # the pgbench row: a wal row


def test_the_readme_block_is_rewritten_from_a_saved_run_and_nothing_else_changes() -> None:
    saved = json.loads(TINY.read_text(encoding="utf-8"))
    readme = (RESULTS.parents[1] / "README.md").read_text(encoding="utf-8")
    once = table.replace_block(readme, table.readme_block(saved))
    assert table.replace_block(once, table.readme_block(saved)) == once
    before, after = readme.split(table.BLOCK_BEGIN)[0], readme.split(table.BLOCK_END)[1]
    assert once.startswith(before) and once.endswith(after)
    block = once.split(table.BLOCK_BEGIN)[1].split(table.BLOCK_END)[0]
    assert "1.4 min on 2 cores at load 1.5-5.2 (20 MiB backup" in block
    assert "| 1, 3 | ours to SeaweedFS vs pg_dump \\| zstd \\| aws s3 cp - (g/h)" in block
    with pytest.raises(ValueError, match="markers"):
        table.replace_block("# no block here\n", table.readme_block(saved))
