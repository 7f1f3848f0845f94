"""RecoveryPlan: what a whole-service recovery onto a new server would do, checked, touching
nothing (the dry run), and every reason to refuse it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.dbprops import DatabaseProperties
from amprenta_backup.core.errors import CatalogError, ConfigError, PreconditionError
from amprenta_backup.core.identifiers import SYSTEM_DATABASES, check_conn_id, check_database_name
from amprenta_backup.core.layout import check_backup_id, target_name
from amprenta_backup.core.models import BackupRecord, GlobalsRef, Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.recovery.index import targets_in
from amprenta_backup.core.restore.properties import check_target
from amprenta_backup.core.restore.server import TargetServer

MAX_PARALLEL = 16
DEFAULT_CATALOG_DATABASE = "amprenta_catalog"
CONNECTIONS_PER_RESTORE = 3  # pg_restore, the restore's lock session, the row count / checks


@dataclass(frozen=True)
class RecoveryRequest:
    """What to recover onto which server. Checked on construction (ConfigError).

    :param server_conn_id: Postgres connection of the new server
    :param targets: only these backup targets (default: every target with a logical backup)
    :param before: the newest backup started before this time (default: the newest)
    :param backup_ids: these backups for their targets (one per target) instead of the
        newest; the other targets get their newest as usual
    :param parallel: databases restored at once (bounded by the server's free connections)
    :param catalog_database: the catalog database created on the new server when the
        configured catalog cannot be reached at all
    :param allow_nonempty: write to a server that already holds databases (an approval)
    :param dry_run: plan only; touch nothing
    """

    server_conn_id: str
    targets: tuple[str, ...] = ()
    before: datetime | None = None
    parallel: int = 2
    catalog_database: str = DEFAULT_CATALOG_DATABASE
    allow_nonempty: bool = False
    dry_run: bool = False
    backup_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_conn_id(self.server_conn_id, "new server connection id")
        object.__setattr__(self, "targets", tuple(target_name(t) for t in self.targets))
        object.__setattr__(self, "backup_ids", tuple(check_backup_id(b)
                                                     for b in self.backup_ids))
        if self.before is not None and self.before.tzinfo is None:
            raise ConfigError(f"the time {self.before.isoformat()} has no time zone; give one "
                              "(e.g. 2026-12-01T03:00:00+00:00)")
        if isinstance(self.parallel, bool) or not isinstance(self.parallel, int) \
                or not 1 <= self.parallel <= MAX_PARALLEL:
            raise ConfigError(f"parallel={self.parallel!r} is out of range; use a whole number "
                              f"from 1 to {MAX_PARALLEL}")
        check_database_name(self.catalog_database)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RecoveryRequest:
        """From Airflow params or JSON: unknown keys are ignored, empty values mean "not given"."""
        values = {key: data[key] for key in _FIELDS if data.get(key) not in (None, "", [])}
        if "server_conn_id" not in values:
            raise ConfigError("the recovery needs the connection of the new server: give "
                              "server_conn_id")  # each interface names it in its words
        for key in ("targets", "backup_ids"):
            if isinstance(values.get(key), str) or not isinstance(values.get(key, ()),
                                                                  list | tuple):
                raise ConfigError(f"{key} must be a list, got {values[key]!r:.80}")
            values[key] = tuple(values.get(key, ()))
        if isinstance(values.get("before"), str):
            try:
                values["before"] = datetime.fromisoformat(values["before"])
            except ValueError:
                raise ConfigError(f"before={values['before'][:40]!r} is not an ISO time; use "
                                  "e.g. 2026-12-01T03:00:00+00:00") from None
        return cls(**values)


_FIELDS = ("server_conn_id", "targets", "before", "parallel", "catalog_database",
           "allow_nonempty", "dry_run", "backup_ids")


@dataclass(frozen=True)
class DatabaseStep:
    """One database to re-create: which backup of which target, into which database."""

    target: str
    database: str
    backup_id: str
    status: str
    started_at: datetime
    stored_bytes: int
    rows: int
    globals_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class CatalogChoice:
    """Where the rebuilt catalog goes: ``catalog``, which ``exists`` already or is created."""

    catalog: Catalog
    exists: bool
    note: str


@dataclass(frozen=True)
class RecoveryPlan:
    """What :class:`~amprenta_backup.core.recovery.run.Recovery` will do, in order."""

    request: RecoveryRequest
    server: str
    server_version: str
    catalog: str
    databases: tuple[DatabaseStep, ...]
    existing: tuple[str, ...]
    parallel: int
    missing: tuple[str, ...] = ()
    globals: tuple[GlobalsRef, ...] = field(default=(), compare=False)
    conn: PgConnInfo = field(repr=False, compare=False, default=PgConnInfo(host=""))

    @property
    def needs_approval(self) -> bool:
        """The server already holds databases of its own: a person must approve writing."""
        return bool(self.existing)

    @property
    def steps(self) -> tuple[str, ...]:
        steps = [self.catalog]
        servers: dict[str, list[GlobalsRef]] = {}
        for ref in self.globals:
            servers.setdefault(ref.server, []).append(ref)
        steps += [f"create the roles and tablespaces of server {server} that the new server "
                  f"lacks ({len(refs[0].roles)} roles; globals "
                  f"{', '.join(r.globals_id for r in refs)}, newest first); existing roles are "
                  "left as they are" for server, refs in servers.items()]
        without = [d.database for d in self.databases if d.globals_id is None]
        if without:
            steps.append(f"no globals stored with the backups of {', '.join(without)} (taken "
                         "before backups held them): the roles they name must exist already")
        steps += [f"CREATE DATABASE {d.database!r} and restore backup {d.backup_id} of "
                  f"{d.target} ({d.status}, {d.rows} rows), then check its rows against the "
                  "manifest, its constraints and sequences" for d in self.databases]
        steps.append(f"at most {self.parallel} databases at once; write the recovery report "
                     "beside the backups and into the catalog (recovery_runs)")
        return tuple(steps)

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request.to_dict(), "server": self.server,
                "server_version": self.server_version, "catalog": self.catalog,
                "databases": [d.to_dict() for d in self.databases],
                "existing_databases": list(self.existing), "parallel": self.parallel,
                "needs_approval": self.needs_approval, "missing_targets": list(self.missing),
                "steps": list(self.steps)}

    def text(self) -> str:
        lines = [f"server    {self.server} (PostgreSQL {self.server_version}); "
                 + (f"already holds {', '.join(self.existing)}" if self.existing
                    else "holds no databases yet")]
        lines += [f"database  {d.database:24} <- {d.backup_id} of {d.target} ({d.status}, "
                  f"taken {d.started_at:%Y-%m-%d %H:%M:%S} UTC, {d.rows} rows)"
                  for d in self.databases]
        lines += [f"  {n}. {step}" for n, step in enumerate(self.steps, start=1)]
        return "\n".join(lines)


def locate_catalog(configured: Catalog | None, server: PgConnInfo, name: str) -> CatalogChoice:
    """The configured catalog if it answers (or its server can hold a new one), else a new
    catalog database ``name`` on the new server."""
    reason = "no catalog connection is defined"
    if configured is not None:
        try:
            configured.probe()
            return CatalogChoice(configured, True, f"rebuild {configured.describe()} from the "
                                 "manifests in storage (statuses it holds are kept)")
        except CatalogError as exc:
            reason = str(exc)
        if configured.server_reachable():
            return CatalogChoice(configured, False, f"create {configured.describe()} (its "
                                 "server answers, the database is gone) and rebuild it from the "
                                 "manifests in storage")
    fresh = Catalog(server.with_database(name))
    try:
        fresh.probe()
        exists = True
    except CatalogError:
        exists = False
    return CatalogChoice(fresh, exists, f"{'rebuild' if exists else 'create'} the catalog "
                         f"database {name!r} on the new server and rebuild it from the manifests "
                         f"in storage (the configured catalog: {reason})")


def choose_backups(catalog: Catalog, request: RecoveryRequest) -> tuple[list[BackupRecord],
                                                                        list[str]]:
    """Each target's newest VERIFIED backup (else COMPLETED) started before ``request.before``;
    and the requested targets that have none."""
    found = [r for r in catalog.find(statuses=(Status.VERIFIED, Status.COMPLETED),
                                     before=request.before) if r.kind == "logical"]
    named = _named_backups(catalog, request)
    targets = list(request.targets) or targets_in([*found, *named.values()])
    chosen, missing = [], []
    for target in targets:
        mine = [named[target]] if target in named else [r for r in found if r.target == target]
        best = next((r for r in mine if r.status == Status.VERIFIED), mine[0] if mine else None)
        if best is None:
            missing.append(target)
        else:
            chosen.append(best)
    return chosen, missing


def _named_backups(catalog: Catalog, request: RecoveryRequest) -> dict[str, BackupRecord]:
    """The backups ``request.backup_ids`` names, by target; refused unless each is a
    completed or verified logical backup of a target of its own (among ``targets`` if given)."""
    named: dict[str, BackupRecord] = {}
    for backup_id in request.backup_ids:
        record = catalog.get(backup_id)
        if record is None or record.kind != "logical" or record.status not in (
                Status.VERIFIED, Status.COMPLETED):
            why = (f"not in {catalog.describe()}" if record is None
                   else f"a {record.status} {record.kind} backup")
            raise PreconditionError(f"backup {backup_id} is {why}; name completed or verified "
                                    "logical backups (`amprenta-backup list`)")
        if record.target in named:
            raise PreconditionError(f"backups {named[record.target].backup_id} and {backup_id} "
                                    f"are both of target {record.target}; name one per target")
        if request.targets and record.target not in request.targets:
            raise PreconditionError(f"backup {backup_id} is of target {record.target}, which is "
                                    f"not among the targets given ({', '.join(request.targets)})"
                                    "; add it, or give no targets")
        named[record.target] = record
    return named


def make_plan(request: RecoveryRequest, server_conn: PgConnInfo, catalog: Catalog,
              catalog_note: str, ignore: tuple[str, ...] = (), fresh: tuple[str, ...] = ()
              ) -> RecoveryPlan:
    """Check ``request`` against ``catalog`` (or the storage index) and the new server.

    :param ignore: databases on the server that are the recovery's own (the new catalog)
    :param fresh: databases besides the restored ones that must not exist yet
    """
    chosen, missing = choose_backups(catalog, request)
    if missing and request.targets:
        raise PreconditionError(f"no completed backup of {', '.join(missing)}"
                                + (f" before {request.before.isoformat()}" if request.before
                                   else "") + "; `amprenta-backup list` shows the targets")
    if not chosen:
        raise PreconditionError("storage holds no completed logical backup to recover; check "
                                "BACKUP_STORAGE_TYPE, the bucket or path, and BACKUP_S3_PREFIX")
    _check_names(chosen)
    refs = _globals(chosen)
    with TargetServer(server_conn) as server:
        version, present, free = _server_facts(server)
        described = server.describe()
        _check_databases(server, chosen, refs)
    clash = sorted(present & ({r.database for r in chosen} | set(fresh)))
    if clash:
        raise PreconditionError(
            f"database(s) {', '.join(clash)} already exist on {described}; a recovery never "
            "overwrites a database: drop them, recover onto another server, or restore them "
            "one by one (`amprenta-backup restore --mode replace`)")
    existing = tuple(sorted(present - SYSTEM_DATABASES - set(ignore)))
    headroom = max(1, free // CONNECTIONS_PER_RESTORE)
    return RecoveryPlan(
        request=request, server=described, server_version=version, catalog=catalog_note,
        databases=tuple(_step(r) for r in chosen), existing=existing,
        parallel=max(1, min(request.parallel, len(chosen), headroom)),
        missing=tuple(missing), globals=refs, conn=server_conn)


def check_approval(plan: RecoveryPlan) -> None:
    """A server that already holds databases is written to only when that was approved."""
    if plan.needs_approval and not plan.request.allow_nonempty:
        raise PreconditionError(
            f"the server {plan.server} already holds database(s) {', '.join(plan.existing)}; "
            "nothing was touched. Recovering onto it needs an approval: --allow-nonempty "
            "(CLI) or the Approve step of the disaster_recovery DAG")


def _plain(value: RecoveryRequest | DatabaseStep) -> dict[str, Any]:
    """A dataclass as JSON-able values: times in ISO form, tuples as lists."""
    data = asdict(value)
    for key, item in data.items():
        if isinstance(item, datetime):
            data[key] = item.isoformat()
        elif isinstance(item, tuple):
            data[key] = list(item)
    return data


def _server_facts(server: TargetServer) -> tuple[str, set[str], int]:
    """The server's version, its databases and how many more connections it takes."""
    row = server.db.execute(
        "SELECT current_setting('server_version'), current_setting('max_connections')::int - "
        "current_setting('superuser_reserved_connections')::int - "
        "(SELECT count(*) FROM pg_stat_activity)::int").fetchone()
    names = server.db.execute("SELECT datname FROM pg_database").fetchall()
    version, free = (str(row[0]), int(str(row[1]))) if row else ("", 1)
    return version, {str(r[0]) for r in names}, free


def _check_databases(server: TargetServer, chosen: list[BackupRecord],
                     refs: tuple[GlobalsRef, ...]) -> None:
    """Every database's roles, extensions, locale and tablespace on the new server before
    anything is created (the roles and tablespaces of the globals count as there): one thing
    missing refuses the whole recovery, naming each and how to get it."""
    coming = frozenset(name for ref in refs for name in (*ref.roles, *ref.tablespaces))
    refused = []
    for record in chosen:
        manifest = record.manifest
        if manifest is None or not manifest.properties:
            continue  # taken before backups held properties: the restore's own plan checks
        hint = "the backup's globals do not create it" if manifest.globals_ref() else \
            "the backup holds no globals"
        checks = check_target(server.db, DatabaseProperties.from_dict(manifest.properties),
                              False, hint, coming)
        refused += [f"{record.database}: {problem}" for problem in checks.missing]
    if refused:
        raise PreconditionError(f"the new server {server.describe()} cannot take every "
                                "database, so nothing was created (no role, no catalog, no "
                                f"database): {'; '.join(refused)}")


def _check_names(chosen: list[BackupRecord]) -> None:
    by_name: dict[str, list[str]] = {}
    for record in chosen:
        by_name.setdefault(record.database, []).append(record.target)
    twice = {db: targets for db, targets in by_name.items() if len(targets) > 1}
    if twice:
        detail = "; ".join(f"{db!r} from {', '.join(t)}" for db, t in sorted(twice.items()))
        raise PreconditionError(f"several targets hold a database of the same name ({detail}); "
                                "recover them onto different servers: give --target")


def _globals(chosen: list[BackupRecord]) -> tuple[GlobalsRef, ...]:
    """The distinct globals the chosen backups name (one per server and run), newest first:
    restoring them is additive, so the newest roles come first and older backups still find
    the roles they name."""
    refs: dict[str, GlobalsRef] = {}
    for record in chosen:
        ref = record.manifest.globals_ref() if record.manifest else None
        if ref is not None:
            refs.setdefault(ref.globals_id, ref)
    return tuple(sorted(refs.values(), key=lambda r: r.taken_at, reverse=True))


def _step(record: BackupRecord) -> DatabaseStep:
    manifest = record.manifest
    rows = sum(manifest.table_counts.values()) if manifest else 0
    ref = manifest.globals_ref() if manifest else None
    return DatabaseStep(target=record.target, database=record.database,
                        backup_id=record.backup_id, status=str(record.status),
                        started_at=record.started_at, stored_bytes=record.stored_bytes or 0,
                        rows=rows, globals_id=ref.globals_id if ref else None)
