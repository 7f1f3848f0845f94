"""User-defined drill assertions: a name, one SQL value, an expected condition; parsed, no eval."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from amprenta_backup.core.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_COMPARE = re.compile(r"^\s*(==|!=|>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_IS = re.compile(r"^\s*is\s+(not\s+null|null|true|false)\s*$", re.IGNORECASE)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
    ">": operator.gt, "<": operator.lt}
EXPECT_FORMS = ('"> 0", "== 5", ">= 1", "!= 0", "< 10", "<= 3", "is null", "is not null", '
                '"is true", "is false", or {"max_age_hours": 48} on a timestamp')


@dataclass(frozen=True)
class Expectation:
    """A parsed ``expect``: a comparison with a number, an ``is`` test, or a freshness limit.

    :param text: the condition as configured, for messages
    :param op: ``==``, ``!=``, ``>=``, ``<=``, ``>``, ``<``, ``is`` or ``max_age``
    :param operand: the number, the ``is`` word (``null``, ``not null``, ``true``, ``false``),
        or the largest age in hours
    """

    text: str
    op: str
    operand: Decimal | str

    @classmethod
    def parse(cls, value: object, where: str) -> Expectation:
        """From configuration; ConfigError naming ``where`` and the accepted forms."""
        if isinstance(value, Mapping):
            return cls._freshness(value, where)
        if isinstance(value, str):
            match = _COMPARE.match(value)
            if match:
                return cls(value.strip(), match.group(1), Decimal(match.group(2)))
            match = _IS.match(value)
            if match:
                word = " ".join(match.group(1).lower().split())
                return cls(f"is {word}", "is", word)
        raise ConfigError(f"{where}: expect {str(value)[:80]!r} is not understood; use "
                          f"{EXPECT_FORMS}")

    @classmethod
    def _freshness(cls, value: Mapping[str, Any], where: str) -> Expectation:
        hours = value.get("max_age_hours")
        if set(value) != {"max_age_hours"} or isinstance(hours, bool) \
                or not isinstance(hours, int | float) or not 0 < hours <= 24 * 3650:
            raise ConfigError(f"{where}: a freshness expect is {{\"max_age_hours\": N}} with N "
                              f"hours above 0, e.g. {{\"max_age_hours\": 48}}; got {dict(value)}")
        return cls(f"at most {hours:g} h older than the backup", "max_age",
                   Decimal(str(hours)))

    def check(self, value: object, backup_time: datetime) -> str | None:
        """None if ``value`` meets the condition, else why not, in words."""
        if self.op == "is":
            wanted = {"null": value is None, "not null": value is not None,
                      "true": value is True, "false": value is False}[str(self.operand)]
            return None if wanted else f"got {_show(value)}, expected {self.text}"
        if self.op == "max_age":
            return _check_age(value, backup_time, Decimal(self.operand))
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return f"got {_show(value)}, expected a number {self.text}"
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return f"got {_show(value)}, expected a number {self.text}"
        if number.is_nan():
            return f"got NaN, expected a number {self.text}"
        return None if _OPS[self.op](number, self.operand) else \
            f"got {_show(value)}, expected {self.text}"


def _check_age(value: object, backup_time: datetime, hours: Decimal) -> str | None:
    if value is None:
        return "got NULL (no rows?), expected a timestamp"
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        when = datetime.combine(value, time(), tzinfo=UTC)
    else:
        return f"got {_show(value)}, expected a timestamp for a freshness check"
    age = backup_time - when
    limit = timedelta(hours=float(hours))
    if age > limit:
        return (f"newest value {when.isoformat()} is {_hours(age)} h older than the backup "
                f"(taken {backup_time.isoformat()}); at most {float(hours):g} h allowed")
    return None


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}"


def _show(value: object) -> str:
    return "NULL" if value is None else repr(value)[:80]


@dataclass(frozen=True)
class Assertion:
    """One user-defined check run on the restored database.

    :param name: a short identifier, unique among the assertions
    :param sql: one read-only statement returning one row with one column
    :param expect: the condition that value must meet
    :param targets: backup targets it applies to; empty means every target
    """

    name: str
    sql: str
    expect: Expectation
    targets: tuple[str, ...] = ()

    def applies_to(self, target: str) -> bool:
        return not self.targets or target in self.targets

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sql": self.sql, "expect": self.expect.text,
                "targets": list(self.targets)}


def parse_assertions(items: object, source: str) -> tuple[Assertion, ...]:
    """Assertions from a decoded JSON/YAML list; ConfigError naming ``source[i].field``."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise ConfigError(f"{source} must be a list of {{name, sql, expect}} objects, e.g. "
                          '[{"name": "users_exist", "sql": "SELECT count(*) FROM users", '
                          '"expect": "> 0"}]')
    found: list[Assertion] = []
    for index, item in enumerate(items):
        where = f"{source}[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where} must be an object with name, sql and expect")
        unknown = sorted(set(item) - {"name", "sql", "expect", "targets"})
        missing = [key for key in ("name", "sql", "expect") if key not in item]
        if unknown or missing:
            raise ConfigError(f"{where}: " + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"unknown keys {', '.join(unknown)}"] if unknown else []))
                + " (an assertion has name, sql, expect and optional targets)")
        name, query = item["name"], item["sql"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}.name {str(name)[:80]!r} must be 1-100 letters, digits, "
                              "'_', '.', '-'")
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"{where}.sql must be a non-empty SQL statement")
        targets = item.get("targets") or []
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ConfigError(f"{where}.targets must be a list of target names such as "
                              '["pg_main"]')
        found.append(Assertion(name, query.strip().rstrip(";").strip(),
                               Expectation.parse(item["expect"], f"{where}.expect"),
                               tuple(targets)))
    return _unique(found, source)


def _unique(found: Sequence[Assertion], source: str) -> tuple[Assertion, ...]:
    names = [a.name for a in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source} names {', '.join(dupes)} more than once; give each "
                          "assertion its own name")
    return tuple(found)


def load_assertions(inline: str, path: str) -> tuple[Assertion, ...]:
    """``BACKUP_DRILL_ASSERTIONS`` (``inline``, a JSON list) and ``BACKUP_DRILL_ASSERTIONS_FILE``
    (``path``, a JSON or YAML file holding such a list), combined."""
    found: list[Assertion] = []
    inline = inline.strip()
    if inline:
        try:
            data = json.loads(inline)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"BACKUP_DRILL_ASSERTIONS is not valid JSON ({exc.msg} at "
                              f"character {exc.pos}); give a JSON list of "
                              "{name, sql, expect} objects") from None
        found += parse_assertions(data, "BACKUP_DRILL_ASSERTIONS")
    path = path.strip()
    if path:
        found += parse_assertions(_read_file(Path(path)), path)
    return _unique(found, "BACKUP_DRILL_ASSERTIONS and BACKUP_DRILL_ASSERTIONS_FILE together")


def _read_file(path: Path) -> object:
    setting = "BACKUP_DRILL_ASSERTIONS_FILE"
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{setting}={path}: cannot read it ({exc.strerror or exc}); point it "
                          "at a readable .json, .yaml or .yml file") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{setting}={path} is YAML but PyYAML is not installed; "
                              "pip install pyyaml, or use a .json file") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{setting}={path} is not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{setting}={path} is not valid JSON ({exc.msg}, line {exc.lineno}); "
                          "name YAML files .yaml or .yml") from None
