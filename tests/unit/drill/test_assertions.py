"""Drill settings and user assertions: every accepted form, and clear errors for the rest."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from amprenta_backup.core.drill.assertions import Expectation, parse_assertions
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.settings import DrillSettings

TAKEN = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(("expect", "value", "ok"), [
    ("> 0", 3, True), ("> 0", 0, False), ("==5", 5, True), ("== 5", Decimal("5.0"), True),
    (">= 1.5", 1.5, True), ("< 10", 10, False), ("<= -2", -3, True), ("!= 0", 0, False),
    ("> 0", "7", False), ("> 0", True, False), ("> 0", None, False),
    ("> 0", float("nan"), False), ("is null", None, True), ("IS NOT NULL", 0, True),
    ("is true", True, True), ("is true", 1, False), ("is false", False, True),
])
def test_comparisons_and_is_tests(expect: str, value: object, ok: bool) -> None:
    problem = Expectation.parse(expect, "t").check(value, TAKEN)
    assert (problem is None) is ok, problem


@pytest.mark.parametrize(("value", "ok"), [
    (TAKEN - timedelta(hours=47), True), (TAKEN - timedelta(hours=49), False),
    (datetime(2026, 10, 31, 12, 0), True),  # a timestamp without time zone is taken as UTC
    (date(2026, 10, 31), True), (date(2026, 10, 29), False),
    (TAKEN + timedelta(hours=5), True), (None, False), (42, False),
])
def test_freshness_is_measured_against_the_time_the_backup_was_taken(value: object,
                                                                   ok: bool) -> None:
    problem = Expectation.parse({"max_age_hours": 48}, "t").check(value, TAKEN)
    assert (problem is None) is ok, problem


@pytest.mark.parametrize("expect", [
    "> zero", "=> 1", "__import__('os')", "> 1 or 1", "", 5, None, ["> 0"],
    {"max_age_hours": 0}, {"max_age_hours": "48"}, {"max_age_days": 2},
    {"max_age_hours": 48, "extra": 1}, {"max_age_hours": True},
])
def test_anything_else_is_refused_with_the_accepted_forms(expect: object) -> None:
    with pytest.raises(ConfigError, match=r"src\[0\]\.expect: .*"):
        parse_assertions([{"name": "a", "sql": "SELECT 1", "expect": expect}], "src")


@pytest.mark.parametrize(("items", "message"), [
    ({"name": "a"}, "must be a list"),
    (["SELECT 1"], r"src\[0\] must be an object"),
    ([{"name": "a", "sql": "SELECT 1"}], r"src\[0\]: missing expect"),
    ([{"name": "a", "sql": "SELECT 1", "expect": "> 0", "expected": 1}], "unknown keys expected"),
    ([{"name": "a b", "sql": "SELECT 1", "expect": "> 0"}], r"src\[0\]\.name"),
    ([{"name": "a", "sql": "  ", "expect": "> 0"}], r"src\[0\]\.sql"),
    ([{"name": "a", "sql": "SELECT 1", "expect": "> 0", "targets": "pg"}], "targets"),
    ([{"name": "a", "sql": "SELECT 1", "expect": "> 0"}] * 2, "names a more than once"),
])
def test_malformed_assertions_name_the_item_and_field(items: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_assertions(items, "src")


def test_assertions_come_from_the_variable_and_a_yaml_or_json_file(tmp_path: Path) -> None:
    yaml_file = tmp_path / "drill.yaml"
    yaml_file.write_text("- name: fresh\n  sql: SELECT max(updated_at) FROM users;\n"
                         "  expect: {max_age_hours: 48}\n  targets: [pg_main]\n")
    env = {"BACKUP_DRILL_ASSERTIONS": json.dumps([{"name": "users", "sql": "SELECT count(*) "
                                                   "FROM users", "expect": "> 0"}]),
           "BACKUP_DRILL_ASSERTIONS_FILE": str(yaml_file)}

    users, fresh = DrillSettings.from_env(env).assertions

    assert (users.name, users.expect.text, users.targets) == ("users", "> 0", ())
    assert fresh.sql == "SELECT max(updated_at) FROM users" and fresh.targets == ("pg_main",)
    assert fresh.applies_to("pg_main") and not fresh.applies_to("pg_other")
    json_file = tmp_path / "drill.json"
    json_file.write_text(json.dumps([{"name": "users", "sql": "SELECT 1", "expect": "== 1"}]))
    with pytest.raises(ConfigError, match="users more than once"):
        DrillSettings.from_env({**env, "BACKUP_DRILL_ASSERTIONS_FILE": str(json_file)})


@pytest.mark.parametrize(("env", "message"), [
    ({"BACKUP_DRILL_ASSERTIONS": "[{'name': 'a'}]"}, "BACKUP_DRILL_ASSERTIONS is not valid JSON"),
    ({"BACKUP_DRILL_ASSERTIONS_FILE": "/nonexistent/drill.yaml"}, "cannot read it"),
    ({"BACKUP_DRILL_STRATEGY": "oldest"}, "BACKUP_DRILL_STRATEGY='oldest' is not one of"),
    ({"BACKUP_DRILL_RTO_SECONDS": "4h"}, "BACKUP_DRILL_RTO_SECONDS='4h' is not a number"),
    ({"BACKUP_DRILL_RTO_SECONDS": "0"}, "must be a number of seconds above 0"),
    ({"BACKUP_DRILL_WINDOW_DAYS": "0"}, "BACKUP_DRILL_WINDOW_DAYS=0 is out of range"),
    ({"BACKUP_DRILL_CONN_ID": "pg main"}, "BACKUP_DRILL_CONN_ID 'pg main' is not a valid"),
])
def test_bad_drill_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DrillSettings.from_env(env)


def test_settings_default_to_the_spec_objective_and_the_latest_backup() -> None:
    settings = DrillSettings.from_env({})
    assert (settings.rto_seconds, settings.strategy, settings.conn_id) == (14400, "latest", None)
    tuned = DrillSettings.from_env({"BACKUP_DRILL_STRATEGY": "Random",
                                    "BACKUP_DRILL_WINDOW_DAYS": "14",
                                    "BACKUP_DRILL_CONN_ID": "pg_drills",
                                    "BACKUP_DRILL_RTO_SECONDS": "3600"})
    assert (tuned.strategy, tuned.window_days, tuned.conn_id, tuned.rto_seconds) == (
        "random", 14, "pg_drills", 3600)
