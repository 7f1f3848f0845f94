"""The database a restore writes into: created (with its encoding, locale, owner and the schemas
asked for) through the function handed to the restore, so that a ``jobs > 1`` download can start
before it exists; its other properties set afterwards; dropped again if anything fails once it
exists, with the error saying what was left."""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg
from psycopg import sql

from amprenta_backup.core.errors import BackupError, ChecksumMismatch, ObjectMissing, RestoreError
from amprenta_backup.core.restore.plan import RestorePlan
from amprenta_backup.core.restore.properties import (
    PropertiesResult,
    apply_database_properties,
    create_options,
    describe_create,
)
from amprenta_backup.core.restore.server import TargetServer

log = logging.getLogger(__name__)

Restore = Callable[[Callable[[], None]], None]
"""``restore(create)``: a restore that calls ``create`` before it writes into the database."""


def created_first(step: Callable[[], None]) -> Restore:
    """A restore that creates the database, then runs ``step``."""
    def restore(create: Callable[[], None]) -> None:
        create()
        step()
    return restore


def restore_into(server: TargetServer, plan: RestorePlan,
                 restore: Restore) -> PropertiesResult | None:
    """Run ``restore``, which creates the database (with its encoding, locale and owner,
    and the schemas asked for) through the function it is given before it writes into it;
    set the other properties; once the database exists, drop it again if anything fails."""
    no_owner = plan.request.no_owner
    created: list[str] = []

    def create() -> None:
        server.create(plan.database, create_options(plan.properties, no_owner))
        created.append(plan.database)
        _create_schemas(plan)

    try:
        restore(create)
        if plan.properties is None:
            return None
        result = apply_database_properties(plan.conn, plan.database, plan.properties,
                                           no_owner)
        result.applied.insert(0, "CREATE DATABASE"
                              + describe_create(plan.properties, no_owner))
        return result
    except BaseException as exc:
        if not created:  # refused (the name is taken) or failed before: nothing of ours
            raise
        drop_quietly(server, plan.database)
        if isinstance(exc, ChecksumMismatch | ObjectMissing | KeyboardInterrupt):
            raise
        detail = plan.conn.redact(str(exc)) if isinstance(exc, BackupError) else repr(exc)
        target = plan.request.database
        dropped = ("the partly restored database was dropped" if plan.database == target
                   else f"the partly restored temporary database {plan.database!r} was "
                        f"dropped and database {target!r} was left untouched")
        raise RestoreError(
            f"restore of backup {plan.backup_id} into database {plan.database!r} on "
            f"{plan.target_server} failed: {detail}; {dropped}, fix the cause and run the "
            "restore again") from exc


def _create_schemas(plan: RestorePlan) -> None:
    if not plan.schemas_to_create:
        return
    conn = plan.conn.with_database(plan.database)
    try:
        with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
            for schema in plan.schemas_to_create:
                db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(schema)))
    except psycopg.Error as exc:
        raise RestoreError(f"creating the schemas {list(plan.schemas_to_create)} failed: "
                           f"{conn.redact(str(exc).strip())}") from None


def drop_quietly(server: TargetServer, name: str) -> None:
    """Drop a partly restored database, logging (not raising) if that fails."""
    try:
        server.drop(name)
    except psycopg.Error as exc:
        log.error("could not drop the partly restored database %s: %s", name,
                  server.conn.redact(str(exc).strip()))
