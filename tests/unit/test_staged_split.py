"""split_data: the TABLE DATA of a pg_restore --list dealt to the data loaders of a parallel
restore, largest first, every other entry kept in job 0's list."""

from __future__ import annotations

from amprenta_backup.core.restore.staged import split_data

LISTING = """;
; Archive created at 2026-12-02 03:00:00 UTC
;     dbname: bench
;
215; 1259 16390 TABLE bulk part_01 postgres
216; 1259 16395 TABLE bulk part_02 postgres
217; 1259 16400 TABLE bulk part_03 postgres
218; 1259 16405 SEQUENCE public ids postgres
3350; 0 16390 TABLE DATA bulk part_01 postgres
3351; 0 16395 TABLE DATA bulk part_02 postgres
3352; 0 16400 TABLE DATA bulk part_03 postgres
3353; 0 0 SEQUENCE SET public ids postgres
3200; 2606 16410 CONSTRAINT bulk part_01 part_01_pkey postgres
"""


def _data(text: str) -> list[str]:
    return [line.split()[6] for line in text.splitlines() if " TABLE DATA " in line]


def test_tables_go_largest_first_to_the_least_loaded_job() -> None:
    rows = {"bulk.part_01": 100, "bulk.part_02": 500, "bulk.part_03": 300}
    lists = split_data(LISTING, rows, jobs=2)
    assert [_data(text) for text in lists] == [["part_02"], ["part_01", "part_03"]]
    # the other entries (schema, sequence values, constraints) stay in job 0's list only
    assert "SEQUENCE SET public ids" in lists[0] and "SEQUENCE SET" not in lists[1]
    assert "TABLE bulk part_03 postgres" in lists[0] and "CONSTRAINT" not in lists[1]


def test_a_single_table_needs_a_single_loader_and_order_is_kept() -> None:
    one = "\n".join(line for line in LISTING.splitlines()
                    if "part_02" not in line and "part_03" not in line) + "\n"
    assert split_data(one, {}, jobs=4) == [one]
    lists = split_data(LISTING, {}, jobs=3)  # no row counts: one table each, in file order
    assert [_data(text) for text in lists] == [["part_01"], ["part_02"], ["part_03"]]
