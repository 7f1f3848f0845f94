"""Fault: the source PostgreSQL server restarts (``pg_ctl restart -m fast``: a failover, a
config change) while its dump streams. The backup must fail clearly and the next one work."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ThrowawayCluster
from amprenta_backup.sandbox.dataset import load_bulk
from tests.faults.common import assert_counts_match, local_cli, wait_for
from tests.faults.conftest import FaultRow
from tests.integration.conftest import conninfo
from tests.support.process_group import children


@pytest.fixture(scope="module")
def source() -> Iterator[ThrowawayCluster]:
    """A server of its own (the catalog's must stay up) whose database ``src`` takes a while
    to dump."""
    with ThrowawayCluster() as cluster:
        load_bulk(cluster, "src", megabytes=40)
        yield cluster


def dumps(pid: int) -> list[int]:
    """``pid``'s pg_dump children that dump (on the exported snapshot), not a ``--version``
    probe that has exited by the time it is signalled."""
    found = []
    for child in children(pid, "pg_dump"):
        try:
            if b"--snapshot=" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


def written(pid: int) -> int:
    """Bytes ``pid`` has written so far (``wchar`` of /proc/PID/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError(f"no wchar in /proc/{pid}/io")


def pause_mid_stream(dump: int) -> None:
    """SIGSTOP ``dump`` once it has written 2 MiB (its schema part is a few kB: it is in the
    table data). Until then it runs in 5 ms steps: polling a free-running pg_dump lost the
    race on a quiet machine (the 40 MB dump finished between two looks)."""
    deadline = time.monotonic() + 120
    os.kill(dump, signal.SIGSTOP)
    while written(dump) < 2**21:
        assert time.monotonic() < deadline, "pg_dump wrote less than 2 MiB within 120 s"
        os.kill(dump, signal.SIGCONT)
        time.sleep(0.005)
        os.kill(dump, signal.SIGSTOP)


@pytest.mark.faults("source server restarted mid-dump")
def test_a_restart_mid_dump_fails_clearly_and_the_next_backup_works(
    source: ThrowawayCluster, catalog: Catalog, local_storage: LocalStorage, row: FaultRow,
) -> None:
    cli = local_cli("pg_src", conninfo(source, "src"), catalog, local_storage.root)
    proc = cli.start("backup", "pg_src")
    (dump,) = wait_for(lambda: dumps(proc.pid), what="pg_dump")
    try:
        pause_mid_stream(dump)  # so the restart cannot miss the dump
        source.restart()
    finally:
        os.kill(dump, signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "failed at step 'dump': pg_dump exited with code 1" in err, err
    assert "terminating connection due to administrator command" in err, err  # mid-COPY
    assert "Traceback" not in err, err
    row.saw("exit 1: 'failed at step dump', pg_dump's reason, no traceback")
    (record,) = catalog.find(target="pg_src")
    assert record.status == Status.FAILED and record.manifest is None
    assert (record.error or "").startswith("step 'dump' failed: pg_dump"), record.error
    row.saw("record FAILED naming the step")
    keys = [o.key for o in local_storage.list_objects()]
    assert keys == [] and local_storage.list_incomplete_uploads() == []
    row.saw("nothing left in storage")

    done = cli("backup", "pg_src", "--json")
    assert done.returncode == 0, done.stderr
    restored = cli("restore", "latest", "--from", "pg_src", "--database", "restored",
                   timeout=600)
    assert restored.returncode == 0, restored.stderr
    assert_counts_match(source, "restored", json.loads(done.stdout)["table_counts"])
    row.saw("the next backup COMPLETED and restores")
