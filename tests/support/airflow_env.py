"""Point Airflow at a throwaway home before anything imports it."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def configure() -> Path:
    """Set ``AIRFLOW_HOME`` and friends for this test process; returns the home folder.

    Must run before the first ``import airflow`` (the root conftest does it at import time).
    The folder is removed when the test process ends.
    """
    home = Path(tempfile.mkdtemp(prefix="amprenta-airflow-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    settings = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }
    for key, value in settings.items():
        os.environ[key] = value
    return home
