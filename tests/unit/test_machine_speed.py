"""`make bench` records how fast the machine was (bench/_machine_speed.py), and its report
prints it, so that a missed target can be told apart from a slow evening. No benchmark runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import zstandard

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import _machine_speed as speed  # noqa: E402
import bench_all  # noqa: E402


def test_the_calibration_data_compresses_like_the_benchmarks_data() -> None:
    data = speed.sample_text(1 << 20)
    assert len(data) == 1 << 20 and data[:9].isdigit()
    ratio = len(data) / len(zstandard.ZstdCompressor(level=1).compress(data))
    assert 1.8 < ratio < 4  # load_bulk's md5 text gives about 2.7; zeros would give 1000s


def test_a_report_prints_the_machine_speed_of_its_run_and_older_runs_still_print(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = json.loads((BENCH / "results" / "all-20mb-1round.json").read_text(encoding="utf-8"))
    old = tmp_path / "old.json"
    old.write_text(json.dumps(saved), encoding="utf-8")
    assert bench_all.main(["--report", str(old)]) == 0
    assert "machine speed" not in capsys.readouterr().out
    figures = {"python_loop_ms": 73.6, "zstd1_16mib_ms": 82.5, "zstd_fast5_16mib_ms": 28.6,
               "sha256_16mib_ms": 15.2, "zstd1_ratio": 2.32}
    saved["machine_speed"] = {"start": figures, "end": {**figures, "zstd1_16mib_ms": 121.0}}
    new = tmp_path / "new.json"
    new.write_text(json.dumps(saved), encoding="utf-8")
    assert bench_all.main(["--report", str(new)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "machine speed" in x)
    assert "zstd-1 82.5/121 ms" in line and "Python loop of 1 M additions 73.6/73.6 ms" in line
