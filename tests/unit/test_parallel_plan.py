"""How a parallel dump shares tables between its streams, and how its manifest lists them."""

from __future__ import annotations

from datetime import UTC, datetime

from amprenta_backup.core.backup.parallel import (
    TableSize,
    plan_dump,
    resolve_jobs,
    share_threads,
)
from amprenta_backup.core.models import DumpPart, Manifest
from amprenta_backup.core.pipeline import Compression
from amprenta_backup.core.records.manifests import ManifestError, parse_manifest

MIB = 2**20
UNEVEN = [TableSize("public", f"t{i}", size * MIB) for i, size in
          enumerate([120, 90, 80, 60, 40, 30, 20, 10, 5, 1])]


def test_tables_are_packed_largest_first_into_streams_of_about_equal_size() -> None:
    plan = plan_dump(UNEVEN, jobs=3, min_bytes=8 * MIB)

    assert plan.parallel and len(plan.groups) == 3
    assert plan.rest_bytes == 6 * MIB  # the two tables under 8 MiB stay in the first stream
    loads = [plan.group_bytes(i) for i in range(3)]
    assert sum(loads) == sum(t.bytes for t in UNEVEN)
    assert max(loads) - min(loads) <= 20 * MIB
    names = sorted(t.name for g in plan.groups for t in g)
    assert names == sorted(t.name for t in UNEVEN if t.bytes >= 8 * MIB)  # each once


def test_one_stream_when_jobs_is_one_or_fewer_than_two_tables_are_sizeable() -> None:
    assert not plan_dump(UNEVEN, jobs=1, min_bytes=0).parallel
    assert not plan_dump(UNEVEN, jobs=4, min_bytes=100 * MIB).parallel  # only t0 is sizeable
    assert not plan_dump([], jobs=4, min_bytes=0).parallel


def test_no_empty_streams_with_more_jobs_than_tables() -> None:
    plan = plan_dump(UNEVEN[:2], jobs=8, min_bytes=0)  # nothing else: t0 goes with the schema
    assert [[t.name for t in g] for g in plan.groups] == [["t0"], ["t1"]]
    assert plan.moved == (UNEVEN[1],)
    assert resolve_jobs(3) == 3 and 1 <= resolve_jobs(0) <= 4


def test_streams_never_run_more_compressing_threads_than_the_threads_or_streams() -> None:
    two = Compression(threads=2)
    assert share_threads(two, 1).threads == 2  # one stream: as before
    for streams in (2, 3, 4):  # each stream compresses in its own thread: no extra workers
        assert share_threads(two, streams) == Compression(threads=0)
    assert share_threads(Compression(threads=8), 2).threads == 4
    assert share_threads(Compression(threads=0), 2).threads == 0
    assert share_threads(Compression(level=5, threads=2), 2).level == 5


def test_table_patterns_match_exactly_one_table_whatever_its_name() -> None:
    table = TableSize('Odd "Schema"', "a.b*c?", 1)
    assert table.pattern == '"Odd ""Schema"""."a.b*c?"'
    assert table.label == 'Odd "Schema".a.b*c?'


def _manifest(folder: str, parts: list[DumpPart]) -> Manifest:
    when = datetime(2026, 11, 24, 1, tzinfo=UTC)
    return Manifest(backup_id="20261124T010000Z-1a2b3c4d", target="pg_main", database="db",
                    kind="logical", key=parts[0].key, format="pg_dump-custom-parts",
                    compression="zstd:1", stored_bytes=30, raw_bytes=60, sha256="a" * 64,
                    started_at=when, completed_at=when, server_version="15",
                    pg_dump_version="15", parts=[p.to_dict() for p in parts], version=4)


def test_each_part_is_read_as_a_manifest_of_its_own_and_must_lie_in_its_folder() -> None:
    folder = "database/pg_main/2026/11/24/20261124T010000Z-1a2b3c4d"
    parts = [DumpPart(f"{folder}/dump.pgc.zst", "all", (), "a" * 64, 10, 20),
             DumpPart(f"{folder}/dump-data-01.pgc.zst", "data", ("public.t0",), "b" * 64,
                      20, 40)]
    manifest = parse_manifest(_manifest(folder, parts).to_json(), folder)

    objects = manifest.objects()
    assert [(o.key, o.sha256, o.stored_bytes, o.format) for o in objects] == [
        (p.key, p.sha256, p.stored_bytes, "pg_dump-custom") for p in parts]
    assert manifest.dump_parts() == parts

    outside = [parts[0], DumpPart("database/elsewhere/x.zst", "data", (), None, 1, 1)]
    try:
        parse_manifest(_manifest(folder, outside).to_json(), folder)
    except ManifestError as exc:
        assert "outside its folder" in str(exc) and "elsewhere" in str(exc)
    else:
        raise AssertionError("a part outside the backup's folder was accepted")


def test_only_the_biggest_tables_are_split_off_however_many_are_sizeable() -> None:
    tables = [TableSize("s", f"t{i:05d}", (20_000 - i) * MIB) for i in range(3000)]
    plan = plan_dump(tables, jobs=4, min_bytes=MIB)
    split = sorted(t.name for g in plan.groups for t in g)
    assert split == [f"t{i:05d}" for i in range(1000)]
    assert plan.rest_bytes == sum(t.bytes for t in tables[1000:])
