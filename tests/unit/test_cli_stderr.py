"""What the CLIs write to stderr: text for people, JSON Lines under ``--json`` (every line
one object, warnings included, so that a script parsing stderr never meets plain text)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from amprenta_backup.cli import jsonlines
from amprenta_backup.cli.main import main


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger put back after the test (which empties the root's handlers, pytest's
    included, to be a fresh CLI process)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_under_json_every_line_is_an_object_and_warnings_are_objects_too(
        root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger().handlers[:] = []
    jsonlines.configure_logging(False, "%(levelname)s %(name)s: %(message)s", as_json=True)
    log = logging.getLogger("amprenta_backup.core.restore.fallback")
    log.info("not shown without -v")
    log.warning("primary unreadable (%s); falling back to the copy", "timeout")
    jsonlines.warn("the catalog is unreachable (refused); answering from file:///b", True)
    jsonlines.write("error", {"type": "PreconditionError", "message": "no backup", "exit_code": 2})
    assert [json.loads(line) for line in capsys.readouterr().err.splitlines()] == [
        {"warning": {"level": "WARNING", "logger": "amprenta_backup.core.restore.fallback",
                     "message": "primary unreadable (timeout); falling back to the copy"}},
        {"warning": {"message": "the catalog is unreachable (refused); answering from "
                                "file:///b"}},
        {"error": {"type": "PreconditionError", "message": "no backup", "exit_code": 2}}]
    logging.getLogger().handlers[:] = []
    jsonlines.configure_logging(True, "", as_json=True)  # -v: the info lines too, as "log"
    log.info("restored %d tables", 3)
    assert json.loads(capsys.readouterr().err) == {"log": {
        "level": "INFO", "logger": "amprenta_backup.core.restore.fallback",
        "message": "restored 3 tables"}}


def test_without_json_stderr_is_text(root_logging: None,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger().handlers[:] = []
    jsonlines.configure_logging(False, "%(levelname)s %(name)s: %(message)s", as_json=False)
    logging.getLogger("amprenta_backup.x").warning("falling back to the copy")
    jsonlines.warn("the catalog is unreachable", False)
    assert capsys.readouterr().err == ("WARNING amprenta_backup.x: falling back to the copy\n"
                                       "warning: the catalog is unreachable\n")
    before = logging.getLogger().handlers[:]  # a program that set up logging keeps its own
    jsonlines.configure_logging(True, "", as_json=True)
    assert logging.getLogger().handlers == before


def test_each_call_of_main_writes_stderr_as_its_own_command_asks(
        root_logging: None, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--json`` is the command's own (click's context, not the process's): a later call
    without it, in the same process, warns in text."""
    with socket.socket() as closed:  # a port nobody listens on: the catalog is unreachable
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_CATALOG", f"postgresql://nobody@127.0.0.1:{port}/c")
    monkeypatch.setenv("BACKUP_STORAGE_TYPE", "local")
    monkeypatch.setenv("BACKUP_LOCAL_PATH", str(tmp_path))

    logging.getLogger().handlers[:] = []  # a fresh process: -v's logging is the CLI's own
    assert main(["-v", "list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == []
    lines = [json.loads(line) for line in err.splitlines()]  # the log lines are JSON too
    assert {kind for line in lines for kind in line} == {"log", "warning"}, lines
    assert any("catalog is unreachable" in line["warning"]["message"] for line in lines
               if "warning" in line)
    logging.getLogger().handlers[:] = []
    assert main(["list"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "catalog is unreachable" in err
