"""Not a writer of the e2e source: it produces an Asset of another database on the same
server and reads the source (``reads:pg_source``)."""

from __future__ import annotations

import os

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset

with DAG(dag_id="e2e_unrelated", schedule=None, tags=["e2e", "reads:pg_source"]):
    EmptyOperator(task_id="load", outlets=[Asset(os.environ["E2E_OTHER_ASSET"])])
