"""With SSE-S3 configured, every object the service writes is encrypted: checked on the wire
(each PutObject and CreateMultipartUpload carries the header) and with HeadObject in moto."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.sandbox.s3server import MotoServer
from tests.faults.common import objects, s3_cli_env
from tests.faults.conftest import FaultRow
from tests.faults.proxies import S3FaultProxy
from tests.support.cli import CliRunner

SSE = "AES256"


def _writes(proxy: S3FaultProxy) -> list[tuple[str, str, dict[str, str]]]:
    """Requests that create an object or an upload (PutObject, CreateMultipartUpload)."""
    found = []
    for method, path, headers in proxy.requests:
        query = parse_qs(urlsplit(path).query, keep_blank_values=True)
        if (method == "PUT" and "partNumber" not in query) or (method == "POST" and
                                                              "uploads" in query):
            found.append((method, urlsplit(path).path, headers))
    return found


@pytest.mark.faults("S3 encryption (SSE-S3) on every object: dump, parts, manifest, "
                    "globals, drill report, health probe")
def test_every_object_written_is_encrypted(
    moto_server: MotoServer, catalog: Catalog, big_source_conn: PgConnInfo, row: FaultRow,
) -> None:
    bucket = moto_server.create_bucket("faults-sse")
    with S3FaultProxy(moto_server.endpoint_url) as proxy:
        cli = CliRunner({**s3_cli_env(moto_server, bucket, catalog, big_source_conn,
                                      endpoint_url=proxy.endpoint_url), "BACKUP_S3_SSE": SSE})
        done = cli("backup", "pg_big", "--json")
        assert done.returncode == 0, done.stderr
        drill = cli("drill", "run", "pg_big", "--json")
        assert drill.returncode == 0, drill.stderr + drill.stdout
        health = cli("health", "--json")
        assert health.returncode in (0, 1), health.stderr
        probe = [c for c in json.loads(health.stdout) if c["name"] == "storage_writable"]
        assert probe and probe[0]["status"] == "ok", probe
    writes = _writes(proxy)
    paths = " ".join(p for _m, p, _h in writes)
    for needed in ("dump.pgc.zst", "manifest.json", ".amprenta-probe", "globals"):
        assert needed in paths, (needed, paths)
    assert [p for _m, p, h in writes if h.get("x-amz-server-side-encryption") != SSE] == []
    row.saw(f"all {len(writes)} PutObject/CreateMultipartUpload requests carry "
            f"x-amz-server-side-encryption: {SSE} (the probe included)")
    client = moto_server.client()
    keys = objects(client, bucket)
    assert any(k.endswith(".md") for k in keys) and any(k.endswith("dump.pgc.zst") for k in keys)
    heads = {k: client.head_object(Bucket=bucket, Key=k) for k in keys}
    assert {k: h.get("ServerSideEncryption") for k, h in heads.items()} == dict.fromkeys(keys, SSE)
    dump = next(k for k in keys if "/pg_big/" in k and k.endswith("dump.pgc.zst"))
    parts = int(heads[dump]["ETag"].strip('"').rsplit("-", 1)[1])
    assert parts >= 2
    for number in range(1, parts + 1):
        part = client.head_object(Bucket=bucket, Key=dump, PartNumber=number)
        assert part.get("ServerSideEncryption") == SSE
    row.saw(f"HeadObject: {len(keys)} stored objects and the dump's {parts} parts all {SSE}")
