"""How :mod:`amprenta_backup.core.settings` declares and reads variables (pydantic-settings).

``var()`` declares one variable; :class:`Settings` reads the declared variables of a class
from the environment (or a given mapping) and turns pydantic's validation errors into
:class:`ConfigError`\\ s that name the variable, the bad value, what is allowed and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, get_args, get_origin

import annotated_types as at
from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.layout import CONN_ID

_DB_NAME = re.compile(r"^[^\x00/\\]{1,63}$")
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("amprenta_settings_env",
                                                            default=None)


def var(name: str, default: Any, help: str, *, shown: str | None = None, floor: str = "",
        unit: str = "", ge: float | None = None, gt: float | None = None,
        le: float | None = None) -> Any:
    """Declare the variable ``name``: its default, help text (the README's) and bounds
    (``ge``/``gt``/``le``); ``shown`` is the README's default when not the value; ``floor``
    names what the lower bound protects; ``unit`` is the unit of the bounds."""
    extra: dict[str, Any] = {"shown": shown, "floor": floor, "unit": unit}
    if callable(default):
        return Field(default_factory=default, validation_alias=name, description=help,
                     json_schema_extra=extra, ge=ge, gt=gt, le=le)
    return Field(default, validation_alias=name, description=help, json_schema_extra=extra,
                 ge=ge, gt=gt, le=le)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``;
    values are stripped and empty ones count as unset."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v.strip() for k, v in self._environ.items()
                if k.startswith("BACKUP_") and v.strip()}


class Settings(BaseSettings):
    """A group of ``BACKUP_*`` variables; :meth:`from_env` reads them, keyword arguments set
    fields directly (unset ones keep their defaults)."""

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="ignore",
                                      arbitrary_types_allowed=True, allow_inf_nan=False,
                                      enable_decoding=False)
    group: ClassVar[str] = ""
    nested: ClassVar[dict[str, type[Settings]]] = {}

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(explain(type(self), exc)) from None

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is None:  # built from keyword arguments only
            return (init_settings,)
        return (init_settings, _MappingSource(settings_cls, environ))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **values: Any) -> Self:
        """Read the declared variables from ``environ`` (default ``os.environ``); ``values``
        (field names) win over the environment."""
        env = os.environ if environ is None else environ
        for field, value in cls.env_defaults(env).items():
            values.setdefault(field, value)
        token = _ENVIRON.set(env)
        try:
            return cls(**values)
        finally:
            _ENVIRON.reset(token)

    @classmethod
    def env_defaults(cls, env: Mapping[str, str]) -> dict[str, Any]:
        """Field values :meth:`from_env` reads from ``env`` other than through the declared
        variables (here: the nested sections); its keyword arguments win over them."""
        return {field: nested.from_env(env) for field, nested in cls.nested.items()}

    @classmethod
    def is_set(cls, field: str, environ: Mapping[str, str] | None = None) -> bool:
        """Whether the variable of ``field`` is set, not blank, in ``environ`` (default
        ``os.environ``)."""
        env = os.environ if environ is None else environ
        return bool(env.get(cls.names()[field], "").strip())

    @classmethod
    def names(cls) -> dict[str, str]:
        """Field name -> variable name, for the declared variables of this class."""
        return {k: str(f.validation_alias) for k, f in cls.model_fields.items()
                if isinstance(f.validation_alias, str)}

    @classmethod
    def variables(cls) -> dict[str, FieldInfo]:
        """The declared variables of this class, by name."""
        return {str(f.validation_alias): f for f in cls.model_fields.values()
                if isinstance(f.validation_alias, str)}


def _extra(field: FieldInfo, key: str) -> Any:
    extra = field.json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


def shown_default(field: FieldInfo) -> str:
    """A variable's default as the README shows it."""
    shown = _extra(field, "shown")
    if isinstance(shown, str):
        return shown
    value = field.get_default(call_default_factory=False)
    if value is None or value == () or value == "":
        return "(none)"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def allowed(field: FieldInfo) -> str:
    """What values a variable takes: its bounds, or its choices."""
    if field.annotation is bool:
        return "`true`, `false`"
    if get_origin(field.annotation) is Literal:
        return ", ".join(f"`{choice}`" for choice in get_args(field.annotation))
    low: Any = None
    high: Any = None
    low_open = False
    for item in field.metadata:
        if isinstance(item, at.Ge):
            low = item.ge
        elif isinstance(item, at.Gt):
            low, low_open = item.gt, True
        elif isinstance(item, at.Le):
            high = item.le
    if low is None and high is None:
        return ""
    unit = _extra(field, "unit") or ""
    if low_open:
        return f"a number{' of ' + unit if unit else ''} above {low} and at most {high}"
    return f"{low}-{high}{' ' + unit if unit else ''}"


def _choices(values: Any) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _one(cls: type[Settings], error: Any) -> str:
    loc: tuple[Any, ...] = tuple(error.get("loc") or ())
    fields = {**{k: f for k, f in cls.model_fields.items()}, **cls.variables()}
    field = fields.get(str(loc[0])) if loc else None
    if field is None:
        inner = (error.get("ctx") or {}).get("error")
        return str(inner) if inner else str(error.get("msg"))
    name = str(field.validation_alias or loc[0])
    value, kind, ctx = error.get("input"), error.get("type", ""), error.get("ctx") or {}
    default = field.get_default(call_default_factory=False)
    example = f"e.g. {name}={default:g}" if isinstance(default, float) else f"e.g. {name}={default}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bounds = allowed(field)
        use = f"it must be {bounds}" if bounds.startswith("a number") else f"use {bounds}"
        floor = _extra(field, "floor")
        what = f"is under the {floor}" if floor and kind == "greater_than_equal" \
            else "is out of range"
        return f"{name}={value} {what}; {use}, {example}"
    if kind == "int_parsing" or kind == "int_from_float":
        return f"{name}={value!r} is not a number; give a whole number, {example}"
    if kind == "float_parsing" or kind == "finite_number":
        return f"{name}={value!r} is not a number; give a finite number, {example}"
    if kind == "bool_parsing":
        return f"{name}={value!r} is not a boolean; use true or false"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"{name}={value!r} is not one of the allowed values; set it to {_choices(choices)}"
    inner = ctx.get("error")
    text = str(inner) if isinstance(inner, ConfigError) else str(error.get("msg"))
    return text if text.startswith(name) else f"{name} {text.strip()}"


def explain(cls: type[Settings], exc: ValidationError) -> str:
    """One message per bad variable, each naming the variable, the value and the fix."""
    return "; ".join(dict.fromkeys(_one(cls, e) for e in exc.errors()))


def lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def comma_list(value: Any) -> Any:
    """``a, b,,a`` -> ``("a", "b")``: stripped, empty items and repeats dropped."""
    if not isinstance(value, str):
        return value
    return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))


