"""Who writes where: the DAGs that write to, and read from, the database a restore replaces.

Learned from three sources, each named in the result:

- Assets whose URI names the database (``postgres://host:port/db/schema/table``, Airflow's
  postgres normalisation: port 5432 when missing, scheme ``postgres`` or ``postgresql``),
  compared with the target's resolved connection (host case-insensitive, loopback names
  alike, database exact): a task producing it writes, a task consuming it or a DAG scheduled
  on it reads.
- DAG tags ``writes:<name>`` / ``reads:<name>``, where ``<name>`` is the target
  (``pg_main``, ``pg_main.analytics``) or its connection id.
- ``BACKUP_WRITERS`` (``pg_main=load_orders,load_customers;pg_dr=...``), for DAGs that write
  through code Airflow cannot see.

The adapter (``hooks/airflow_api.py``) reads ``/api/v2/dags`` and ``/api/v2/assets``; this
module only matches, so it is tested without Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.quiesce import QuiescePlan

POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
DEFAULT_PORT = 5432
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
WRITES_TAG = "writes:"
READS_TAG = "reads:"


@dataclass(frozen=True)
class DagInfo:
    """What the mapping needs to know of one DAG.

    :param dag_id: the DAG
    :param tags: its tags
    :param is_paused: whether it is paused now
    :param produces: URIs of the assets its tasks produce (outlets)
    :param consumes: URIs of the assets its tasks read (inlets) or it is scheduled on
    """

    dag_id: str
    tags: tuple[str, ...] = ()
    is_paused: bool = False
    produces: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipelines:
    """The DAGs writing to and reading from one database, each with why.

    :param target: the target name (``pg_main`` or ``pg_main.analytics``)
    :param database: the database
    :param writers: ``{dag_id: [reason, ...]}``, sorted by dag id
    :param readers: the same for readers (a writer is not listed again as a reader)
    :param known: False when Airflow's DAGs could not be read (then only the override counts)
    """

    target: str
    database: str
    writers: dict[str, list[str]] = field(default_factory=dict)
    readers: dict[str, list[str]] = field(default_factory=dict)
    paused: tuple[str, ...] = ()
    known: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "database": self.database, "writers": self.writers,
                "readers": self.readers, "paused": list(self.paused), "known": self.known}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pipelines:
        return cls(target=data["target"], database=data["database"],
                   writers=dict(data.get("writers") or {}),
                   readers=dict(data.get("readers") or {}),
                   paused=tuple(data.get("paused") or ()), known=bool(data.get("known", True)))

    def lines(self, advice: str = "pause them before approving") -> list[str]:
        """One line for the writers and one for the readers, for the plan and the approval;
        ``advice`` says what becomes of the writers."""
        unknown = "" if self.known else (" (Airflow's DAGs were not read: set "
                                         "BACKUP_AIRFLOW_API_CONN_ID; BACKUP_WRITERS only)")
        if not self.writers:
            lines = [f"no DAG writes to database {self.database!r}{unknown}"]
        else:
            names = ", ".join(f"{dag} ({'; '.join(why)})" for dag, why in self.writers.items())
            count = len(self.writers)
            lines = [f"{count} DAG{'s' if count != 1 else ''} write{'' if count != 1 else 's'}"
                     f" to database {self.database!r}: {names}; "
                     f"{advice if count != 1 else advice.replace('them', 'it')}{unknown}"]
        if self.readers:
            lines.append(f"{len(self.readers)} DAG(s) read from it: "
                         + ", ".join(self.readers))
        return lines


def asset_database(uri: str) -> tuple[str, int, str] | None:
    """``(host, port, database)`` of a postgres Asset URI, normalised as Airflow's postgres
    provider does (port 5432 when missing, host lower-cased); None for any other URI."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in POSTGRES_SCHEMES or not parts.hostname:
        return None
    path = [unquote(p) for p in parts.path.split("/")]
    if len(path) < 2 or not path[1]:
        return None
    return _host(parts.hostname), port or DEFAULT_PORT, path[1]


def _host(host: str) -> str:
    host = host.lower().strip("[]")
    return "localhost" if host in _LOOPBACK else host


def names_database(uri: str, conn: PgConnInfo) -> bool:
    """Whether an Asset URI names the database ``conn`` reaches."""
    found = asset_database(uri)
    return found is not None and found == (_host(conn.host), conn.port, conn.dbname)


def target_names(conn_id: str, database: str, default_database: str) -> tuple[str, ...]:
    """The names tags and ``BACKUP_WRITERS`` may give a database: ``conn_id.database``, and
    ``conn_id`` alone when it is the connection's own database (the first is the label)."""
    if database == default_database:
        return (conn_id, f"{conn_id}.{database}")
    return (f"{conn_id}.{database}",)


