"""Point-in-time restore: a base backup plus archived WAL, replayed up to a time, into a new
data directory on this host, started and promoted.

Steps: choose the newest base backup that ended before the target; stream it from storage
(sha256 checked) into the new data directory; ``pg_verifybackup`` against PostgreSQL's own
``backup_manifest`` before the first start; write ``restore_command`` (``amprenta-wal
fetch``), ``recovery_target_time``, ``recovery_target_action = promote`` and ``archive_mode =
off`` (a restored copy must never push its new timeline into the production archive); start
as the server's OS user; wait until it leaves recovery; report what was recovered.
"""

from __future__ import annotations

import itertools
import logging
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.childenv import minimal_env
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.errors import ConfigError, PreconditionError, RestoreError
from amprenta_backup.core.models import RESTORABLE, Manifest, utcnow
from amprenta_backup.core.pgtools import PgConnInfo, for_server, major
from amprenta_backup.core.pitr.basebackup import PG_MANIFEST_NAME
from amprenta_backup.core.pitr.files import extract_base_backup, write_recovery_settings
from amprenta_backup.core.pitr.localserver import (
    LOCALHOST,
    LocalServer,
    give_to,
    log_tail,
    port_in_use,
    run_as,
)
from amprenta_backup.core.readback import data_key
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.core.wal.names import parse_lsn, segment_name, segment_number, segment_of
from amprenta_backup.core.wal.ranges import WalRange
from amprenta_backup.core.wal.settings import write_config_file

log = logging.getLogger(__name__)

LATEST = "latest"
MISSING = re.compile(r"amprenta-wal: (\S+) is not in the WAL archive")
SEGMENT = re.compile(r"^[0-9A-F]{24}$")


@dataclass(frozen=True)
class PitrRequest:
    """Where and to when to restore.

    :param target_time: recover up to this time (timezone-aware); None = all archived WAL
    :param data_dir: a new or empty directory on this host
    :param port: TCP port for the restored server (on 127.0.0.1)
    :param backup_id: a base backup to start from; None = the newest that ended before
    """

    target_time: datetime | None
    data_dir: Path
    port: int
    backup_id: str | None = None

    @classmethod
    def parse(cls, target_time: str, data_dir: str | None, port: int | str,
              backup_id: str | None = None) -> PitrRequest:
        """Validate what a person typed; every error says what to type instead."""
        text = str(target_time).strip()
        when: datetime | None = None
        if text.lower() != LATEST:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                raise ConfigError(f"target time {text[:60]!r} is not ISO 8601; give e.g. "
                                  "2026-11-24T05:10:23+00:00, or 'latest'") from None
            if when.tzinfo is None:
                raise ConfigError(f"target time {text!r} has no time zone; add one, e.g. "
                                  f"{text}+00:00 (UTC)")
        if data_dir is None or str(data_dir).strip() in ("", "None"):
            raise ConfigError("no data directory given; give a new or empty directory on this "
                              "host, e.g. /var/lib/postgresql/pitr")
        path = Path(str(data_dir).strip())
        if not path.is_absolute() or ".." in path.parts:
            raise ConfigError(f"data directory {str(data_dir)!r} must be an absolute path "
                              "without '..', e.g. /var/lib/postgresql/pitr")
        try:
            number = int(port)
        except (TypeError, ValueError):
            raise ConfigError(f"port {port!r} is not a number; give 1024-65535") from None
        if not 1024 <= number <= 65535:
            raise ConfigError(f"port {number} is out of range; give 1024-65535")
        return cls(when, path, number, backup_id or None)


@dataclass
class PitrReport:
    """What a point-in-time restore achieved; JSON-able through :meth:`to_dict`."""

    backup_id: str
    data_dir: str
    port: int
    target_time: datetime | None
    requested_at: datetime
    recovered_to: datetime | None
    timeline: int
    replay_lsn: str
    rto_seconds: float
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def achieved_rpo_seconds(self) -> float | None:
        """Target (or, for ``latest``, the request time) minus the last replayed commit."""
        if self.recovered_to is None:
            return None
        return ((self.target_time or self.requested_at) - self.recovered_to).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("target_time", "requested_at", "recovered_to"):
            data[key] = data[key].isoformat() if data[key] else None
        data["achieved_rpo_seconds"] = self.achieved_rpo_seconds
        return data