@dataclass(frozen=True)
class BackupTarget:
    """One database to back up: an Airflow Postgres connection id, optionally another database.

    :param conn_id: id of the Postgres connection that reaches the server
    :param database: database to dump; ``None`` means the connection's own database
    """

    conn_id: str
    database: str | None = None

    def __post_init__(self) -> None:
        if not CONN_ID.match(self.conn_id):
            raise ConfigError(
                f"BACKUP_TARGETS: {self.conn_id!r} is not a valid connection id; use letters, "
                "digits, '_', '.', '-' (for example 'pg_main' or 'pg_main:analytics')"
            )
        if self.database is not None and not _DB_NAME.match(self.database):
            raise ConfigError(
                f"BACKUP_TARGETS: database name {self.database!r} is not valid; it must be 1-63 "
                "characters without '/', '\\' or NUL"
            )

    @property
    def name(self) -> str:
        """A storage-safe name: ``conn_id`` or ``conn_id.database``."""
        if not self.database:
            return self.conn_id
        safe_db = re.sub(r"[^A-Za-z0-9_.-]", "_", self.database)
        return f"{self.conn_id}.{safe_db}"

    @classmethod
    def parse(cls, text: str) -> BackupTarget:
        """Parse ``conn_id`` or ``conn_id:database``."""
        conn_id, _, database = text.strip().partition(":")
        return cls(conn_id=conn_id, database=database or None)

    def to_text(self) -> str:
        """The inverse of :meth:`parse`."""
        return f"{self.conn_id}:{self.database}" if self.database else self.conn_id


@dataclass(frozen=True)
class GFSSpec:
    """Grandfather-father-son counts: keep the newest backup of D days, W weeks, M months.

    :param daily: days to keep one backup of
    :param weekly: ISO weeks to keep one backup of
    :param monthly: months to keep one backup of
    """

    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    @classmethod
    def parse(cls, text: Any) -> Any:
        """Parse ``BACKUP_GFS`` such as ``7d,4w,12m`` (any subset, any order); empty is None."""
        if not isinstance(text, str):
            return text
        counts: dict[str, int] = {}
        for item in (p.strip().lower() for p in text.split(",") if p.strip()):
            match = re.fullmatch(r"(\d{1,4})([dwm])", item)
            if not match or match.group(2) in counts:
                raise ConfigError(
                    f"BACKUP_GFS={text!r} is not valid at {item!r}: give each of d (days), w "
                    "(weeks), m (months) at most once with a count, e.g. BACKUP_GFS=7d,4w,12m"
                )
            counts[match.group(2)] = int(match.group(1))
        if not any(counts.values()):
            return None
        return cls(daily=counts.get("d", 0), weekly=counts.get("w", 0),
                   monthly=counts.get("m", 0))


def parse_targets(text: Any) -> Any:
    """Parse a comma-separated ``BACKUP_TARGETS`` value; duplicates are an error."""
    if not isinstance(text, str):
        return text
    items = [part for part in (p.strip() for p in text.split(",")) if part]
    targets = tuple(BackupTarget.parse(item) for item in items)
    names = [t.name for t in targets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"BACKUP_TARGETS lists {', '.join(dupes)} more than once; list each once")
    return targets


def markdown(classes: tuple[type[Settings], ...]) -> str:
    """The README's configuration tables: one per settings class."""
    parts: list[str] = []
    seen: set[str] = set()
    for cls in classes:
        rows = [f"| `{name}` | {shown_default(f)} | {allowed(f)} | {f.description} |"
                for name, f in cls.variables().items() if name not in seen]
        seen.update(cls.variables())
        parts.append(f"#### {cls.group}\n\n| Variable | Default | Allowed | Meaning |\n"
                     "|---|---|---|---|\n" + "\n".join(rows))
    return "\n\n".join(parts)
