"""OpenTelemetry spans around a real backup's steps and a real restore's phases, exported to
the OpenTelemetry SDK's in-memory exporter (what Airflow's ``[traces] otel_on`` sets up in a
task process is the same SDK with an OTLP exporter)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.models import RunContext
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import Storage
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.support.backups import SETTINGS, engine_for, make_backup

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished during the test (the process's SDK provider, set once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    if not getattr(provider, "_amprenta_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._amprenta_exporter = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {s.name: s for s in exporter.get_finished_spans()}


def test_a_backup_is_one_span_with_a_child_per_step(
    spans: InMemorySpanExporter, local_storage: Storage, catalog: Catalog,
    source_conn: PgConnInfo,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    found = _by_name(spans)
    parent = found["backup"]
    assert parent.attributes["amprenta_backup.backup_id"] == manifest.backup_id
    assert parent.attributes["amprenta_backup.target"] == "pg_source"
    steps = [s for s in spans.get_finished_spans() if s.name.startswith("backup.")]
    assert {"backup.connect", "backup.dump", "backup.manifest"} <= {s.name for s in steps}
    assert all(s.parent.span_id == parent.context.span_id for s in steps)
    assert all(parent.start_time <= s.start_time and s.end_time <= parent.end_time
               for s in steps)
    assert parent.status.status_code != StatusCode.ERROR


def test_a_failed_backup_marks_its_span_and_step_as_errors(
    spans: InMemorySpanExporter, local_storage: Storage, catalog: Catalog,
    pg_cluster: ClusterBase,
) -> None:
    missing = PgConnInfo(host=pg_cluster.conninfo("postgres")["host"],
                         port=int(pg_cluster.conninfo("postgres")["port"]),
                         user=pg_cluster.conninfo("postgres")["user"],
                         password=pg_cluster.conninfo("postgres")["password"],
                         dbname="no_such_database_for_tracing")
    with pytest.raises(BackupError):
        BackupRunner(local_storage, catalog, SETTINGS).run(
            "pg_missing", missing, RunContext(),
            layout.make_backup_id(datetime.now(UTC), "tracing/failed"))
    found = _by_name(spans)
    assert found["backup"].status.status_code == StatusCode.ERROR
    failed = [s for s in spans.get_finished_spans()
              if s.name.startswith("backup.") and s.status.status_code == StatusCode.ERROR]
    assert [s.name for s in failed] == ["backup.connect"]
    assert missing.password not in str(found["backup"].events)


def test_a_restore_is_one_span_with_its_phases(
    spans: InMemorySpanExporter, local_storage: Storage, catalog: Catalog,
    source_conn: PgConnInfo, pg_cluster: ClusterBase,
) -> None:
    manifest = make_backup(local_storage, catalog, source_conn)
    engine = engine_for(local_storage, catalog, {"pg_source": source_conn})
    target = "traced_restore"
    pg_cluster.drop_database(target)
    spans.clear()
    try:
        engine.restore_backup(manifest.backup_id, target_database=target)
    finally:
        pg_cluster.drop_database(target)
    found = _by_name(spans)
    restore = found["restore"]
    assert restore.attributes["amprenta_backup.backup_id"] == manifest.backup_id
    phases = ["restore.plan", "restore.checksum", "restore.pg_restore", "restore.count_rows"]
    assert all(found[p].parent.span_id == restore.context.span_id for p in phases)
    starts = [found[p].start_time for p in phases]
    assert starts == sorted(starts)
