"""Project export and import operators (core/export/): thin adapters over the engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator

from amprenta_backup.operators.approval import (
    PlanGatedOperator,
    branch_on_plan,
    pulled_plan,
    require_approval,
)
from amprenta_backup.operators.engine import EngineOperator, fail_without_retry

if TYPE_CHECKING:
    from airflow.sdk import Context

    from amprenta_backup.core.export.load import ImportReport


class ProjectExportOperator(EngineOperator):
    """Export projects (``BACKUP_PROJECT_ROOT``) as one ZIP in backup storage.

    Returns ``export_id``, location, sha256, size and rows per table; the catalog's
    ``exports`` table records who asked (the DAG run).

    :param project_ids: values of the root key (templated)
    :param include_data: the rows (else only the DDL and counts)
    :param include_files: the files the rows' file columns name
    """

    template_fields: Sequence[str] = ("project_ids", "include_data", "include_files")
    ui_color = "#d9ead3"

    def __init__(self, *, project_ids: Any, include_data: Any = True, include_files: Any = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project_ids = project_ids
        self.include_data = include_data
        self.include_files = include_files

    def execute(self, context: Context) -> dict[str, Any]:
        from amprenta_backup.hooks.context import run_context

        run = run_context(context)
        with fail_without_retry():
            result = self.engine.create_project_export(
                project_ids=list(self.project_ids or []), include_data=bool(self.include_data),
                include_files=bool(self.include_files), run=run,
                created_by=f"airflow:{run.dag_id}/{run.run_id}")
        self.log.info("export %s: %s rows, %s bytes, sha256 %s", result["export_id"],
                      result["row_count"], result["size_bytes"], result["sha256"])
        return result


class _ImportBase(PlanGatedOperator):
    """The import request (``export_id``, ``target_conn_id``, ``target_database``,
    ``on_conflict``, ``dry_run``) and the ids of the plan, approval and import tasks."""

    def __init__(self, *, approval_task_id: str = "approve_import",
                 import_task_id: str = "import_project", **kwargs: Any) -> None:
        super().__init__(approval_task_id=approval_task_id, run_task_id=import_task_id,
                         **kwargs)

    def run_import(self, dry_run: bool) -> ImportReport:
        request = self.request
        with self.refusals():
            return self.engine.import_project(
                str(request["export_id"]), str(request["target_database"]),
                request.get("target_conn_id") or None, str(request.get("on_conflict") or
                                                          "fail"), dry_run=dry_run)


class ProjectImportPlanOperator(_ImportBase, BaseBranchOperator):
    """Import the export in a transaction that is rolled back: every checksum, the schema
    and the conflicts checked, the rows per table counted. Writes nothing; pushes the
    report (XCom key ``plan``) and follows the approval task unless ``dry_run``."""

    ui_color = "#fff2cc"

    def choose_branch(self, context: Context) -> str | list[str]:
        report = self.run_import(dry_run=True)
        return branch_on_plan(self, context, report, noun="import",
                              dry_run=bool(self.request.get("dry_run")), needs_approval=True,
                              approval_task_id=self.approval_task_id,
                              run_task_id=self.run_task_id)


class ProjectImportOperator(_ImportBase):
    """Import the export for real, in one transaction, once the approval said Approve."""

    ui_color = "#f4cccc"

    def execute(self, context: Context) -> dict[str, Any]:
        plan = pulled_plan(context, self.plan_task_id, "import", "tables", list)
        require_approval(self, context, self.approval_task_id,
                         f"importing export {plan.get('export_id')} into "
                         f"{plan.get('database')}", "the project_import DAG")
        report = self.run_import(dry_run=False)
        self.log.info("import:\n%s", report.text())
        return report.to_dict()
