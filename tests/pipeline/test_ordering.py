import random

import pytest

from pipeline import Reorderer


def test_releases_in_sequence_whatever_the_arrival_order():
    order = list(range(200))
    random.Random(7).shuffle(order)
    r = Reorderer()
    out = []
    for seq in order:
        out.extend(r.push(seq, f"item{seq}"))
    assert out == [f"item{i}" for i in range(200)]
    assert len(r) == 0


def test_holds_early_items_until_the_gap_fills():
    r = Reorderer()
    assert r.push(2, "c") == []
    assert r.push(1, "b") == []
    assert len(r) == 2
    assert r.push(0, "a") == ["a", "b", "c"]
    assert r.next_seq == 3


def test_duplicate_sequence_numbers_are_rejected():
    r = Reorderer()
    r.push(0, "a")
    with pytest.raises(ValueError):
        r.push(0, "again")
    r.push(2, "c")
    with pytest.raises(ValueError):
        r.push(2, "again")
