"""The checkpoint watermark: only a contiguous prefix of finished records counts as done."""

from __future__ import annotations

import random

import pytest

from loader.checkpoint import Watermark


def longest_done_prefix(done: set[int], start: int) -> int:
    value = start
    while value + 1 in done:
        value += 1
    return value


def test_a_new_watermark_has_nothing_done() -> None:
    assert Watermark().value == 0


def test_in_order_completion_advances_one_by_one() -> None:
    mark = Watermark()
    for seq in range(1, 6):
        mark.done(seq)
        assert mark.value == seq


def test_a_record_finished_beyond_a_gap_does_not_move_the_watermark() -> None:
    mark = Watermark()
    mark.done(1)
    mark.done(3)
    mark.done(4)
    assert mark.value == 1


def test_filling_the_gap_jumps_over_everything_already_finished() -> None:
    mark = Watermark()
    for seq in (5, 3, 4, 2):
        mark.done(seq)
        assert mark.value == 0
    mark.done(1)
    assert mark.value == 5
    mark.done(7)
    assert mark.value == 5
    mark.done(6)
    assert mark.value == 7


def test_finishing_a_record_twice_does_not_skip_a_gap() -> None:
    mark = Watermark()
    mark.done(2)
    mark.done(2)
    assert mark.value == 0
    mark.done(1)
    assert mark.value == 2
    mark.done(4)
    assert mark.value == 2


@pytest.mark.parametrize("seed", range(10))
def test_random_completion_order_always_gives_the_longest_finished_prefix(seed: int) -> None:
    rng = random.Random(seed)
    order = list(range(1, 2001))
    rng.shuffle(order)
    mark = Watermark()
    done: set[int] = set()
    for seq in order:
        mark.done(seq)
        done.add(seq)
        assert mark.value == longest_done_prefix(done, 0)
    assert mark.value == 2000


def test_a_resumed_watermark_starts_from_the_checkpoint() -> None:
    mark = Watermark(start=500)
    assert mark.value == 500
    mark.done(502)
    assert mark.value == 500
    mark.done(501)
    assert mark.value == 502


def test_a_resumed_watermark_ignores_records_below_its_start() -> None:
    mark = Watermark(start=10)
    mark.done(3)
    assert mark.value == 10
    mark.done(11)
    assert mark.value == 11


@pytest.mark.parametrize("seed", range(3))
def test_a_resumed_watermark_tracks_out_of_order_completion(seed: int) -> None:
    rng = random.Random(seed)
    order = list(range(101, 601))
    rng.shuffle(order)
    mark = Watermark(start=100)
    done: set[int] = set()
    for seq in order:
        mark.done(seq)
        done.add(seq)
        assert mark.value == longest_done_prefix(done, 100)
    assert mark.value == 600
