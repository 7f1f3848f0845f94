"""The one environment builder for child processes (pg_dump, pg_restore, psql, servers ...).

A child gets what it needs to run and nothing else: ``PATH``, ``HOME``, the locale, ``TZ`` and
``TMPDIR`` from this process, plus what the caller adds (the ``PG*`` settings of the one
connection it works on). No catalog password, no ``AWS_*`` secret, no ``AIRFLOW_CONN_*``
variable reaches a child, even though this process holds them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PASSED = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR")
PASSED_PREFIXES = ("LC_",)
# libpq files the operator configured: paths, not secrets of another connection
PASSED_LIBPQ = ("PGPASSFILE", "PGSERVICEFILE", "PGSYSCONFDIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def minimal_env(extra: Mapping[str, str] | None = None,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: the passed variables of ``base`` (this process's
    environment by default) and ``extra`` on top.

    :param extra: variables the child needs (e.g. ``PGHOST``, ``PGPASSWORD``)
    :param base: where the passed variables are read from
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items()
           if k in PASSED or k in PASSED_LIBPQ or k.startswith(PASSED_PREFIXES)}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(extra or {})
    return env