def restored_names(source_target: str, source_database: str, database: str) -> tuple[str, ...]:
    """The names of ``database`` restored through the connection of backup target
    ``source_target`` (``pg_main`` or ``pg_main.analytics``): the target itself when it is
    the backed-up database, and ``conn_id.database``."""
    qualified = f"{source_target.partition('.')[0]}.{database}"
    if database == source_database:
        return tuple(dict.fromkeys((source_target, qualified)))
    return (qualified,)


def find_pipelines(names: Sequence[str], conn: PgConnInfo, dags: Iterable[DagInfo], *,
                   override: Mapping[str, Sequence[str]] | None = None,
                   known: bool = True) -> Pipelines:
    """The DAGs writing to and reading from the database of ``conn``.

    :param names: what tags and the override may call it (:func:`target_names`); the first
        is its label
    :param conn: the resolved connection, database included
    :param dags: every DAG Airflow knows
    :param override: ``BACKUP_WRITERS``: ``{target or conn id: [dag_id, ...]}``
    :param known: False when ``dags`` could not be read
    """
    writers: dict[str, list[str]] = {}
    readers: dict[str, list[str]] = {}
    paused = set()
    for dag in dags:
        if dag.is_paused:
            paused.add(dag.dag_id)
        for uri in dag.produces:
            if names_database(uri, conn):
                writers.setdefault(dag.dag_id, []).append(f"asset {uri}")
        for uri in dag.consumes:
            if names_database(uri, conn):
                readers.setdefault(dag.dag_id, []).append(f"asset {uri}")
        for tag in dag.tags:
            kind, _, name = tag.partition(":")
            if name in names and f"{kind}:" == WRITES_TAG:
                writers.setdefault(dag.dag_id, []).append(f"tag {tag}")
            elif name in names and f"{kind}:" == READS_TAG:
                readers.setdefault(dag.dag_id, []).append(f"tag {tag}")
    for key, dag_ids in (override or {}).items():
        if key in names:  # a tuple: `in` is exact
            for dag_id in dag_ids:
                writers.setdefault(dag_id, []).append("BACKUP_WRITERS")
    return Pipelines(
        target=names[0], database=conn.dbname,
        writers={d: _unique(writers[d]) for d in sorted(writers)},
        readers={d: _unique(readers[d]) for d in sorted(readers) if d not in writers},
        paused=tuple(sorted(paused & writers.keys())), known=known)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def dags_from_rest(dags: Iterable[Mapping[str, Any]],
                   assets: Iterable[Mapping[str, Any]]) -> list[DagInfo]:
    """:class:`DagInfo` from the JSON of Airflow's ``/api/v2/dags`` (``dags``) and
    ``/api/v2/assets`` (``assets``: ``producing_tasks``, ``consuming_tasks``,
    ``scheduled_dags``)."""
    produces: dict[str, list[str]] = {}
    consumes: dict[str, list[str]] = {}
    for asset in assets:
        uri = str(asset["uri"])
        for ref in asset.get("producing_tasks") or ():
            produces.setdefault(ref["dag_id"], []).append(uri)
        for ref in [*(asset.get("consuming_tasks") or ()), *(asset.get("scheduled_dags") or ())]:
            consumes.setdefault(ref["dag_id"], []).append(uri)
    return [DagInfo(dag_id=d["dag_id"],
                    tags=tuple(t["name"] if isinstance(t, Mapping) else str(t)
                               for t in d.get("tags") or ()),
                    is_paused=bool(d.get("is_paused")),
                    produces=tuple(_unique(produces.get(d["dag_id"], []))),
                    consumes=tuple(_unique(consumes.get(d["dag_id"], []))))
            for d in dags]


@dataclass(frozen=True)
class PipelinePlan:
    """A restore plan (anything with ``text()`` and ``to_dict()``) with the pipelines of the
    database it writes: the plan's log text and XCom (key ``pipelines``: its fields and
    ``lines``, which the approval text shows; key ``quiesce``: what pausing the writers
    does)."""

    plan: Any
    pipelines: Pipelines
    quiesce: QuiescePlan | None = None

    def lines(self) -> list[str]:
        if self.quiesce is None:
            return self.pipelines.lines()
        return [*self.pipelines.lines(self.quiesce.advice()), *self.quiesce.lines()]

    def text(self) -> str:
        return "\n".join([self.plan.text(), *(f"pipelines {line}" for line in self.lines())])

    def to_dict(self) -> dict[str, Any]:
        quiesce = {"quiesce": self.quiesce.to_dict()} if self.quiesce is not None else {}
        return {**self.plan.to_dict(), **quiesce,
                "pipelines": {**self.pipelines.to_dict(), "lines": self.lines()}}
