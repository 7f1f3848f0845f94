"""A producer of the e2e source database that Airflow sees only through its tag
``writes:pg_source`` (it writes through the connection)."""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(dag_id="e2e_load_customers", schedule=None, tags=["e2e", "writes:pg_source"]):
    EmptyOperator(task_id="load")
