"""The scratch database of a drill: its name, the marker that proves the drill made it, its drop.

A drill only ever drops a database whose name carries :data:`PREFIX` *and* whose comment is
the marker of that very drill (``COMMENT ON DATABASE``, set right after the restore created
it). A database someone else made under that name is never touched.
"""

from __future__ import annotations

import logging

from psycopg import sql

from amprenta_backup.core import layout
from amprenta_backup.core.errors import ConfigError, PreconditionError
from amprenta_backup.core.identifiers import check_database_name
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.server import TargetServer

log = logging.getLogger(__name__)

PREFIX = "amprenta_drill_"
MARKER = "amprenta-backup restore drill {drill_id}; dropped when the drill ends"


def scratch_name(drill_id: str) -> str:
    """``amprenta_drill_20261201t030000z_1a2b3c4d``: unique per drill, a valid identifier."""
    name = PREFIX + layout.check_backup_id(drill_id).lower().replace("-", "_")
    return check_database_name(name)


def marker(drill_id: str) -> str:
    return MARKER.format(drill_id=drill_id)


def _check_prefix(name: str) -> str:
    if not name.startswith(PREFIX):
        raise ConfigError(f"database {name!r} is not a drill scratch database (no {PREFIX!r} "
                          "prefix); a drill never touches it")
    return check_database_name(name)


def _comment(server: TargetServer, name: str) -> str | None:
    row = server.db.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                            "WHERE datname = %s", (name,)).fetchone()
    if row is None:
        return None
    return str(row[0] or "")


def owned_by(server: TargetServer, name: str, drill_id: str) -> bool | None:
    """None if ``name`` does not exist; whether it carries this drill's marker otherwise."""
    comment = _comment(server, _check_prefix(name))
    return None if comment is None else comment == marker(drill_id)


def claim(conn: PgConnInfo, name: str, drill_id: str) -> None:
    """Make sure ``name`` is free for this drill: a leftover of an earlier try of the same drill
    is dropped; a database without the drill's marker is refused and left untouched."""
    with TargetServer(conn) as server:
        owned = owned_by(server, name, drill_id)
        if owned is False:
            raise PreconditionError(
                f"database {name!r} already exists on {server.describe()} and was not created by "
                f"restore drill {drill_id}; it was left untouched. Drop or rename it if it is a "
                "leftover you no longer need, then run the drill again")
        if owned:
            log.warning("dropping %s on %s, left over by an earlier try of drill %s", name,
                        server.describe(), drill_id)
            server.drop(name)


def mark(conn: PgConnInfo, name: str, drill_id: str) -> bool:
    """Put this drill's marker on ``name`` if it exists; returns whether it does."""
    with TargetServer(conn) as server:
        if _comment(server, _check_prefix(name)) is None:
            return False
        server.db.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(name), sql.Literal(marker(drill_id))))
    return True


DROPPED, ABSENT, FOREIGN = "dropped", "absent", "not the drill's"


def drop_if_owned(conn: PgConnInfo, name: str, drill_id: str) -> str:
    """Drop ``name`` if this drill made it: :data:`DROPPED`, :data:`ABSENT` (nothing to drop),
    or :data:`FOREIGN` (a database without this drill's marker, left untouched)."""
    with TargetServer(conn) as server:
        owned = owned_by(server, name, drill_id)
        if owned is None:
            return ABSENT
        if not owned:
            log.warning("database %s on %s was not created by drill %s (no drill marker); left "
                        "untouched", name, server.describe(), drill_id)
            return FOREIGN
        server.drop(name)
    return DROPPED
