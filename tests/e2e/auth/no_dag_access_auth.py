"""The e2e deployment's auth manager: Airflow's simple auth manager, except that the users
named in ``E2E_NO_DAG_ACCESS_USERS`` may read no DAG at all.

Test-only, and why: Airflow's simple auth manager gives every role read access to every DAG;
its one way to withhold a DAG from a user is multi-team mode (``[core] multi_team``, DAG
bundles assigned to teams, ``user:role:team``), which makes the shared e2e deployment's
bundles, executors, connections and pools team-scoped under every other e2e test; the FAB
auth manager's per-DAG permissions need the FAB provider, which this project does not
install. So this subclass decides ``is_authorized_dag`` for those users only; everything
else, including how the plugin asks (``requires_access_dag`` in Airflow's own security
module), is Airflow's code.

On ``PYTHONPATH`` of the e2e deployment only (``tests/e2e/conftest.py``).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

USERS_VARIABLE = "E2E_NO_DAG_ACCESS_USERS"


class NoDagAccessAuthManager(SimpleAuthManager):
    """:class:`SimpleAuthManager`; the users in ``E2E_NO_DAG_ACCESS_USERS`` (comma list) are
    refused every DAG."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None,
                          details: Any = None) -> bool:
        refused = {u.strip() for u in os.environ.get(USERS_VARIABLE, "").split(",")}
        if user.get_name() in refused:
            return False
        return super().is_authorized_dag(method=method, user=user,
                                         access_entity=access_entity, details=details)
