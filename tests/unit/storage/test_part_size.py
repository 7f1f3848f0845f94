"""Part sizes grow so that 10,000 parts hold any object S3 allows (5 TiB)."""

from __future__ import annotations

import pytest

from amprenta_backup.core.storage.multipart import MAX_PART, MAX_PARTS, MIB, MIN_PART, PartSizer

TIB = 1024 * 1024 * MIB


def test_ten_thousand_parts_from_the_default_start_hold_five_tib() -> None:
    sizer = PartSizer()
    assert sizer.size_of(1) == 8 * MIB and sizer.size_of(1000) == 8 * MIB
    assert sizer.size_of(1001) == 16 * MIB  # the first growth step
    assert sizer.capacity() >= 5 * TIB
    assert 8 * MIB * MAX_PARTS < 80 * 1024 * MIB  # what fixed 8 MiB parts held: 78 GiB


@pytest.mark.parametrize("expected", [0, 10 * MIB, 200 * 1024 * MIB, 3 * TIB, 5 * TIB, 50 * TIB])
def test_every_size_estimate_gives_valid_parts_that_hold_five_tib(expected: int) -> None:
    sizer = PartSizer(expected=expected)
    sizes = [sizer.size_of(n) for n in range(1, MAX_PARTS + 1)]
    assert all(MIN_PART <= s <= MAX_PART for s in sizes)
    assert sizes == sorted(sizes)
    assert sum(sizes) >= 5 * TIB
    assert sum(sizes[:2000]) >= min(expected, 5 * TIB)  # the estimate fits before growing twice


def test_small_databases_keep_small_parts() -> None:
    """Memory is about (in flight + 1) parts: a 2 GiB database must not get 1 GiB parts."""
    assert PartSizer(expected=2 * 1024 * MIB).size_of(1) == 8 * MIB
    assert PartSizer(expected=1 * TIB).size_of(1) == 525 * MIB  # 1 TiB / 2000, whole MiB
