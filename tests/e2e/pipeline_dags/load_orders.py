"""A producer of the e2e source database: its task's outlet is an Asset naming the database
(``E2E_SOURCE_ASSET``, ``postgres://host:port/e2e_source/public/orders``)."""

from __future__ import annotations

import os

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset

with DAG(dag_id="e2e_load_orders", schedule=None, tags=["e2e"]):
    EmptyOperator(task_id="load", outlets=[Asset(os.environ["E2E_SOURCE_ASSET"])])
