"""Fault: a WAL segment missing from the archive, and a point-in-time restore to ``latest``.

A real archiving cluster, a real base backup and a real recovery (``amprenta-wal fetch`` run
by the restored server as restore_command); the error must name the missing segment, not the
timeline history file recovery also asked for.
"""

from __future__ import annotations

import pytest

from amprenta_backup.core.errors import RestoreError
from amprenta_backup.core.wal.archive import checksum_key
from tests.faults.conftest import FaultRow
from tests.integration.pitr.test_restore import History, between, copy_archive, history

SHARED_FIXTURES = (history,)  # the archiving cluster with a base backup and WAL after it


@pytest.mark.faults("PITR to latest over a missing WAL segment")
def test_pitr_to_latest_over_a_gap_names_the_missing_segment(history: History, row: FaultRow
                                                             ) -> None:
    archive = copy_archive(history, "gapnamed.pitr")
    missing = between(history)
    archive.storage.delete([archive.key(missing), checksum_key(archive.key(missing))])
    request = history.request("gap_named", "latest")
    with pytest.raises(RestoreError) as raised:
        history.restorer(archive).run(history.manifest, request, history.conn)
    text = str(raised.value)
    assert text.startswith(f"WAL segment {missing} is missing from the archive"), text
    assert f"did not find: {missing}" in text
    assert ".history" not in text
    row.saw("refused, the error names the missing segment (not a history file)")
    assert not request.data_dir.exists()
    row.saw("no data directory left")