def choose_base_backup(catalog: Catalog, storage: Storage, target: str,
                       target_time: datetime | None, backup_id: str | None = None) -> Manifest:
    """The named base backup, or the newest one of ``target`` that ended before the target.

    The manifest is read from storage, the source of truth; the catalog only finds it.
    """
    records = [r for r in catalog.find(target=target, statuses=RESTORABLE)
               if r.kind == "physical" and r.manifest and r.manifest.wal]
    if backup_id:
        records = [r for r in records if r.backup_id == backup_id]
        if not records:
            raise PreconditionError(f"no completed base backup {backup_id!r} of {target}; "
                                    f"`amprenta-backup list --target {target}` shows them")
    if not records:
        raise PreconditionError(f"no completed base backup of {target} in the catalog; run "
                                "weekly_base_backup first (or `amprenta-backup rebuild-catalog`)")
    ends = {r.backup_id: WalRange.of(r.manifest).stop_time for r in records if r.manifest}
    usable = [r for r in records if target_time is None or ends[r.backup_id] < target_time]
    if not usable:
        raise PreconditionError(
            f"target time {target_time} is before the end of the earliest base backup of "
            f"{target} ({min(ends.values()).isoformat()}); pick a later time")
    chosen = max(usable, key=lambda r: ends[r.backup_id])
    folder = layout.folder_of(chosen.manifest.key)  # type: ignore[union-attr]
    stored = Manifest.from_json(storage.get_bytes(f"{folder}/manifest.json"))
    if stored.sha256 != chosen.sha256:
        raise PreconditionError(f"base backup {chosen.backup_id}: the catalog's sha256 differs "
                                "from the stored manifest's; run weekly_verify")
    return stored


