"""A project database (tests/integration/export/schema.sql) with rows of three projects, and
the engine wired to it, the session's cluster and local storage."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.settings.project import ProjectSettings
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.integration.conftest import conninfo

SCHEMA = Path(__file__).with_name("schema.sql")
PROJECTS = {"A": "00000000-0000-0000-0000-00000000000a",
            "B": "00000000-0000-0000-0000-00000000000b",
            "C": "00000000-0000-0000-0000-00000000000c"}
_names = itertools.count(1)


def _project(cur: psycopg.Cursor[tuple[object, ...]], key: str, tags: tuple[int, ...],
             unit: str, files: Path) -> None:
    """Three experiments (a chain of parents), two samples each (the first is the
    experiment's lead: the cycle), tags, measurements in both partitions, notes, files."""
    pid = PROJECTS[key]
    cur.execute("INSERT INTO app.projects (id, name, status_id, samples_written) "
                "VALUES (%s, %s, 1, 6)", (pid, f"project {key}"))
    parent = None
    for n in range(3):
        exp = cur.execute("INSERT INTO app.experiments (project_id, parent_id, status_id, title) "
                          "VALUES (%s, %s, %s, %s) RETURNING id",
                          (pid, parent, 1 + (n % 2), f"{key} exp {n}")).fetchone()[0]
        samples = [cur.execute("INSERT INTO app.samples (experiment_id, label) VALUES (%s, %s) "
                               "RETURNING id", (exp, f"{key}-{n}-{s}")).fetchone()[0]
                   for s in range(2)]
        cur.execute("UPDATE app.experiments SET lead_sample_id = %s WHERE id = %s",
                    (samples[0], exp))
        for sample in samples:
            for tag in tags:
                cur.execute("INSERT INTO app.sample_tags VALUES (%s, %s)", (sample, tag))
            for seq, day in ((1, "2025-06-01"), (2, "2026-02-01")):
                cur.execute("INSERT INTO app.measurements VALUES (%s, %s, %s, %s, %s)",
                            (sample, seq, day, sample * 1.5, unit))
            cur.execute("INSERT INTO app.annotations (sample_id, seq, taken_on, note) "
                        "VALUES (%s, 2, '2026-02-01', %s)", (sample, f"note, \"quoted\"\n{key}"))
        path = f"{key}/exp{n}.txt"
        (files / key).mkdir(parents=True, exist_ok=True)
        (files / path).write_text(f"raw data of {key} experiment {n}\n")
        cur.execute("INSERT INTO app.documents (experiment_id, path) VALUES (%s, %s)", (exp, path))
        parent = exp
    cur.execute("INSERT INTO app.audit VALUES (%s, 'created'), (%s, 'exported')", (pid, pid))


def make_project_db(cluster: ClusterBase, name: str, files: Path) -> PgConnInfo:
    cluster.create_database(name)
    conn = conninfo(cluster, name)
    with psycopg.connect(**conn.connect_kwargs()) as db, db.cursor() as cur:
        cur.execute(SCHEMA.read_bytes())
        _project(cur, "A", (1, 2), "mg", files)
        _project(cur, "B", (2, 3), "ml", files)
        _project(cur, "C", (3,), "ml", files)
    return conn


@pytest.fixture(scope="module")
def project_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("project-files")


@pytest.fixture(scope="module")
def project_db(pg_cluster: ClusterBase, project_files: Path) -> PgConnInfo:
    """The source database of three projects A, B, C (dropped at the module's end)."""
    name = f"projects_{next(_names)}"
    conn = make_project_db(pg_cluster, name, project_files)
    yield conn
    pg_cluster.drop_database(name)


@pytest.fixture
def export_engine(pg_cluster: ClusterBase, project_db: PgConnInfo, project_files: Path,
                  catalog: Catalog, local_storage: LocalStorage
                  ) -> Callable[..., BackupEngine]:
    """``export_engine(**project_settings)``: an engine exporting from ``project_db``."""

    def resolve(conn_id: str, database: str | None) -> PgConnInfo:
        return conninfo(pg_cluster, database or project_db.dbname)

    def make(**settings: object) -> BackupEngine:
        values: dict[str, object] = {"root": "app.projects.id", "source": "src",
                                     "file_columns": ("app.documents.path",),
                                     "files_root": str(project_files)}
        values.update(settings)
        engine = BackupEngine(config=BackupConfig(targets=()), storage=local_storage,
                              catalog=catalog, resolve=resolve)
        engine.project_settings = ProjectSettings(**values)  # type: ignore[arg-type]
        return engine

    return make
