"""A real multipart upload to moto's S3 server whose parts grow as they accumulate."""

from __future__ import annotations

import hashlib
import os

from amprenta_backup.core.storage import S3Storage
from amprenta_backup.core.storage.multipart import MIB
from amprenta_backup.sandbox.s3server import MotoServer


def test_an_upload_crossing_growth_steps_stores_the_exact_bytes(moto_server: MotoServer) -> None:
    bucket = moto_server.create_bucket("growing-parts")
    client = moto_server.client()
    storage = S3Storage(client, bucket, part_size=5 * MIB, growth_every=2)
    data = os.urandom(41 * MIB)
    with storage.open_writer("big/object") as writer:
        for start in range(0, len(data), 3 * MIB):  # the pipeline's writes are small too
            writer.write(data[start:start + 3 * MIB])
    sizes = [client.head_object(Bucket=bucket, Key="big/object", PartNumber=n)["ContentLength"]
             for n in range(1, 6)]
    assert sizes == [5 * MIB, 5 * MIB, 10 * MIB, 10 * MIB, 11 * MIB]  # then 20: the rest
    head = client.head_object(Bucket=bucket, Key="big/object")
    assert head["ETag"].strip('"').endswith("-5")  # fixed 5 MiB parts: 9
    assert hashlib.sha256(storage.get_bytes("big/object")).digest() == \
        hashlib.sha256(data).digest()
