"""Who writes where: Asset URIs, tags and BACKUP_WRITERS matched against a target."""

from __future__ import annotations

import pytest

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.writers import (
    DagInfo,
    Pipelines,
    asset_database,
    dags_from_rest,
    find_pipelines,
    restored_names,
    target_names,
)
from amprenta_backup.core.settings import PipelineSettings

MAIN = PgConnInfo(host="db.example.com", port=5432, dbname="orders")


def _find(*dags: DagInfo, override: dict[str, tuple[str, ...]] | None = None) -> Pipelines:
    return find_pipelines(target_names("pg_main", "orders", "orders"), MAIN, dags,
                          override=override)


@pytest.mark.parametrize(("uri", "expected"), [
    ("postgres://db.example.com:5432/orders/public/orders", ("db.example.com", 5432, "orders")),
    ("postgres://db.example.com/orders/public/orders", ("db.example.com", 5432, "orders")),
    ("postgresql://DB.Example.COM:6543/orders/app/t", ("db.example.com", 6543, "orders")),
    ("POSTGRES://127.0.0.1/orders//t", ("localhost", 5432, "orders")),
    ("postgres://db.example.com/caf%C3%A9/s/t", ("db.example.com", 5432, "café")),
    ("s3://bucket/orders/public/orders", None),
    ("postgres://db.example.com", None),
    ("postgres://db.example.com:notaport/orders/s/t", None),
    ("file:///tmp/x", None),
])
def test_asset_uris_are_normalised_like_airflows_postgres_provider(
        uri: str, expected: tuple[str, int, str] | None) -> None:
    assert asset_database(uri) == expected


def test_producers_write_consumers_read_and_other_databases_are_left_out() -> None:
    found = _find(
        DagInfo("load_orders", produces=("postgres://DB.example.com/orders/public/orders",)),
        DagInfo("load_customers", produces=("postgres://db.example.com:5432/orders/crm/c",)),
        DagInfo("report", consumes=("postgres://db.example.com/orders/public/orders",)),
        DagInfo("other_port", produces=("postgres://db.example.com:5433/orders/public/o",)),
        DagInfo("other_db", produces=("postgres://db.example.com/orders_old/public/o",)),
        DagInfo("other_case", produces=("postgres://db.example.com/Orders/public/o",)),
    )
    assert list(found.writers) == ["load_customers", "load_orders"]
    assert found.writers["load_orders"] == ["asset postgres://DB.example.com/orders/public/orders"]
    assert list(found.readers) == ["report"]


def test_tags_and_the_override_name_writers_and_a_writer_is_not_also_a_reader() -> None:
    found = _find(
        DagInfo("tagged", tags=("writes:pg_main", "team:data")),
        DagInfo("reader", tags=("reads:pg_main",)),
        DagInfo("both", tags=("reads:pg_main", "writes:pg_main"), is_paused=True),
        DagInfo("elsewhere", tags=("writes:pg_dr",)),
        override={"pg_main": ("sync_crm", "tagged"), "pg_dr": ("not_me",)},
    )
    assert found.writers == {"both": ["tag writes:pg_main"],
                             "sync_crm": ["BACKUP_WRITERS"],
                             "tagged": ["tag writes:pg_main", "BACKUP_WRITERS"]}
    assert list(found.readers) == ["reader"]
    assert found.paused == ("both",)
    assert Pipelines.from_dict(found.to_dict()) == found


def test_the_lines_name_the_writers_and_what_to_do() -> None:
    found = _find(DagInfo("a", tags=("writes:pg_main",)), DagInfo("b", tags=("writes:pg_main",)))
    assert found.lines() == ["2 DAGs write to database 'orders': a (tag writes:pg_main), "
                             "b (tag writes:pg_main); pause them before approving"]
    assert _find().lines() == ["no DAG writes to database 'orders'"]
    unknown = find_pipelines(("pg_main",), MAIN, [], known=False)
    assert "were not read: set BACKUP_AIRFLOW_API_CONN_ID" in unknown.lines()[0]


def test_dags_from_the_rest_api_json() -> None:
    dags = [{"dag_id": "load", "is_paused": False, "tags": [{"name": "x", "dag_id": "load"}]},
            {"dag_id": "mart", "is_paused": True, "tags": []}]
    assets = [{"uri": "postgres://db.example.com/orders/public/orders",
               "producing_tasks": [{"dag_id": "load", "task_id": "t"},
                                   {"dag_id": "load", "task_id": "u"}],
               "consuming_tasks": [], "scheduled_dags": [{"dag_id": "mart"}]}]
    found = dags_from_rest(dags, assets)
    assert found == [DagInfo("load", ("x",), False,
                             ("postgres://db.example.com/orders/public/orders",), ()),
                     DagInfo("mart", (), True, (),
                             ("postgres://db.example.com/orders/public/orders",))]


def test_backup_writers_setting() -> None:
    settings = PipelineSettings.from_env(
        {"BACKUP_WRITERS": " pg_main=load_orders, load_customers ; pg_dr=sync;"})
    assert settings.writers == {"pg_main": ("load_orders", "load_customers"), "pg_dr": ("sync",)}
    assert PipelineSettings.from_env({}).writers == {}
    with pytest.raises(ConfigError, match="BACKUP_WRITERS.*not `target=dag_id,dag_id`"):
        PipelineSettings.from_env({"BACKUP_WRITERS": "pg_main load_orders"})


def test_a_bare_connection_id_names_only_the_connections_own_database() -> None:
    assert target_names("pg_main", "orders", "orders") == ("pg_main", "pg_main.orders")
    assert target_names("pg_main", "scratch", "orders") == ("pg_main.scratch",)
    scratch = PgConnInfo(host="db.example.com", dbname="scratch")
    found = find_pipelines(target_names("pg_main", "scratch", "orders"), scratch, [
        DagInfo("main_writer", tags=("writes:pg_main",)),
        DagInfo("scratch_writer", tags=("writes:pg_main.scratch",))])
    assert (found.target, list(found.writers)) == ("pg_main.scratch", ["scratch_writer"])


def test_names_of_a_database_restored_through_the_backup_targets_connection() -> None:
    assert restored_names("pg_main", "orders", "orders") == ("pg_main", "pg_main.orders")
    assert restored_names("pg_main.analytics", "analytics", "analytics") == \
        ("pg_main.analytics",)
    assert restored_names("pg_main", "orders", "orders_copy") == ("pg_main.orders_copy",)