class PitrRestore:
    """Restores base backups of one target up to a point in time, on this host.

    :param storage: backup storage
    :param archive: the target's WAL archive
    :param wal_command: ``amprenta-wal`` as the server's OS user can run it
    :param wal_env: storage settings and credentials for ``restore_command`` (written to a
        private file, never to argv)
    :param os_user: OS user the server runs as when we are root
    :param keys: opens an encrypted base backup
    """

    def __init__(self, storage: Storage, archive: WalArchive, wal_command: str,
                 wal_env: Mapping[str, str], os_user: str | None,
                 keys: KeyService | None = None) -> None:
        self.storage = storage
        self.keys = keys
        self.archive = archive
        self.wal_command = wal_command
        self.wal_env = dict(wal_env)
        self.os_user = os_user

    def run(self, manifest: Manifest, request: PitrRequest, conn: PgConnInfo,
            wait_seconds: float = 3600) -> PitrReport:
        """Restore ``manifest`` into ``request.data_dir`` and recover; ``conn`` holds the role
        and password to check the restored server with (host and port are replaced).

        On failure the server is stopped and the data directory removed (its startup log,
        beside it, is kept and named in the error).
        """
        started, requested_at = time.monotonic(), utcnow()
        _check_destination(request)
        self._check_wal_command()
        data_key(self.keys, manifest)  # a missing or wrong key: refused before anything exists
        wal = WalRange.of(manifest)
        log_file = request.data_dir.with_name(request.data_dir.name + ".pitr.log")
        work = Path(tempfile.mkdtemp(prefix="amprenta-pitr-"))
        server = LocalServer(request.data_dir, self.os_user, log_file,
                             major(manifest.server_version))
        steps: dict[str, float] = {}
        try:
            mark = time.monotonic()
            request.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            extract_base_backup(self.storage, manifest, request.data_dir, self.keys)
            steps["fetch_and_extract"] = round(time.monotonic() - mark, 3)
            mark = time.monotonic()
            self._verify(manifest, request.data_dir, work)
            steps["pg_verifybackup"] = round(time.monotonic() - mark, 3)
            config = self._wal_config(work)
            restore_command = f"{self.wal_command} --config {config} fetch %f %p"
            write_recovery_settings(request.data_dir, request.port, restore_command,
                                    request.target_time)
            request.data_dir.chmod(0o700)
            give_to(request.data_dir, self.os_user)
            mark = time.monotonic()
            server.start(wait_seconds)
            local = PgConnInfo(host=LOCALHOST, port=request.port, user=conn.user,
                               dbname="postgres", password=conn.password)
            self._wait_promoted(server, local, wait_seconds, wal.stop_time)
            steps["recovery"] = round(time.monotonic() - mark, 3)
            report = self._report(local, manifest, request, requested_at, started, steps)
            if request.target_time is None:
                self.check_no_gap(report, wal.segment_size)
        except BaseException as exc:
            server.stop("immediate")
            shutil.rmtree(request.data_dir, ignore_errors=True)
            if isinstance(exc, RestoreError):
                raise RestoreError(f"{exc}{_missing_hint(log_file)}") from exc.__cause__
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("restored %s to %s: last commit %s, RPO %s s, RTO %.1f s", manifest.backup_id,
                 request.target_time or LATEST, report.recovered_to,
                 report.achieved_rpo_seconds, report.rto_seconds)
        return report

    def _check_wal_command(self) -> None:
        done = run_as([self.wal_command, "--help"], self.os_user, timeout=60)
        if done.returncode != 0:
            who = f"OS user {self.os_user}" if self.os_user else "this user"
            raise PreconditionError(
                f"{who} cannot run {self.wal_command} ({(done.stderr or done.stdout).strip()[:200]}"
                "); restore_command needs it: install amprenta-backup where the server's OS user "
                "can run it and set BACKUP_WAL_COMMAND to its amprenta-wal")

    def _verify(self, manifest: Manifest, data_dir: Path, work: Path) -> None:
        folder = layout.folder_of(manifest.key)
        pg_manifest = work / PG_MANIFEST_NAME
        pg_manifest.write_bytes(self.storage.get_bytes(f"{folder}/{PG_MANIFEST_NAME}"))
        verifier = for_server("pg_verifybackup", major(manifest.server_version))
        done = subprocess.run([verifier.path("pg_verifybackup"), "--quiet", "-m",
                               str(pg_manifest), str(data_dir)],
                              capture_output=True, text=True, timeout=3600, env=minimal_env())
        if done.returncode != 0:
            raise RestoreError(f"pg_verifybackup found problems in base backup "
                               f"{manifest.backup_id}: {done.stderr.strip()[-1500:]}")

    def _wal_config(self, work: Path) -> Path:
        work.chmod(0o700)
        path = write_config_file(work / "wal.env", {**self.wal_env,
                                                    "BACKUP_WAL_TARGET": self.archive.target})
        give_to(work, self.os_user)
        return path

    def _wait_promoted(self, server: LocalServer, conn: PgConnInfo, wait_seconds: float,
                       not_before: datetime) -> None:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
                    row = db.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is not None and not row[0]:
                        return
            except psycopg.OperationalError as exc:
                if not server.running():
                    raise RestoreError(f"the restored server stopped during recovery\n--- server "
                                       f"log ({server.log_file}) ---\n{log_tail(server.log_file)}"
                                       ) from None
                log.debug("not accepting connections yet: %s", conn.redact(str(exc)))
            time.sleep(0.2)
        raise RestoreError(f"recovery did not finish within {wait_seconds:.0f} s (base backup "
                           f"ended {not_before.isoformat()}); see {server.log_file}")

    def _report(self, conn: PgConnInfo, manifest: Manifest, request: PitrRequest,
                requested_at: datetime, started: float, steps: dict[str, float]) -> PitrReport:
        with psycopg.connect(**conn.connect_kwargs(), autocommit=True) as db:
            row = db.execute("SELECT pg_last_xact_replay_timestamp(), "
                             "pg_last_wal_replay_lsn()::text, "
                             "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)").fetchone()
            for name in ("restore_command", "recovery_target_time", "recovery_target_action"):
                db.execute(f"ALTER SYSTEM RESET {name}")  # recovery is over: tidy the config
            db.execute("SELECT pg_reload_conf()")
        assert row is not None
        return PitrReport(
            backup_id=manifest.backup_id, data_dir=str(request.data_dir), port=request.port,
            target_time=request.target_time, requested_at=requested_at, recovered_to=row[0],
            timeline=int(str(row[2]), 16), replay_lsn=str(row[1]),
            rto_seconds=round(time.monotonic() - started, 3), steps=steps)

    def check_no_gap(self, report: PitrReport, segment_size: int) -> None:
        """For ``latest``: refuse a recovery that stopped before the archive's end (a gap),
        naming the first segment after the last one replayed that the archive lacks."""
        replayed_on = report.timeline - 1  # promotion always starts a new timeline
        # the replay position ends the last record read: at a segment boundary when the
        # next segment could not be fetched, so the last replayed byte is the one before it
        replayed = segment_of(replayed_on, parse_lsn(report.replay_lsn), segment_size, end=True)
        archived = {n for n in self.archive.list_names(f"{replayed_on:08X}") if len(n) == 24}
        later = sorted(n for n in archived if n > replayed)
        if not later:
            return
        _, segno = segment_number(replayed, segment_size)
        missing = next(name for name in (segment_name(replayed_on, n, segment_size)
                                         for n in itertools.count(segno + 1))
                       if name not in archived)
        raise RestoreError(f"WAL segment {missing} is missing from the archive: recovery "
                           f"stopped after {replayed}, but the archive holds later segments up to "
                           f"{later[-1]}, so the restored data is older than the archive. "
                           f"Find {missing} (the server's pg_wal, another archive copy) and "
                           "push it, or restore to a time before it")


def _check_destination(request: PitrRequest) -> None:
    path = request.data_dir
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise PreconditionError(f"{path} exists and is not empty; a point-in-time restore only "
                                "writes into a new or empty directory. Pick another one")
    if port_in_use(request.port):
        raise PreconditionError(f"port {request.port} is already in use on this host; pick "
                                "another port")


def _missing_hint(log_file: Path) -> str:
    # recovery also asks for timeline history files that need not exist: name segments only
    found = [n for n in MISSING.findall(log_tail(log_file, 200)) if SEGMENT.match(n)]
    if not found:
        return ""
    return (f"\nThe last WAL file recovery asked for and did not find: {found[-1]}. If the "
            "target time is inside the archived range, that segment is missing from the "
            "archive (`amprenta-wal list`).")
