"""The encrypted object format and the keyring, on real bytes: round trips of every size at a
chunk boundary, and every kind of tampering (a flipped bit, a chunk dropped, two swapped, the
end cut off, bytes appended, an object of another backup) refused by its authentication tag."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.encryption import (
    KeyConfig,
    KeyService,
    KeyUnavailable,
    ObjectSeal,
    TamperedObject,
    decrypting,
    open_object,
    seal_for,
)
from amprenta_backup.core.encryption.stream import MAGIC, TAG_BYTES, header_bytes
from amprenta_backup.core.errors import ChecksumMismatch
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.records.manifests import ManifestError, parse_manifest
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.wal.archive import WalArchive

CHUNK = 1024
KEY_A, KEY_B = os.urandom(32), os.urandom(32)


def _keys(current: str = "a", ring: dict[str, bytes] | None = None,
          password: bytes | None = None) -> KeyService:
    extra = {"keys": {k: base64.b64encode(v).decode() for k, v in (ring or {"a": KEY_A}).items()}}
    fields = {"password": base64.b64encode(password).decode() if password else "",
              "extra": extra}
    return KeyService(KeyConfig(mode="key", key_conn="enc", key_id=current, chunk_bytes=CHUNK),
                      lookup=lambda conn_id: fields)


def _seal(keys: KeyService, identity: str = "backup:b1:dump.pgc.zst") -> ObjectSeal:
    seal = seal_for(keys, identity)
    assert seal is not None
    return seal


def _open(keys: KeyService, stored: bytes, identity: str = "backup:b1:dump.pgc.zst") -> bytes:
    return open_object(io.BytesIO(stored), keys, identity, "the object").read_all()


def _split(stored: bytes, seal: ObjectSeal) -> tuple[bytes, list[bytes]]:
    head = len(header_bytes(seal.envelope))
    body = stored[head:]
    size = CHUNK + TAG_BYTES
    return stored[:head], [body[i:i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7])
def test_round_trip_at_every_chunk_boundary(size: int) -> None:
    keys = _keys()
    data = os.urandom(size)
    seal = _seal(keys)
    stored = seal.seal(data)
    assert stored.startswith(MAGIC)
    if size >= 64:
        assert data[:64] not in stored
    chunks = max(1, -(-size // CHUNK))
    assert len(stored) == len(header_bytes(seal.envelope)) + size + chunks * TAG_BYTES
    assert _open(keys, stored) == data


def test_streamed_writes_of_any_size_give_the_same_plaintext() -> None:
    keys = _keys()
    seal = _seal(keys)
    out = io.BytesIO()
    writer = seal.writer(out)
    data = os.urandom(5 * CHUNK + 3)
    for start in range(0, len(data), 777):
        writer.write(data[start:start + 777])
    writer.close()
    assert _open(keys, out.getvalue()) == data


def _tampered(change: str) -> tuple[KeyService, bytes]:
    keys = _keys()
    seal = _seal(keys)
    stored = seal.seal(os.urandom(4 * CHUNK + 100))
    head, chunks = _split(stored, seal)
    if change == "flip":
        middle = len(stored) // 2
        stored = stored[:middle] + bytes([stored[middle] ^ 1]) + stored[middle + 1:]
    elif change == "drop":
        stored = head + b"".join(chunks[:1] + chunks[2:])
    elif change == "reorder":
        stored = head + b"".join([chunks[1], chunks[0], *chunks[2:]])
    elif change == "truncate at a chunk boundary":
        stored = head + b"".join(chunks[:-1])
    elif change == "truncate inside a chunk":
        stored = stored[:-5]
    elif change == "append a chunk":
        stored = stored + chunks[1]
    elif change == "header":
        stored = stored.replace(b'"chunk_bytes":1024', b'"chunk_bytes":2048', 1)
    return keys, stored


@pytest.mark.parametrize("change", ["flip", "drop", "reorder", "truncate at a chunk boundary",
                                    "truncate inside a chunk", "append a chunk", "header"])
def test_tampered_objects_are_refused(change: str) -> None:
    keys, stored = _tampered(change)
    with pytest.raises(TamperedObject) as caught:
        _open(keys, stored)
    assert isinstance(caught.value, ChecksumMismatch)
    assert "authentication tag" in str(caught.value) or "truncated" in str(caught.value)


def test_an_object_of_another_backup_is_refused_even_with_its_own_envelope() -> None:
    keys = _keys()
    other = _seal(keys, "backup:b2:dump.pgc.zst")
    stored = other.seal(b"x" * 3000)
    with pytest.raises(KeyUnavailable, match="does not open"):  # the wrap binds the identity
        _open(keys, stored, "backup:b1:dump.pgc.zst")
    # with the right data key but the wrong identity, the chunk tags refuse it too
    reader = decrypting(io.BytesIO(stored), other.data_key, other.envelope,
                        "backup:b1:dump.pgc.zst", "the object")
    with pytest.raises(TamperedObject, match="chunk 0"):
        reader.read_all()


def test_a_swapped_object_under_the_manifests_envelope_is_refused() -> None:
    keys = _keys()
    mine, theirs = _seal(keys), _seal(keys, "backup:b2:dump.pgc.zst")
    stored = theirs.seal(b"y" * 100)
    with pytest.raises(TamperedObject, match="another envelope"):
        decrypting(io.BytesIO(stored), mine.data_key, mine.envelope, mine.identity, "obj")


def test_rotation_new_objects_use_the_current_key_old_ids_still_open() -> None:
    old = _keys("a", {"a": KEY_A})
    stored_a = _seal(old).seal(b"made with a")
    rotated = _keys("b", {"a": KEY_A}, password=KEY_B)  # b in the password, a kept in extra
    seal_b = _seal(rotated)
    assert seal_b.envelope.key_id == "b"
    assert _open(rotated, stored_a) == b"made with a"
    assert _open(rotated, seal_b.seal(b"made with b")) == b"made with b"


def test_a_missing_key_id_names_the_id_the_connection_and_the_fix() -> None:
    stored = _seal(_keys("a", {"a": KEY_A})).seal(b"data")
    with pytest.raises(KeyUnavailable) as caught:
        _open(_keys("b", {"b": KEY_B}), stored)
    message = str(caught.value)
    assert "'a'" in message and "'enc'" in message and "it has: b" in message
    assert '"keys"' in message


def test_a_wrong_key_under_the_right_id_is_named_and_never_shown() -> None:
    stored = _seal(_keys("a", {"a": KEY_A})).seal(b"data")
    with pytest.raises(KeyUnavailable) as caught:
        _open(_keys("a", {"a": KEY_B}), stored)
    assert "master key id 'a'" in str(caught.value)
    assert base64.b64encode(KEY_B).decode() not in str(caught.value)


@pytest.mark.parametrize("value", ["c2hvcnQ=", "not base64 at all!", "00" * 31])
def test_a_malformed_key_is_refused_naming_its_id_not_its_value(value: str) -> None:
    keys = KeyService(KeyConfig(mode="key", key_conn="enc", key_id="k9"),
                      lookup=lambda conn_id: {"password": value, "extra": {}})
    with pytest.raises(KeyUnavailable, match="'k9' is not 32 bytes") as caught:
        seal_for(keys, "backup:b:dump")
    assert value not in str(caught.value)


def test_hex_keys_are_accepted_and_off_means_no_seal() -> None:
    keys = KeyService(KeyConfig(mode="key", key_conn="enc", key_id="h"),
                      lookup=lambda conn_id: {"password": KEY_A.hex(), "extra": {}})
    seal = _seal(keys)
    assert open_object(io.BytesIO(seal.seal(b"hex")), keys, seal.identity, "o").read_all() \
        == b"hex"
    assert seal_for(KeyService(KeyConfig()), "backup:b:dump") is None
    assert seal_for(None, "backup:b:dump") is None


def _stored_manifest(**changes: object) -> tuple[bytes, str]:
    """A manifest as a version-2 writer stored it (no ``encryption``), with ``changes``."""
    when = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
    backup_id = layout.make_backup_id(when, "old")
    folder = layout.backup_folder("database", "pg_main", backup_id)
    data = Manifest(backup_id=backup_id, target="pg_main", database="app", kind="logical",
                    key=f"{folder}/dump.pgc.zst", format="pg_dump-custom", compression="zstd:1",
                    stored_bytes=10, raw_bytes=20, sha256="0" * 64, started_at=when,
                    completed_at=when, server_version="15.1", pg_dump_version="15.1",
                    version=2).to_dict()
    del data["encryption"]
    data.update(changes)
    return json.dumps(data).encode(), folder


def test_version_2_manifests_still_load_and_envelopes_are_checked() -> None:
    raw, folder = _stored_manifest()
    old = parse_manifest(raw, folder)
    assert old.version == 2 and old.encryption is None
    seal = _seal(_keys())
    raw, folder = _stored_manifest(version=3, encryption=seal.record())
    assert parse_manifest(raw, folder).encryption == seal.record()
    bad = {**seal.record(), "provider": "rot13"}
    raw, folder = _stored_manifest(version=3, encryption=bad)
    with pytest.raises(ManifestError, match="encryption.provider"):
        parse_manifest(raw, folder)


def test_with_encryption_on_a_plaintext_wal_segment_is_refused_unless_allowed(
        tmp_path: Path) -> None:
    storage, name = LocalStorage(tmp_path / "store"), "000000010000000000000001"
    segment = tmp_path / name
    segment.write_bytes(os.urandom(3 * CHUNK) * 4)
    keys = _keys()
    archive = WalArchive(storage, "database", "pg_main", keys=keys)
    archive.push(segment, name)
    sealed = storage.get_bytes(archive.key(name))
    plain = WalArchive(storage, "database", "pg_plain")  # archived before encryption was on
    plain.push(segment, name)
    storage.put_bytes(archive.key(name), storage.get_bytes(plain.key(name)))  # swapped in
    with pytest.raises(TamperedObject) as refused:
        archive.fetch(name, tmp_path / "out")
    message = str(refused.value)
    assert "is not encrypted" in message and "BACKUP_ENCRYPTION=key" in message
    assert "BACKUP_ENCRYPTION_PLAINTEXT_WAL=true" in message
    assert not (tmp_path / "out").exists()
    allowed = KeyService(dataclasses.replace(keys.config, plaintext_wal=True),
                         lambda conn_id: {"extra": {}})
    for reader in (allowed, KeyService(KeyConfig()), None):  # allowed, encryption off, no keys
        WalArchive(storage, "database", "pg_plain", keys=reader).fetch(name, tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == segment.read_bytes()
    storage.put_bytes(archive.key(name), sealed)
    archive.fetch(name, tmp_path / "sealed")  # the sealed segment still opens
    assert (tmp_path / "sealed").read_bytes() == segment.read_bytes()
