"""House rules that keep the engine usable without Airflow and the DAG files thin."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "plugins" / "amprenta_backup" / "core"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_never_imports_airflow() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.startswith("airflow"))
        for path in CORE.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_imports_in_a_process_without_airflow() -> None:
    code = (
        "import sys, importlib, pkgutil, amprenta_backup.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'amprenta_backup.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert not any(k == 'airflow' or k.startswith('airflow.') for k in sys.modules), "
        "sorted(k for k in sys.modules if k.startswith('airflow'))[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dag_files_hold_no_functions_or_classes() -> None:
    for path in (ROOT / "dags").glob("*.py"):
        tree = ast.parse(path.read_text())
        defs = [n.name for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
        assert defs == [], f"{path.name} defines {defs}: move logic into plugins/amprenta_backup"
