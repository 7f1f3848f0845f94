"""Parallel restore (``jobs > 1``) that does not wait for the download.

``pg_restore --jobs`` needs a seekable file; waiting for the whole dump to be downloaded and
decompressed into one cost 30 % on top of ``pg_restore -j 2`` itself. Here the dump is
decompressed into the temporary file by one thread (started before the database is created)
while, reading that growing file each at its own pace: ``pg_restore --list`` gives the table
of contents while ``--section=pre-data`` creates the schema, then ``jobs`` ``pg_restore
--section=data`` processes load disjoint sets of tables (largest first, to the least loaded)
as their bytes arrive. Once the file is whole (and its sha256 checked on the way), the caller
builds indexes and constraints with ``pg_restore --jobs --section=post-data`` from it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path

from amprenta_backup.core.errors import DumpError
from amprenta_backup.core.readback import Readback
from amprenta_backup.core.restore.growing import Follower, GrowingFile

log = logging.getLogger(__name__)

Download = Callable[[Callable[[bytes], object]], Readback]
"""Reads the backup once, handing its decompressed bytes to the sink."""
Check = Callable[[Readback], None]
"""Raises (ChecksumMismatch) if what the download saw does not match the manifest."""
Create = Callable[[], None]
"""Creates the target database: nothing is written into it before this returns."""
Argv = Callable[..., list[str]]
"""``(*extra options) -> pg_restore argv`` into the target database."""

LOADED = ("; found while restoring: nothing was restored (the database it was being loaded "
          "into is dropped)")
"""How a restore that checks the sha256 on its one read (this one, core/restore/parts.py) names
a mismatch: the data was loaded as it arrived, and the caller drops that database."""

_TABLE_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ")


def split_data(listing: str, rows: dict[str, int], jobs: int) -> list[str]:
    """One ``--use-list`` file per job from ``pg_restore --list`` output.

    Tables are dealt largest first (rows from the manifest) to the job with the fewest rows
    so far; every other entry (sequence values, large objects) goes to job 0 alone, so
    nothing is restored twice. Jobs left with no table are dropped.
    """
    lines = listing.splitlines()
    tables = [(n, m) for n, line in enumerate(lines) if (m := _TABLE_DATA.match(line))]
    load, owner = [0] * jobs, {}
    for n, match in sorted(tables, key=lambda t: -rows.get(f"{t[1][1]}.{t[1][2]}", 0)):
        job = load.index(min(load))
        owner[n] = job
        load[job] += max(rows.get(f"{match[1]}.{match[2]}", 0), 1)
    wanted = sorted({0, *owner.values()})
    return ["\n".join(line for n, line in enumerate(lines) if owner.get(n, 0) == job) + "\n"
            for job in wanted]


class StagedRestore:
    """Runs the stages of one parallel restore over one growing temporary file.

    :param argv: builds the pg_restore command into the target database
    :param list_argv: the ``pg_restore --list`` command
    :param env: the tools' environment
    :param jobs: data loaders at most
    :param rows: rows per table (``schema.table``) from the manifest
    """

    def __init__(self, argv: Argv, list_argv: list[str], env: dict[str, str], jobs: int,
                 rows: dict[str, int]) -> None:
        self.argv = argv
        self.list_argv = list_argv
        self.env = env
        self.jobs = jobs
        self.rows = rows

    def run(self, path: Path, download: Download, check: Check, create: Create) -> None:
        """Download into ``path`` and restore pre-data and data from it as it grows; the
        database is created (``create``) while the first bytes arrive.

        ``check`` judges what the download saw (it raises if the dump is damaged), before a
        failed stage is reported: a damaged dump is named as such, not as the pg_restore
        error it caused. Otherwise raises DumpError naming the stage that failed.
        """
        outcome: list[Readback | BaseException] = []
        with GrowingFile(path) as growing:
            writer = threading.Thread(target=self._download, args=(download, growing, outcome),
                                      daemon=True, name="restore-download")
            writer.start()
            try:
                self._stages(growing, path.parent, create)
            except DumpError:  # damage on the way is named first: read to the end to know
                writer.join()
                _judge(outcome, check)
                raise
            except BaseException:
                growing.abort()
                writer.join()
                raise
            writer.join()
        _judge(outcome, check)

    @staticmethod
    def _download(download: Download, growing: GrowingFile,
                  outcome: list[Readback | BaseException]) -> None:
        try:
            seen = download(growing.write)
            outcome.append(seen)
            growing.close(failed=seen.error is not None)
        except BaseException as exc:  # handed to run()
            outcome.append(exc)
            growing.close(failed=True)

    def _stages(self, growing: GrowingFile, folder: Path, create: Create) -> None:
        lister = Follower(growing, self.list_argv, self.env, capture=True)  # needs no database
        try:
            create()
        except BaseException:
            lister.kill()
            raise
        listing = _finish("pg_restore --list or --section=pre-data", [  # both read the TOC
            lister, Follower(growing, self.argv("--section=pre-data"), self.env)])
        loaders, lists = [], split_data(listing.decode(), self.rows, self.jobs)
        log.info("restoring the data with %d pg_restore processes while the dump arrives",
                 len(lists))
        for job, text in enumerate(lists):
            use = folder / f"data-{job}.list"
            use.write_text(text)
            loaders.append(Follower(growing, self.argv("--section=data", f"--use-list={use}"),
                                    self.env))
        _finish("pg_restore --section=data", loaders)


def _judge(outcome: list[Readback | BaseException], check: Check) -> None:
    """Raise what the download met, or what ``check`` finds in what it saw."""
    seen = outcome[0]
    if isinstance(seen, BaseException):
        raise seen
    check(seen)


def _finish(stage: str, followers: list[Follower]) -> bytes:
    """Wait for every follower; the first one's stdout, or DumpError (the others killed) if
    one failed."""
    outputs, failure = [], None
    for follower in followers:
        if failure is not None:
            follower.kill()
            continue
        code, stderr, output = follower.finish()
        outputs.append(output)
        if code != 0:
            failure = f"{stage} exited with code {code}: {stderr or 'no message'}"
    if failure is not None:
        raise DumpError(failure)
    return outputs[0]
