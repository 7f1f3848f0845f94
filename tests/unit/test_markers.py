"""Tests are marked by folder, so `-m "not integration"` runs exactly the server-free ones."""

from __future__ import annotations

import re
import tomllib

from tests.support.markers import FOLDER_MARKS, TESTS, marks_for


def test_each_folder_gets_its_markers() -> None:
    assert marks_for(TESTS / "unit" / "test_settings.py") == ()
    assert marks_for(TESTS / "integration" / "wal" / "test_archive.py") == ("integration",)
    assert set(marks_for(TESTS / "airflow" / "test_daily_backup.py")) == {"airflow",
                                                                         "integration"}
    assert set(marks_for(TESTS / "e2e" / "test_deployment.py")) == {"e2e", "airflow",
                                                                   "integration"}
    assert marks_for(TESTS.parent / "bench" / "bench_backup.py") == ()


def test_every_marker_used_is_declared_in_pyproject() -> None:
    config = tomllib.loads((TESTS.parent / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {re.split(r"[:(]", m)[0] for m in config["tool"]["pytest"]["ini_options"]["markers"]}
    used = {name for names in FOLDER_MARKS.values() for name in names}
    assert used <= declared
    assert all((TESTS / folder).is_dir() for folder in FOLDER_MARKS)
