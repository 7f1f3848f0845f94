"""The built wheel, installed into a fresh virtualenv without this repository: its DAG files
and its commands come with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UV = str(Path(sys.executable).with_name("uv"))


def _run(*argv: str, cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_wheel_brings_the_dag_files_and_install_dags(tmp_path: Path) -> None:
    _run(UV, "build", "--wheel", "-q", "-o", str(tmp_path / "dist"), str(REPO), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("amprenta_backup-*.whl")
    venv = tmp_path / "venv"
    _run(UV, "venv", "-q", "--python", sys.executable, str(venv), cwd=tmp_path)
    # the runtime dependencies come from uv's cache (bootstrap filled it), pinned by the lock
    _run(UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "-c",
         str(REPO / "requirements.txt"), str(wheel), cwd=tmp_path)
    dags = tmp_path / "dags"
    dags.mkdir()
    out = _run(str(venv / "bin" / "amprenta-backup"), "install-dags", str(dags), cwd=tmp_path)
    shipped = sorted(p.name for p in dags.iterdir())
    assert shipped == sorted(p.name for p in (REPO / "dags").glob("*.py"))
    assert out.strip().endswith(f"{len(shipped)} DAG files in {dags}")
    for name in shipped:  # the installed copy, not the repository's files
        assert (dags / name).read_text() == (REPO / "dags" / name).read_text()
    site = _run(str(venv / "bin" / "python"), "-c",
                "import amprenta_backup, pathlib; print(pathlib.Path("
                "amprenta_backup.__file__).parent)", cwd=tmp_path).strip()
    assert site.startswith(str(venv)) and (Path(site) / "dags" / "daily_backup.py").is_file()
    assert (venv / "bin" / "amprenta-wal").is_file()
