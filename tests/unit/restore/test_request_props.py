"""Property tests: names and ids a person types for a restore either pass unchanged or get a
clear ConfigError, and a refused one never reaches SQL or a client tool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ConfigError, PreconditionError
from amprenta_backup.core.identifiers import MAX_NAME_BYTES, check_database_name, conninfo_dbname
from amprenta_backup.core.layout import BACKUP_ID, check_backup_id
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.request import RestoreRequest
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage import LocalStorage

INJECTIONS = [
    "x\"; DROP DATABASE prod; --", "x'; DROP DATABASE prod; --", "$(rm -rf /)", "`id`",
    "a\nb", "a\x00b", "host=evil.example dbname=prod", "postgresql://evil.example/prod",
    "../../etc/passwd", "-d prod", " prod", "prod ", "ü" * 32, "x" * 64, "",
]
any_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
names = st.one_of(any_text, st.sampled_from(INJECTIONS))


def _valid_name(value: str) -> bool:
    return (bool(value) and value == value.strip() and len(value.encode()) <= MAX_NAME_BYTES
            and not any(ord(c) < 32 or ord(c) == 127 for c in value))


@given(names)
def test_a_database_name_passes_unchanged_or_gets_a_clear_error(value: str) -> None:
    if _valid_name(value):
        assert check_database_name(value) == value
    else:
        with pytest.raises(ConfigError, match="target database name .*(give|remove|pick)"):
            check_database_name(value)


@given(names.filter(_valid_name))
def test_an_accepted_name_stays_one_literal_name_for_libpq_and_sql(value: str) -> None:
    assert conninfo_to_dict(conninfo_dbname(value)) == {"dbname": value}
    quoted = sql.Identifier(value).as_string(None)
    assert quoted.startswith('"') and quoted.endswith('"')
    assert quoted[1:-1].replace('""', '"') == value and '"' not in quoted[1:-1].replace('""', "")


@given(st.one_of(any_text, st.sampled_from(INJECTIONS), st.just("20261124T010000Z-1a2b3c4d")))
def test_a_backup_id_passes_unchanged_or_gets_a_clear_error(value: str) -> None:
    if BACKUP_ID.match(value):
        assert check_backup_id(value) == value
    else:
        with pytest.raises(ConfigError, match="malformed; expected the form 20261124T010000Z-"):
            check_backup_id(value)


class _Tripwire(AssertionError):
    """Raised if a refused request reaches a database connection or a child process."""


def _trip(*args: Any, **kwargs: Any) -> Any:
    raise _Tripwire("a refused request reached SQL or a client tool")


@given(backup_id=st.one_of(st.just("latest"), st.just("20261124T010000Z-1a2b3c4d"), any_text),
       database=names, schema=st.one_of(st.none(), names))
def test_a_refused_restore_never_reaches_sql_or_a_client_tool(
    backup_id: str, database: str, schema: str | None,
) -> None:
    """The tripwires stand in for the server and the tools: this test proves they are never
    called, which no real server can show."""
    valid = (_valid_name(database) and (schema is None or _valid_name(schema))
             and (backup_id == "latest" or bool(BACKUP_ID.match(backup_id))))
    engine = BackupEngine(BackupConfig(), storage=LocalStorage(Path("/nonexistent")),
                          catalog=Catalog(PgConnInfo(host="/nonexistent")), resolve=_trip)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg, "connect", _trip)
        patch.setattr(subprocess, "Popen", _trip)
        patch.setattr(subprocess, "run", _trip)
        try:
            engine.restore_backup(backup_id, database, target_conn_id="pg_x", mode="replace",
                                  confirm=database, schemas=[] if schema is None else [schema])
        except ConfigError as exc:
            filtered_replace = schema is not None and "restore the subset into a new" in str(exc)
            assert not valid or filtered_replace, f"valid request refused: {exc}"
            assert str(exc)
        except PreconditionError as exc:  # e.g. a system database: refused, nothing touched
            assert valid and "system database" in str(exc)
        except _Tripwire:
            assert valid, f"invalid request reached SQL or a tool: {backup_id!r} {database!r}"


@pytest.mark.parametrize(("data", "message"), [
    ({"backup_id": "latest", "database": "db", "target_conn_id": "x", "mode": "destroy"},
     "restore mode 'destroy' is not one of new_database, replace"),
    ({"backup_id": "latest", "database": "db", "target_conn_id": "x", "jobs": "2; rm -rf /"},
     "jobs='2; rm -rf /' is out of range"),
    ({"backup_id": "latest", "database": "db", "target_conn_id": "x", "jobs": True},
     "jobs=True is out of range"),
    ({"backup_id": "latest", "database": "db", "target_conn_id": "x", "schemas": "a,b"},
     "schemas must be a list of names"),
    ({"backup_id": "latest", "database": "db", "target_conn_id": "x", "tables": ["a\nb"]},
     "table to restore 'a\\nb' holds a control character"),
    ({"backup_id": "latest", "database": "db", "target_conn_id": "x y"},
     "target connection id 'x y' is not a valid connection id"),
    ({"backup_id": "latest", "database": "db"}, "'latest' needs the backup target"),
    ({"database": "db"}, "the restore needs a backup id or latest (backup_id)"),
    ({"backup_id": "latest", "target_conn_id": "x", "database": ""},
     "the restore needs the target database (target_database, --database)"),
])
def test_form_values_of_the_wrong_kind_are_refused_by_name(
    data: dict[str, Any], message: str,
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        RestoreRequest.from_mapping(data)
