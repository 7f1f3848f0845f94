"""``[core] hostname_callable`` for several Airflow workers on one machine: each names itself."""

from __future__ import annotations

import os

ENV = "AMPRENTA_TEST_HOSTNAME"


def from_env() -> str:
    """The worker's name from ``AMPRENTA_TEST_HOSTNAME`` (task instances record it)."""
    return os.environ[ENV]
