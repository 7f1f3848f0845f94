"""The archiver's sleep ends when PostgreSQL marks a file ready or a push finishes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from amprenta_backup.core.wal.wakeup import Wakeup


def test_a_new_ready_file_or_a_finished_push_ends_the_sleep(tmp_path: Path) -> None:
    wakeup = Wakeup(tmp_path)
    try:
        assert wakeup.watching  # Linux: inotify
        for wake in (lambda: (tmp_path / "000000010000000000000001.ready").touch(),
                     wakeup.ring):
            timer = threading.Timer(0.1, wake)
            started = time.monotonic()
            timer.start()
            wakeup.wait(10)
            timer.join()
            assert time.monotonic() - started < 5
        started = time.monotonic()
        wakeup.wait(0.2)  # nothing new: the whole timeout (the events were read)
        assert time.monotonic() - started >= 0.15
    finally:
        wakeup.close()
