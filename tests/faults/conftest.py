"""The fault matrix: each test is one row, a fault and the outcome a user cares about.

A test names its fault with ``@pytest.mark.faults("SIGKILL mid-upload ({storage})")`` (the
braces are filled from the test's parameters) and records each outcome it has just asserted
with ``row.saw("record FAILED")``. At the end of the run the rows are printed as a table;
``AMPRENTA_FAULT_TABLE=PATH`` also writes it there as Markdown (docs/faults.md, "What survives
what" table is made that way).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.conftest import (  # noqa: F401 - fixtures shared with the engine tests
    big_source_conn,
    catalog,
    fresh_catalog,
    fresh_db,
    local_storage,
    s3_storage,
    source_conn,
)

ROWS = pytest.StashKey[list["FaultRow"]]()
ROW_OF_ITEM = pytest.StashKey["FaultRow"]()


@dataclass
class FaultRow:
    """One row of the table: the fault and the outcomes asserted so far."""

    fault: str
    outcomes: list[str] = field(default_factory=list)
    result: str = "not run"

    def saw(self, outcome: str) -> None:
        """Record an outcome the test has just asserted."""
        self.outcomes.append(outcome)

    def cells(self) -> tuple[str, str, str]:
        return self.fault, ", ".join(self.outcomes) or "-", self.result


def _fault_name(item: pytest.Item) -> str:
    marker = item.get_closest_marker("faults")
    name = str(marker.args[0]) if marker and marker.args else item.name
    params = getattr(getattr(item, "callspec", None), "params", {})
    try:
        return name.format(**params)
    except (KeyError, IndexError):  # filled in by the test itself (row.fault = ...)
        return name


@pytest.fixture
def row(request: pytest.FixtureRequest) -> FaultRow:
    """The fault-table row of this test."""
    found = FaultRow(_fault_name(request.node))
    request.node.stash[ROW_OF_ITEM] = found
    request.config.stash.setdefault(ROWS, []).append(found)
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> object:
    report = yield
    found = item.stash.get(ROW_OF_ITEM, None)
    if found is not None and (report.when == "call" or report.outcome != "passed"):
        if hasattr(report, "wasxfail"):
            found.result = "pending: " + str(report.wasxfail)
        elif report.outcome == "failed":
            found.result = f"FAILED ({report.when})"
        else:
            found.result = report.outcome
    return report


def render(rows: list[FaultRow]) -> list[str]:
    """The rows as a Markdown table."""
    lines = ["| Fault | Outcome | Test |", "|---|---|---|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |" for r in rows]
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    terminalreporter.section("fault matrix: what survives what")
    for line in render(rows):
        terminalreporter.write_line(line)
    path = os.environ.get("AMPRENTA_FAULT_TABLE")
    if path:
        Path(path).write_text("\n".join(render(rows)) + "\n")
