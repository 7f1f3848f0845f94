"""What the CLIs write to stderr: text for people, JSON Lines under ``--json`` (every line
one object, warnings included, so that a script parsing stderr never meets plain text)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from amprenta_backup.cli import jsonlines


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger and the JSON mode put back after the test (which empties the root's
    handlers, pytest's included, to be a fresh CLI process)."""
    root = logging.getLogger()
    handlers, level, mode = root.handlers[:], root.level, jsonlines.Mode.json
    yield
    root.handlers[:], jsonlines.Mode.json = handlers, mode
    root.setLevel(level)


def test_under_json_every_line_is_an_object_and_warnings_are_objects_too(
        root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    jsonlines.Mode.json = True
    logging.getLogger().handlers[:] = []
    jsonlines.configure_logging(False, "%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("amprenta_backup.core.restore.fallback")
    log.info("not shown without -v")
    log.warning("primary unreadable (%s); falling back to the copy", "timeout")
    jsonlines.warn("the catalog is unreachable (refused); answering from file:///b")
    jsonlines.write("error", {"type": "PreconditionError", "message": "no backup", "exit_code": 2})
    assert [json.loads(line) for line in capsys.readouterr().err.splitlines()] == [
        {"warning": {"level": "WARNING", "logger": "amprenta_backup.core.restore.fallback",
                     "message": "primary unreadable (timeout); falling back to the copy"}},
        {"warning": {"message": "the catalog is unreachable (refused); answering from "
                                "file:///b"}},
        {"error": {"type": "PreconditionError", "message": "no backup", "exit_code": 2}}]
    logging.getLogger().handlers[:] = []
    jsonlines.configure_logging(True, "")  # -v: the info lines too, as "log"
    log.info("restored %d tables", 3)
    assert json.loads(capsys.readouterr().err) == {"log": {
        "level": "INFO", "logger": "amprenta_backup.core.restore.fallback",
        "message": "restored 3 tables"}}


def test_without_json_stderr_is_text(root_logging: None,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    jsonlines.Mode.json = False
    logging.getLogger().handlers[:] = []
    jsonlines.configure_logging(False, "%(levelname)s %(name)s: %(message)s")
    logging.getLogger("amprenta_backup.x").warning("falling back to the copy")
    jsonlines.warn("the catalog is unreachable")
    assert capsys.readouterr().err == ("WARNING amprenta_backup.x: falling back to the copy\n"
                                       "warning: the catalog is unreachable\n")
    before = logging.getLogger().handlers[:]  # a program that set up logging keeps its own
    jsonlines.configure_logging(True, "")
    assert logging.getLogger().handlers == before
