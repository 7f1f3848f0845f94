"""A producer of the e2e replay database (``writes:pg_replay``): each run inserts one row
named by its run id, again on a re-run (idempotent per run, as Airflow asks of DAGs)."""

from __future__ import annotations

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG

with DAG(dag_id="e2e_load_events", schedule=None, tags=["e2e", "writes:pg_replay"]):
    SQLExecuteQueryOperator(
        task_id="load", conn_id="pg_replay",
        sql="INSERT INTO events (run_id) VALUES ('{{ run_id }}') ON CONFLICT DO NOTHING")
