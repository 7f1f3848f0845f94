"""Names a person types for a restore (databases, schemas, tables), checked before any use.

Checked names still never reach SQL as text (``psycopg.sql.Identifier`` quotes them) nor a
shell (client tools get an argv list); :func:`conninfo_dbname` keeps a name that looks like a
connection string (``host=...`` or ``postgresql://...``) from being read as one by libpq.
"""

from __future__ import annotations

import re

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.layout import CONN_ID

MAX_NAME_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers
SYSTEM_DATABASES = frozenset({"postgres", "template0", "template1"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONN_ID = CONN_ID


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is usable as a PostgreSQL identifier, else a ConfigError.

    :param value: the name as given
    :param what: what the name is for, used in the message (``target database`` ...)
    """
    shown = repr(value)[:80]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} {shown} is not a name; give 1-{MAX_NAME_BYTES} characters")
    if _CONTROL.search(value):
        raise ConfigError(f"{what} {shown} holds a control character (NUL, newline, tab ...); "
                          "remove it")
    if value != value.strip():
        raise ConfigError(f"{what} {shown} starts or ends with a space; remove it")
    size = len(value.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise ConfigError(f"{what} {shown} is {size} bytes long; PostgreSQL names hold at most "
                          f"{MAX_NAME_BYTES} bytes (longer ones are cut short), pick a shorter one")
    return value


def check_database_name(value: object) -> str:
    """A target database name: :func:`check_name` rules."""
    return check_name(value, "target database name")


def check_conn_id(value: object, setting: str = "target connection id") -> str:
    """An Airflow connection id: letters, digits, ``_``, ``.``, ``-``."""
    if not isinstance(value, str) or not _CONN_ID.match(value):
        raise ConfigError(f"{setting} {repr(value)[:80]} is not a valid connection id; use "
                          "letters, digits, '_', '.', '-' (for example pg_main)")
    return value


def conninfo_dbname(name: str) -> str:
    """``dbname='...'``: a libpq connection string that selects exactly database ``name``.

    Client tools read a ``--dbname`` value holding ``=`` or starting with ``postgresql://`` as a
    connection string; quoting it as one keeps every character of the name literal.
    """
    escaped = check_database_name(name).replace("\\", "\\\\").replace("'", "\\'")
    return f"dbname='{escaped}'"
