"""What the Airflow UI shows of every DAG: its doc, its tags by function, mapped task names."""

from __future__ import annotations

from typing import Any

import pytest

from amprenta_backup.defaults import FUNCTIONS, function_tags
from tests.support.airflow_env import REPO

TAGS = {
    "daily_backup": ["backup"], "daily_health": ["health"], "disaster_recovery": ["restore"],
    "dr_drill": ["drill", "restore"], "monthly_restore_drill": ["drill", "verify"],
    "pitr_drill": ["pitr", "drill"], "pitr_restore": ["pitr", "restore"],
    "project_export": ["backup"], "project_import": ["restore"],
    "restore": ["restore"], "weekly_base_backup": ["backup", "pitr"],
    "weekly_cleanup": ["cleanup"], "weekly_verify": ["verify"],
}
# the form fields a person must fill in (no usable default), per DAG
MUST_FILL_IN = {
    "restore": {"target_database"}, "pitr_restore": {"data_directory"},
    "project_import": {"export_id", "target_database"}, "project_export": {"project_ids"},
    "disaster_recovery": {"server_conn_id"},
}


@pytest.fixture(scope="module")
def dags(airflow_db: None) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return dict(bag.dags)


def test_every_dag_is_tagged_by_what_it_does(dags: dict[str, Any]) -> None:
    assert {dag_id: sorted(set(dag.tags) - {"amprenta-backup"}) for dag_id, dag in dags.items()
            } == {dag_id: sorted(tags) for dag_id, tags in TAGS.items()}
    assert all("amprenta-backup" in dag.tags for dag in dags.values())
    assert set().union(*TAGS.values()) == set(FUNCTIONS)


def test_a_tag_that_is_not_a_function_is_refused() -> None:
    with pytest.raises(ValueError, match="DAG functions \\['backups'\\]: give one or more of "
                                         "backup, verify, restore"):
        function_tags(("backups",))


def test_every_dag_doc_says_what_it_does_and_what_happens_when_it_fails(
    dags: dict[str, Any],
) -> None:
    for dag_id, dag in dags.items():
        doc = dag.doc_md or ""
        assert doc.startswith(f"{dag_id}: "), dag_id
        assert "### What it does" in doc and "### When it fails" in doc, dag_id
        assert "``" not in doc, f"{dag_id}: reStructuredText literals in Markdown"
        assert dag.description, dag_id


def test_mapped_tasks_are_named_by_their_target_or_backup(dags: dict[str, Any]) -> None:
    by_target = "{{ task.target_name }}"  # pg_main.sales, as filed and listed
    assert dags["daily_backup"].get_task("backup").map_index_template == by_target
    assert dags["weekly_verify"].get_task("verify").map_index_template == \
        "{{ task.backup_id }}"
    for task_id in ("setup", "restore", "checks", "teardown"):
        task = dags["monthly_restore_drill"].get_task(f"drill.{task_id}")
        assert task.map_index_template == by_target, task_id


@pytest.mark.parametrize(("target", "shown"), [
    ("pg_main", "pg_main"), ("pg_main:sales", "pg_main.sales"),
    ("pg_main:sales 2026", "pg_main.sales_2026"),  # as filed: the database's space is a _
    ("no target!", "no target!"),  # the task fails on it; its map index still renders
])
def test_a_mapped_task_shows_its_target_as_its_backups_are_filed(
    dags: dict[str, Any], target: str, shown: str,
) -> None:
    from amprenta_backup.operators.backup import PostgresBackupOperator

    dag = dags["daily_backup"]
    task = PostgresBackupOperator(task_id="backup_one", target=target)
    template = dag.get_task("backup").map_index_template
    assert dag.get_template_env().from_string(template).render(task=task) == shown


def test_every_form_field_has_a_title_and_a_description(dags: dict[str, Any]) -> None:
    untitled = [f"{dag_id}.{name}" for dag_id, dag in dags.items()
                for name, param in dag.params.items()
                if not param.schema.get("title") or not param.description]
    assert untitled == []
    data_directory = dags["pitr_restore"].params.get_param("data_directory").schema
    assert data_directory["type"] == "string"  # required: the form marks it


def test_the_forms_mark_the_fields_to_fill_in_and_refuse_them_empty(dags: dict[str, Any]) -> None:
    """Airflow's trigger form puts its asterisk on a field whose type has no null; a field
    with no usable default needs it, and an empty value is refused (minLength, pattern or
    minItems), as the restore form's database field since issue 13."""
    from airflow.sdk.exceptions import ParamValidationError

    must: dict[str, set[str]] = {}
    for dag_id, dag in dags.items():
        for name, param in dag.params.items():
            types = param.schema["type"]
            nullable = "null" in ([types] if isinstance(types, str) else types)
            assert not param.description.lower().startswith("required"), (
                f"{dag_id}.{name}: say it with the type (no null), not in the description")
            if nullable or (param.value is not None  # a default the form can keep
                            and param.resolve(suppress_exception=True) is not None):
                continue
            must.setdefault(dag_id, set()).add(name)
            with pytest.raises(ParamValidationError):
                param.resolve(value=[] if param.schema["type"] == "array" else "")
    assert must == MUST_FILL_IN


def test_a_refused_request_names_the_fields_as_the_form_labels_them(
        dags: dict[str, Any]) -> None:
    """The plan task's refusal (the task log, the alert) in the form's words; the CLI says
    --jobs and --from there."""
    from airflow.sdk.exceptions import AirflowFailException

    plan = dags["restore"].get_task("plan")
    request = plan.request
    for conf, words in (
            ({"backup_id": "latest", "jobs": 0}, "Parallel jobs: 0 is out of range; use a "
                                                 "whole number from 1 to 32"),
            ({"backup_id": "latest"}, "backup id 'latest' needs the backup target whose "
                                      "newest backup to restore: give Backup target (see "
                                      "`amprenta-backup list`)")):
        plan.request = {"database": "analytics", **conf}  # as rendered from the form
        with pytest.raises(AirflowFailException) as refused:
            plan.restore_request()
        plan.request = request
        assert str(refused.value) == words
