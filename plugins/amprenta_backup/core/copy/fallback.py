"""A restorer that falls back to the second copy: the restore DAG, the CLI and Python get the
same restore, on the copy when the primary cannot be read or its backup is damaged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from amprenta_backup.core.restore.plan import RestorePlan
from amprenta_backup.core.restore.request import RestoreRequest
from amprenta_backup.core.restore.run import ProgressFactory, Restorer, RestoreResult

if TYPE_CHECKING:
    from amprenta_backup.core.copy.workflow import CopyWorkflow


class FallbackRestorer(Restorer):
    """:class:`Restorer` over the primary; a plan or restore the primary cannot serve
    (unreachable, or the backup damaged there) is made again from the copy, and the log says
    so. The damaged primary backup stays marked CORRUPT.

    :param primary: the restorer of the primary storage
    :param copies: the second copy
    """

    def __init__(self, primary: Restorer, copies: CopyWorkflow) -> None:
        super().__init__(primary.storage, primary.catalog, primary.resolve, primary.keys)
        self.copies = copies

    def _copy(self) -> Restorer:
        return Restorer(*self.copies.sources(), self.resolve, self.keys)

    def plan(self, request: RestoreRequest, workdir: str | None = None) -> RestorePlan:
        return self.copies.read(
            f"planning the restore of {request.backup_id}", False,
            lambda: super(FallbackRestorer, self).plan(request, workdir),
            lambda _s, _c: self._copy().plan(request, workdir))

    def run(self, request: RestoreRequest, progress: ProgressFactory | None = None,
            workdir: str | None = None) -> RestoreResult:
        return self.copies.read(
            f"restoring {request.backup_id}", False,
            lambda: super(FallbackRestorer, self).run(request, progress, workdir),
            lambda _s, _c: self._copy().run(request, progress, workdir))
