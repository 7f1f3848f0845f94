"""A producer of the e2e source database: its task's outlet is an Asset naming the database
(``E2E_SOURCE_ASSET``, ``postgres://host:port/e2e_source/public/orders``).

A run with ``conf={"gate": path}`` keeps its task running until ``path`` exists (at most two
minutes), so a test controls when a writer's task finishes; without it the task ends at once.
"""

from __future__ import annotations

import os

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset

with DAG(dag_id="e2e_load_orders", schedule=None, tags=["e2e"]):
    BashOperator(
        task_id="load", outlets=[Asset(os.environ["E2E_SOURCE_ASSET"])],
        env={"GATE": "{{ dag_run.conf.get('gate', '') }}"}, append_env=True,
        bash_command='[ -z "$GATE" ] || timeout 120 sh -c \'until [ -e "$GATE" ]; do sleep 0.2; '
                     "done'")
