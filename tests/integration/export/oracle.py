"""What an export of one project must hold, written by hand (independent of the walk), and
checksums of every table of a database."""

from __future__ import annotations

from typing import Any

import psycopg

from amprenta_backup.core.pgtools import PgConnInfo

_SAMPLES = ("SELECT s.id FROM app.samples s JOIN app.experiments e ON e.id = s.experiment_id "
            "WHERE e.project_id = %(p)s")
EXPECTED = {
    "app.projects": "SELECT * FROM app.projects WHERE id = %(p)s",
    "app.experiments": "SELECT * FROM app.experiments WHERE project_id = %(p)s",
    "app.samples": f"SELECT * FROM app.samples WHERE id IN ({_SAMPLES})",
    "app.sample_tags": f"SELECT * FROM app.sample_tags WHERE sample_id IN ({_SAMPLES})",
    "app.tags": "SELECT * FROM app.tags WHERE id IN (SELECT tag_id FROM app.sample_tags "
                f"WHERE sample_id IN ({_SAMPLES}))",
    "app.measurements": f"SELECT * FROM app.measurements WHERE sample_id IN ({_SAMPLES})",
    "app.annotations": f"SELECT * FROM app.annotations WHERE sample_id IN ({_SAMPLES})",
    "app.documents": "SELECT * FROM app.documents WHERE experiment_id IN "
                     "(SELECT id FROM app.experiments WHERE project_id = %(p)s)",
    "app.audit": "SELECT * FROM app.audit WHERE project_id = %(p)s",
    "ref.statuses": "SELECT * FROM ref.statuses WHERE id IN (SELECT status_id FROM "
                    "app.projects WHERE id = %(p)s UNION SELECT status_id FROM app.experiments "
                    "WHERE project_id = %(p)s)",
    "ref.units": "SELECT * FROM ref.units WHERE code IN (SELECT unit FROM app.measurements "
                 f"WHERE sample_id IN ({_SAMPLES}))",
}


def rows(conn: PgConnInfo, query: str, params: dict[str, Any] | None = None) -> list[str]:
    """The rows of ``query`` as text, sorted."""
    with psycopg.connect(**conn.connect_kwargs()) as db:
        return sorted(str(r) for r in db.execute(query.encode(), params).fetchall())


def expected_rows(conn: PgConnInfo, project: str) -> dict[str, list[str]]:
    return {t: rows(conn, q, {"p": project}) for t, q in EXPECTED.items()}


def table_rows(conn: PgConnInfo) -> dict[str, list[str]]:
    return {t: rows(conn, f"SELECT * FROM {t}") for t in EXPECTED}


def checksums(conn: PgConnInfo) -> dict[str, str]:
    """md5 of every user table's rows (sorted), and of the list of relations and sequences:
    equal before and after means nothing was written."""
    with psycopg.connect(**conn.connect_kwargs()) as db:
        relations = db.execute(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relkind = 'S' FROM pg_class c "
            "JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'S') AND n.nspname NOT IN "
            "('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1").fetchall()
        sums = {"relations": ",".join(name for name, _ in relations)}
        for name, sequence in relations:
            what = "last_value || ':' || is_called" if sequence else "t::text"
            row = db.execute(f"SELECT md5(coalesce(string_agg({what}, '|' ORDER BY {what}), "
                             f"'')) FROM {name} t").fetchone()
            sums[name] = str(row[0]) if row else ""
    return sums
