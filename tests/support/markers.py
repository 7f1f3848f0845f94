"""Markers by folder: a test's folder says which servers it needs (see pyproject markers)."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent

# tests/unit needs no server and gets no marker: `-m "not integration"` selects it
FOLDER_MARKS: dict[str, tuple[str, ...]] = {
    "integration": ("integration",),
    "airflow": ("airflow", "integration"),
    "e2e": ("e2e", "airflow", "integration"),
    "faults": ("faults", "integration"),
    "distributed": ("distributed", "e2e", "airflow", "integration"),
}


def marks_for(path: Path) -> tuple[str, ...]:
    """The markers of a test file under ``tests/``, from its top folder."""
    try:
        top = Path(path).resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return ()
    return FOLDER_MARKS.get(top, ())
