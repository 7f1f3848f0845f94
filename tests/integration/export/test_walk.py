"""The export's row selection (core/export/select.py, filters.py) on a small schema built to
break its shortcuts: pendant tables read through their parent's key set, conditions pushed
down validated foreign keys, rows found on the way up that must not bring their children."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from amprenta_backup.core.export.graph import read_graph
from amprenta_backup.core.export.select import Selection
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.integration.conftest import conninfo

_SCHEMA = """
CREATE SCHEMA w;
CREATE TABLE w.p (id int PRIMARY KEY, name text);
CREATE TABLE w.box (id int PRIMARY KEY, p_id int NOT NULL REFERENCES w.p, fav int);
CREATE TABLE w.item (id int PRIMARY KEY, box_id int NOT NULL REFERENCES w.box,
                     slot int NOT NULL, UNIQUE (box_id, slot));
ALTER TABLE w.box ADD FOREIGN KEY (fav) REFERENCES w.item;             -- cycle box <-> item
CREATE TABLE w.note (id int PRIMARY KEY, item_id int REFERENCES w.item);
CREATE TABLE w.part (box_id int, slot int, n int, PRIMARY KEY (box_id, slot, n),
                     FOREIGN KEY (box_id, slot) REFERENCES w.item (box_id, slot));
CREATE TABLE w.part_note (box_id int, slot int, n int, body text,       -- MATCH SIMPLE
                          FOREIGN KEY (box_id, slot, n) REFERENCES w.part);
CREATE TABLE w.part_loose (box_id int, slot int, n int, body text);
CREATE TABLE w.link (box_id int REFERENCES w.box, item_id int REFERENCES w.item);  -- no key
INSERT INTO w.p VALUES (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO w.box VALUES (10, 1, NULL), (11, 1, NULL), (12, 1, NULL), (20, 2, NULL),
                         (30, 3, NULL);
INSERT INTO w.item VALUES (100, 10, 1), (101, 11, 1), (102, 12, 1), (200, 20, 1),
                          (201, 20, 2), (300, 30, 1);
UPDATE w.box SET fav = 101 WHERE id = 11;
UPDATE w.box SET fav = 200 WHERE id = 12;   -- project 1 points at project 2's item
INSERT INTO w.note VALUES (1, 100), (2, 200), (3, 201), (4, NULL);
INSERT INTO w.part VALUES (10, 1, 1), (10, 1, 2), (20, 1, 1), (20, 2, 1);
INSERT INTO w.part_note VALUES (10, 1, 1, 'a'), (10, 1, NULL, 'no n: references nothing'),
                               (20, 1, 1, 'b');
INSERT INTO w.part_loose VALUES (10, 1, 1, 'ok'), (10, 1, 99, 'dangling'), (20, 1, 1, 'c');
ALTER TABLE w.part_loose ADD FOREIGN KEY (box_id, slot, n) REFERENCES w.part NOT VALID;
INSERT INTO w.link VALUES (10, 200), (20, 101), (20, 201), (30, 300);
"""
# project 1's rows: down from p 1, then up (p 2, box 20 and item 200 only as referenced rows:
# nothing below them); worked out by hand from the rows above
EXPECTED = {
    "w.p": {(1, "one"), (2, "two")},
    "w.box": {(10, 1, None), (11, 1, 101), (12, 1, 200), (20, 2, None)},
    "w.item": {(100, 10, 1), (101, 11, 1), (102, 12, 1), (200, 20, 1)},
    "w.note": {(1, 100)},
    "w.part": {(10, 1, 1), (10, 1, 2)},
    "w.part_note": {(10, 1, 1, "a")},
    "w.part_loose": {(10, 1, 1, "ok")},
    "w.link": {(10, 200), (20, 101)},
}


@pytest.fixture(scope="module")
def walk_db(pg_cluster: ClusterBase) -> psycopg.Connection[tuple[object, ...]]:
    pg_cluster.create_database("export_walk")
    conn = conninfo(pg_cluster, "export_walk")
    with psycopg.connect(**conn.connect_kwargs()) as db:
        db.execute(_SCHEMA.encode())
    db = psycopg.connect(**conn.connect_kwargs())
    db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    yield db
    db.close()
    pg_cluster.drop_database("export_walk")


def test_pendant_tables_and_pushed_down_conditions_select_exactly_the_projects_rows(
        walk_db: psycopg.Connection[tuple[object, ...]]) -> None:
    graph = read_graph(walk_db).involved("w.p")
    with walk_db.cursor() as cur:
        selection = Selection(cur, graph, "w.p")
        assert set(selection.pendant) == {"w.note", "w.part", "w.part_note", "w.part_loose"}
        selection.create()
        selection.seed("id", ["1"])
        selection.walk()
        got = {name: set(cur.execute(selection.rows_of(name, sql.SQL("t.*"))).fetchall())
               for name in graph.tables}
        counts = {name: selection.count(name) for name in graph.tables}
    walk_db.rollback()
    assert got == EXPECTED
    assert counts == {name: len(rows) for name, rows in EXPECTED.items()}
    fks = {fk.child: fk for fk in graph.foreign_keys}
    assert fks["w.part_note"].validated and not fks["w.part_loose"].validated


def test_a_condition_goes_down_a_validated_key_only(
        walk_db: psycopg.Connection[tuple[object, ...]]) -> None:
    """Through a validated constraint the condition on ``part`` applies to ``part_note``'s
    own columns; through a NOT VALID one the rows are matched with ``part``'s."""
    graph = read_graph(walk_db).involved("w.p")
    with walk_db.cursor() as cur:
        selection = Selection(cur, graph, "w.p")
        pushed = selection.down_filter("w.part_note").where("t").as_string(walk_db)
        joined = selection.down_filter("w.part_loose").where("t").as_string(walk_db)
    walk_db.rollback()
    assert '"w"."part"' not in pushed and '"t"."n" IS NOT NULL' in pushed
    assert 'FROM "w"."part" p' in joined
