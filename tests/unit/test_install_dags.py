"""``amprenta-backup install-dags``: the DAG files shipped in the package, into a dags folder."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from amprenta_backup.cli.dags import shipped_dags
from amprenta_backup.cli.main import main

REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_the_package_ships_every_dag_file_of_the_repo() -> None:
    assert [p.name for p in shipped_dags()] == sorted(p.name for p in REPO_DAGS.glob("*.py"))


def test_copies_then_leaves_identical_files_and_refuses_to_overwrite_edits(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-dags", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [p.name for p in shipped_dags()] and "daily_backup.py" in names
    assert all(filecmp.cmp(tmp_path / n, REPO_DAGS / n, shallow=False) for n in names)
    assert main(["install-dags", str(tmp_path)]) == 0
    assert f"unchanged: {', '.join(names)}" in capsys.readouterr().out

    edited = tmp_path / "restore.py"
    edited.write_text("# my own restore DAG\n")
    (tmp_path / "daily_backup.py").unlink()
    assert main(["install-dags", str(tmp_path)]) == 2
    assert "restore.py exists with other content" in capsys.readouterr().err
    assert edited.read_text() == "# my own restore DAG\n"
    assert not (tmp_path / "daily_backup.py").exists()  # nothing half-written

    assert main(["install-dags", str(tmp_path), "--force"]) == 0
    assert filecmp.cmp(edited, REPO_DAGS / "restore.py", shallow=False)


def test_link_mode_points_at_the_package_and_a_missing_folder_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-dags", str(tmp_path), "--link", "--json"]) == 0
    link = tmp_path / "daily_backup.py"
    assert link.is_symlink() and link.resolve() == (REPO_DAGS / "daily_backup.py").resolve()
    assert main(["install-dags", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
