"""Parallel restore (``jobs > 1``) that does not wait for the download.

``pg_restore --jobs`` needs a seekable file; waiting for the whole dump to be downloaded and
decompressed into one cost 30 % on top of ``pg_restore -j 2`` itself. Here the dump is
decompressed into the temporary file by one thread (started before the database is created)
while, reading that growing file each at its own pace: ``pg_restore --list`` gives the table
of contents while ``--section=pre-data`` creates the schema, then ``jobs`` ``pg_restore
--section=data`` processes load disjoint sets of tables (largest first, to the least loaded)
as their bytes arrive, each building a table's indexes and keys right after its data, as raw
``pg_restore --jobs`` does (a separate post-data pass after all the data cost 0.35 s of 2.8 on
16 tables). Once the file is whole (and its sha256 checked on the way), the caller restores the
rest (foreign keys, triggers, sequence values ...) with ``pg_restore --jobs`` from it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
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
Count = Callable[[list[tuple[str, str]]], dict[str, int]]
"""Rows of the ``(schema, table)`` pairs restored, keyed ``schema.table``."""

LOADED = ("; found while restoring: nothing was restored (the database it was being loaded "
          "into is dropped)")
"""How a restore that checks the sha256 on its one read (this one, core/restore/parts.py) names
a mismatch: the data was loaded as it arrived, and the caller drops that database."""

SECTIONS = ("--section=data", "--section=post-data")
"""What the loaders and the last pass restore, each limited by its ``--use-list``."""
_TABLE_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ")
_ENTRY = re.compile(r"^\d+; \d+ \d+ ")
_DEPENDS = re.compile(r"^;\s*depends on:(.*)$")
_BUILDS = re.compile(r"^\d+; \d+ \d+ (?:INDEX|CONSTRAINT) ")
"""Post-data entries a loader builds right after its table's data (an index, a primary key or
unique constraint): what raw ``pg_restore -j`` also runs as soon as the table is loaded."""


@dataclass(frozen=True)
class Split:
    """What each data loader restores, and what is left for the last pass.

    :param loaders: one ``--use-list`` text per loader: its tables' data in file order, each
        followed by the indexes and keys that depend on that table alone
    :param tables: each loader's tables, ``(schema, table)``
    :param rest: every other entry (foreign keys, triggers, sequence values, large objects ...)
        for ``pg_restore --jobs --section=data --section=post-data`` once the file is whole
    """

    loaders: list[str]
    tables: list[list[tuple[str, str]]]
    rest: str


def split_data(listing: str, rows: dict[str, int], jobs: int) -> Split:
    """Deal a ``pg_restore --list --verbose`` (entries with their dependencies) to ``jobs``
    data loaders.

    Tables are dealt largest first (rows from the manifest) to the loader with the fewest rows
    so far; an INDEX or CONSTRAINT entry whose every dependency is a table of one loader goes
    to that loader, right after that table's data; everything else is left for the last pass,
    so nothing is restored twice. Loaders left with no table are dropped.
    """
    entries: list[tuple[str, set[int]]] = []  # (line, the dump ids it depends on)
    for line in listing.splitlines():
        if _ENTRY.match(line):
            entries.append((line, set()))
        elif (depends := _DEPENDS.match(line)) and entries:
            entries[-1][1].update(int(n) for n in depends[1].split())
    tables = [(n, m) for n, (line, _) in enumerate(entries) if (m := _TABLE_DATA.match(line))]
    load, owner, job_of_table = [0] * jobs, {}, {}
    for n, match in sorted(tables, key=lambda t: -rows.get(f"{t[1][1]}.{t[1][2]}", 0)):
        job = load.index(min(load))
        owner[n] = job
        job_of_table.update(dict.fromkeys(entries[n][1], job))
        load[job] += max(rows.get(f"{match[1]}.{match[2]}", 0), 1)
    after: dict[int, list[str]] = {n: [] for n in owner}  # data entry -> what follows it
    data_of = {table: n for n in owner for table in entries[n][1]}
    kept: list[str] = []
    for line, needs in entries:
        jobs_of = {job_of_table.get(d) for d in needs}
        if _BUILDS.match(line) and needs and len(jobs_of) == 1 and None not in jobs_of:
            after[max(data_of[d] for d in needs)].append(line)
        elif not _TABLE_DATA.match(line):
            kept.append(line)
    used = sorted(set(owner.values()))
    loaders = ["".join(f"{line}\n" for n in sorted(owner) if owner[n] == job
                       for line in (entries[n][0], *after[n])) for job in used]
    names = [[(match[1], match[2]) for n, match in tables if owner[n] == job] for job in used]
    return Split(loaders, names, "".join(f"{line}\n" for line in kept))


class StagedRestore:
    """Runs the stages of one parallel restore over one growing temporary file.

    :param argv: builds the pg_restore command into the target database
    :param list_argv: the ``pg_restore --list`` command
    :param env: the tools' environment
    :param jobs: data loaders at most
    :param rows: rows per table (``schema.table``) from the manifest
    :param count: counts the rows of a loader's tables once it has finished, while the others
        still load (into :attr:`counted`); the caller counts the rest at the end
    """

    def __init__(self, argv: Argv, list_argv: list[str], env: dict[str, str], jobs: int,
                 rows: dict[str, int], count: Count | None = None) -> None:
        self.argv = argv
        self.list_argv = list_argv
        self.env = env
        self.jobs = jobs
        self.rows = rows
        self.count = count
        self.counted: dict[str, int] = {}

    def run(self, path: Path, download: Download, check: Check, create: Create) -> list[str]:
        """Download into ``path`` and restore pre-data, data and each table's indexes from it
        as it grows; the database is created (``create``) while the first bytes arrive.
        Returns the pg_restore options of the last pass (the entries left, by ``--use-list``),
        for the caller to run with ``--jobs`` on the whole file.

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
                last = self._stages(growing, path.parent, create)
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
        return last

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

    def _stages(self, growing: GrowingFile, folder: Path, create: Create) -> list[str]:
        lister = Follower(growing, self.list_argv, self.env, capture=True)  # needs no database
        try:
            create()
        except BaseException:
            lister.kill()
            raise
        listing = _finish("pg_restore --list or --section=pre-data", [  # both read the TOC
            lister, Follower(growing, self.argv("--section=pre-data"), self.env)])
        loaders, split = [], split_data(listing.decode(), self.rows, self.jobs)
        log.info("restoring the data with %d pg_restore processes while the dump arrives",
                 len(split.loaders))
        for job, text in enumerate(split.loaders):
            use = folder / f"data-{job}.list"
            use.write_text(text)
            loaders.append(Follower(growing, self.argv(*SECTIONS, f"--use-list={use}"),
                                    self.env))
        self._load(loaders, split.tables)
        rest = folder / "rest.list"
        rest.write_text(split.rest)
        return [*SECTIONS, f"--use-list={rest}"]

    def _load(self, loaders: list[Follower], tables: list[list[tuple[str, str]]]) -> None:
        """Wait for the loaders, counting each one's tables as soon as it has finished (on
        a core the others leave idle); the first failure raised, the others killed."""
        failure: BaseException | None = None
        with ThreadPoolExecutor(max(1, len(loaders)), thread_name_prefix="loader") as pool:
            waits = [pool.submit(self._loaded, loader, names)
                     for loader, names in zip(loaders, tables, strict=True)]
            for done in as_completed(waits):
                if done.exception() is not None and failure is None:
                    failure = done.exception()
                    for loader in loaders:
                        loader.kill()
        if failure is not None:
            raise failure

    def _loaded(self, loader: Follower, names: list[tuple[str, str]]) -> None:
        code, stderr, _ = loader.finish()
        if code != 0:
            raise DumpError(f"pg_restore --section=data exited with code {code}: "
                            f"{stderr or 'no message'}")
        if self.count is not None:
            self.counted.update(self.count(names))


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
    return outputs[0] if outputs else b""
