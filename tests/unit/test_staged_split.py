"""split_data: the TABLE DATA of a pg_restore --list --verbose dealt to the data loaders of a
parallel restore, largest first, each table's indexes and keys right after its data, every
other entry left for the last pass."""

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
;\tdepends on: 215
3351; 0 16395 TABLE DATA bulk part_02 postgres
;\tdepends on: 216
3352; 0 16400 TABLE DATA bulk part_03 postgres
;\tdepends on: 217
3353; 0 0 SEQUENCE SET public ids postgres
;\tdepends on: 218
3200; 2606 16410 CONSTRAINT bulk part_01 part_01_pkey postgres
;\tdepends on: 215
3201; 2606 16411 CONSTRAINT bulk part_03 part_03_pkey postgres
;\tdepends on: 217
3202; 1259 16412 INDEX bulk part_03_n postgres
;\tdepends on: 217
3203; 1259 16413 INDEX bulk by_function postgres
;\tdepends on: 217 219
3204; 2606 16414 FK CONSTRAINT bulk part_01 part_01_ref postgres
;\tdepends on: 3201 215 217
"""


def _data(text: str) -> list[str]:
    return [line.split()[6] for line in text.splitlines() if " TABLE DATA " in line]


def test_tables_go_largest_first_to_the_least_loaded_job() -> None:
    rows = {"bulk.part_01": 100, "bulk.part_02": 500, "bulk.part_03": 300}
    split = split_data(LISTING, rows, jobs=2)
    assert [_data(text) for text in split.loaders] == [["part_02"], ["part_01", "part_03"]]
    # each key and index follows its table's data, in the loader of that table
    assert split.loaders[1].splitlines() == [
        "3350; 0 16390 TABLE DATA bulk part_01 postgres",
        "3200; 2606 16410 CONSTRAINT bulk part_01 part_01_pkey postgres",
        "3352; 0 16400 TABLE DATA bulk part_03 postgres",
        "3201; 2606 16411 CONSTRAINT bulk part_03 part_03_pkey postgres",
        "3202; 1259 16412 INDEX bulk part_03_n postgres"]
    # the rest (schema, sequence values, an index needing a function, a foreign key) is
    # left for the last pass, and no entry is in two lists
    rest = split.rest.splitlines()
    assert "3353; 0 0 SEQUENCE SET public ids postgres" in rest
    assert [line.split(";")[0] for line in rest if "INDEX" in line or "FK" in line] == [
        "3203", "3204"]
    every = [line for text in (*split.loaders, split.rest) for line in text.splitlines()]
    assert len(every) == len(set(every)) == 13  # every entry, once


def test_a_single_table_needs_a_single_loader_and_order_is_kept() -> None:
    one = "\n".join(line for line in LISTING.splitlines()
                    if "part_02" not in line and "part_03" not in line) + "\n"
    split = split_data(one, {}, jobs=4)
    assert [_data(text) for text in split.loaders] == [["part_01"]]
    split = split_data(LISTING, {}, jobs=3)  # no row counts: one table each, in file order
    assert [_data(text) for text in split.loaders] == [["part_01"], ["part_02"], ["part_03"]]


def test_no_table_data_means_no_loader() -> None:
    split = split_data("215; 1259 16390 TABLE bulk empty postgres\n", {}, jobs=2)
    assert split.loaders == [] and split.rest == "215; 1259 16390 TABLE bulk empty postgres\n"
