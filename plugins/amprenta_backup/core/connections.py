"""Resolve a connection id without Airflow, from the same ``AIRFLOW_CONN_<ID>`` variables.

The CLI and ``archive_command`` helpers run outside Airflow; reading Airflow's own
environment-variable format (JSON or URI, ``__extra__`` included, as Airflow parses it) lets
one set of settings serve both. A connection no variable defines is asked of the sources an
adapter adds (:func:`add_source`): the CLI adds Airflow's configured secrets backends when
Airflow is installed, so that it sees the connections the DAGs see.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.pgtools import SSL_KEYS, PgConnInfo

Resolver = Callable[[str, str | None], PgConnInfo]
"""``(conn_id, database) -> PgConnInfo``: how every workflow reaches a database."""

PASSED_OPTIONS = (*SSL_KEYS, "connect_timeout", "options", "target_session_attrs")


FieldSource = Callable[[str], "dict[str, object] | None"]
"""``conn_id -> fields`` (as :func:`connection_fields` gives them), None when it has none."""
_SOURCES: list[FieldSource] = []


def add_source(source: FieldSource) -> None:
    """Ask ``source`` for the connections no ``AIRFLOW_CONN_*`` variable defines."""
    if source not in _SOURCES:
        _SOURCES.append(source)


def _variable(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def _from_sources(conn_id: str) -> dict[str, object] | None:
    for source in _SOURCES:
        found = source(conn_id)
        if found is not None:
            return found
    return None


def connection_fields(conn_id: str, environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The fields of ``AIRFLOW_CONN_<ID>`` (JSON or URI form) as a dict."""
    env = os.environ if environ is None else environ
    raw = env.get(_variable(conn_id), "").strip()
    if not raw:
        found = _from_sources(conn_id)
        if found is not None:
            return found
        where = " or in Airflow's connections" if _SOURCES else ""
        raise ConfigError(
            f"connection {conn_id!r} is not defined: set {_variable(conn_id)} (JSON or URI, "
            "as for Airflow), e.g. postgresql://user@host:5432/db with the password in it"
            f"{where}"
        )
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{_variable(conn_id)} is not valid JSON: {exc.msg}") from None
        extra = data.get("extra") or {}
        data["extra"] = json.loads(extra) if isinstance(extra, str) else extra
        return dict(data)
    return _uri_fields(_variable(conn_id), raw)


def _uri_fields(variable: str, raw: str) -> dict[str, object]:
    """The fields of a connection URI. The credentials end at the LAST ``@``, so a password
    with an unencoded ``/``, ``?``, ``#``, ``@`` or ``:`` is still taken whole; no message
    ever quotes any part of the URI (a misplaced character could be part of the password)."""
    scheme, sep, rest = raw.partition("://")
    if not sep or not scheme:
        raise ConfigError(f"{variable} is not a connection URI or JSON; use "
                          "postgresql://user:password@host:5432/db or the JSON form")
    userinfo, at, location = rest.rpartition("@")
    login, _colon, password = userinfo.partition(":") if at else ("", "", "")
    parts = urlsplit(f"{scheme}://{location}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port == -1 or (port is not None and not 1 <= port <= 65535):
        raise ConfigError(
            f"{variable} has no valid port after the host (1-65535); if the password holds "
            "reserved characters (/ ? # @ :), percent-encode them (urllib.parse.quote(pw, "
            "safe=''))")
    return {
        "conn_type": "postgres" if scheme == "postgresql" else scheme.replace("-", "_"),
        "host": unquote(parts.hostname or ""),
        "port": port, "login": unquote(login), "password": unquote(password),
        "schema": unquote(parts.path.lstrip("/")), "extra": _query_extra(variable, parts.query),
    }


def _query_extra(variable: str, text: str) -> dict[str, object]:
    """A URI's extra as Airflow reads it: ``__extra__`` holds it as JSON; otherwise each query
    parameter is one field, its value JSON when it parses (``5`` is a number)."""
    query: dict[str, object] = dict(parse_qsl(text, keep_blank_values=True))
    if "__extra__" in query:
        try:
            extra = json.loads(str(query["__extra__"]))
        except json.JSONDecodeError:
            extra = None
        if not isinstance(extra, dict):
            raise ConfigError(f"{variable}: its __extra__ is not a JSON object; percent-encode "
                              "one, e.g. ?__extra__=%7B%22sslmode%22%3A%22require%22%7D")
        return extra
    for key, value in query.items():
        try:
            query[key] = json.loads(str(value)) if value else value
        except json.JSONDecodeError:
            pass  # text, as Airflow keeps it
    return query


def postgres_conninfo(conn_id: str, database: str | None = None,
                      environ: Mapping[str, str] | None = None) -> PgConnInfo:
    """A :class:`PgConnInfo` from ``AIRFLOW_CONN_<ID>``."""
    fields = connection_fields(conn_id, environ)
    extra = fields.get("extra") or {}
    assert isinstance(extra, dict)
    if not fields.get("host"):
        raise ConfigError(f"connection {conn_id!r} has no host; set one in {_variable(conn_id)}")
    return PgConnInfo(
        host=str(fields["host"]), port=int(str(fields.get("port") or 5432)),
        user=str(fields.get("login") or "postgres"),
        dbname=database or str(fields.get("schema") or "postgres"),
        password=str(fields.get("password") or "") or None,
        options={k: str(extra[k]) for k in PASSED_OPTIONS if k in extra},
    )


def s3_client_kwargs(conn_id: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """boto3 client keyword arguments from an ``aws`` connection, if that variable is set."""
    env = os.environ if environ is None else environ
    fields = connection_fields(conn_id, env) if env.get(_variable(conn_id)) else \
        _from_sources(conn_id)
    if fields is None:
        return {}
    extra = fields.get("extra") or {}
    assert isinstance(extra, dict)
    kwargs = {"aws_access_key_id": fields.get("login"),
              "aws_secret_access_key": fields.get("password"),
              "endpoint_url": extra.get("endpoint_url"), "region_name": extra.get("region_name")}
    return {k: str(v) for k, v in kwargs.items() if v}
