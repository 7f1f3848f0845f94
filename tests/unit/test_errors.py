"""errors.first_line: what a record, a log line, an alert or a restore report shows of an error."""

from __future__ import annotations

import psycopg

from amprenta_backup.core.errors import first_line


def test_the_first_non_empty_line_of_a_multi_line_driver_error() -> None:
    error = psycopg.errors.DuplicateObject('\n role "app" already exists\nDETAIL: x\nHINT: y')
    assert first_line(error) == 'role "app" already exists'


def test_an_error_without_a_message_is_named_by_its_type() -> None:
    assert first_line(psycopg.OperationalError("  \n")) == "OperationalError"
    assert first_line("") == ""
