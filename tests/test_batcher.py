"""The batcher: every BatchWriteItem limit, and per-key input order (invariant 2)."""

from __future__ import annotations

import asyncio
import random
from itertools import pairwise

import pytest

from loader.batcher import MAX_BATCH_OPS, Batcher, Dispatch
from loader.codec import KeySchema, Write, encode, parse_json
from tests.fakes import FakeClock

Key = tuple[str, ...]


def write(seq: int, key: str, *, size: int = 100, table: str = "t", delete: bool = False) -> Write:
    """A write on `key`; `seq` is its input position."""
    item = {"PK": {"S": key}}
    request = {"DeleteRequest": {"Key": item}} if delete else {"PutRequest": {"Item": item}}
    return Write(
        seq=seq,
        source="in",
        line=seq,
        table=table,
        key=(table, key),
        request=request,
        size=size,
        wcu=1,
        delete=delete,
        text="",
    )


def keys(batch: list[Write]) -> list[Key]:
    return [w.key for w in batch]


def seqs(batches: list[list[Write]]) -> list[list[int]]:
    return [[w.seq for w in batch] for batch in batches]


def feed(batcher: Batcher, writes: list[Write]) -> list[list[Write]]:
    """Add every write, then drain: all batches that come out."""
    out: list[list[Write]] = []
    for w in writes:
        out += batcher.add(w)
    return out + batcher.drain()


# --- limits ---------------------------------------------------------------------------


def test_a_batch_never_holds_more_than_25_operations() -> None:
    batches = feed(Batcher(), [write(i, f"k{i}") for i in range(60)])
    assert [len(b) for b in batches] == [25, 25, 10]
    assert MAX_BATCH_OPS == 25


def test_full_batches_come_out_of_add_as_soon_as_they_are_full() -> None:
    batcher = Batcher(max_ops=3)
    out = [batcher.add(write(i, f"k{i}")) for i in range(1, 7)]
    assert [seqs(o) for o in out] == [[], [], [[1, 2, 3]], [], [], [[4, 5, 6]]]
    assert batcher.idle


@pytest.mark.parametrize("seed", range(5))
def test_a_batch_never_exceeds_max_bytes(seed: int) -> None:
    rng = random.Random(seed)
    writes = [write(i, f"k{i}", size=rng.randint(1, 1000)) for i in range(500)]
    batches = feed(Batcher(max_bytes=1000), writes)
    assert all(sum(w.size for w in b) <= 1000 for b in batches)
    assert sorted(w.seq for b in batches for w in b) == list(range(500))
    # Not needlessly small: a batch is only closed when the next write would not fit.
    for batch, after in pairwise(batches):
        assert len(batch) == MAX_BATCH_OPS or sum(w.size for w in batch) + after[0].size > 1000


def test_writes_over_max_bytes_go_alone_rather_than_being_lost() -> None:
    batches = feed(Batcher(max_bytes=100), [write(1, "a", size=150), write(2, "b", size=150)])
    assert seqs(batches) == [[1], [2]]


def test_a_batch_never_holds_two_writes_on_one_key() -> None:
    batcher = Batcher()
    batches = feed(batcher, [write(1, "a"), write(2, "b"), write(3, "a"), write(4, "c")])
    assert seqs(batches) == [[1, 2, 4]]
    assert batcher.waiting == 1


def test_a_put_and_a_delete_on_one_key_are_never_in_one_batch() -> None:
    batches = feed(Batcher(), [write(1, "a"), write(2, "a", delete=True)])
    assert seqs(batches) == [[1]]


def test_the_same_key_value_in_two_tables_is_two_keys() -> None:
    batches = feed(Batcher(), [write(1, "a", table="t1"), write(2, "a", table="t2")])
    assert seqs(batches) == [[1, 2]]


def test_writes_from_encode_with_equal_numeric_keys_are_one_key() -> None:
    schema = KeySchema("t", "id", "N")

    def encoded(seq: int, text: str) -> Write:
        return encode(
            seq=seq,
            source="in",
            line=seq,
            value=parse_json(text),
            text=text,
            typed=False,
            delete=False,
            schema=schema,
        )

    batches = feed(Batcher(), [encoded(1, '{"id": 1}'), encoded(2, '{"id": 1.0}')])
    assert seqs(batches) == [[1]]


# --- per-key order -----------------------------------------------------------------------


def test_a_later_write_on_a_busy_key_waits_until_the_earlier_is_finished() -> None:
    batcher = Batcher()
    first = write(1, "a")
    assert seqs(feed(batcher, [first])) == [[1]]
    # The first write is in flight: the second on its key must not be sent yet.
    assert feed(batcher, [write(2, "a")]) == []
    assert batcher.waiting == 1
    batcher.finished([first])
    assert seqs(batcher.drain()) == [[2]]
    assert batcher.waiting == 0


def test_three_writes_on_one_key_go_out_in_three_batches_in_input_order() -> None:
    batcher = Batcher()
    first = feed(batcher, [write(1, "a"), write(2, "a"), write(3, "a")])
    assert seqs(first) == [[1]]
    batcher.finished(first[0])
    second = batcher.drain()
    assert seqs(second) == [[2]]
    assert batcher.drain() == []  # 3 waits for 2, not only for 1
    batcher.finished(second[0])
    third = batcher.drain()
    assert seqs(third) == [[3]]
    batcher.finished(third[0])
    assert batcher.idle


def test_released_writes_come_out_in_input_order_per_key() -> None:
    batcher = Batcher()
    order: list[int] = []
    in_flight = feed(batcher, [write(i, "a") for i in range(1, 6)])
    while in_flight:
        (batch,) = in_flight
        order += [w.seq for w in batch]
        batcher.finished(batch)
        in_flight = batcher.drain()
    assert order == [1, 2, 3, 4, 5]


def test_finishing_a_write_with_nothing_waiting_frees_its_key() -> None:
    batcher = Batcher()
    (batch,) = feed(batcher, [write(1, "a")])
    batcher.finished(batch)
    assert seqs(feed(batcher, [write(2, "a"), write(3, "b")])) == [[2, 3]]


def test_finishing_one_key_does_not_release_another() -> None:
    batcher = Batcher()
    (batch,) = feed(batcher, [write(1, "a"), write(2, "b")])
    assert feed(batcher, [write(3, "a"), write(4, "b")]) == []
    batcher.finished([batch[0]])  # only "a" acknowledged; "b" is still being retried
    assert seqs(batcher.drain()) == [[3]]
    assert batcher.waiting == 1


def test_released_writes_join_the_next_batch_that_add_fills() -> None:
    batcher = Batcher(max_ops=3)
    (batch,) = feed(batcher, [write(1, "a")])
    batcher.add(write(2, "a"))
    batcher.finished(batch)
    out = batcher.add(write(3, "b")) + batcher.add(write(4, "c"))
    assert [sorted(s) for s in seqs(out)] == [[2, 3, 4]]


# --- drain, idle, waiting -------------------------------------------------------------------


def test_drain_returns_released_writes_and_the_open_batch() -> None:
    batcher = Batcher()
    (batch,) = feed(batcher, [write(1, "a")])
    batcher.add(write(2, "a"))  # waits for 1
    batcher.add(write(3, "b"))  # open
    batcher.finished(batch)
    drained = batcher.drain()
    assert [sorted(s) for s in seqs(drained)] == [[2, 3]]
    assert batcher.drain() == []


def test_idle_and_waiting_reflect_what_the_batcher_holds() -> None:
    batcher = Batcher()
    assert batcher.idle
    assert batcher.waiting == 0
    batcher.add(write(1, "a"))
    assert not batcher.idle  # an open batch
    (batch,) = batcher.drain()
    assert batcher.idle  # in flight is not the batcher's business
    batcher.add(write(2, "a"))
    batcher.add(write(3, "a"))
    assert (batcher.idle, batcher.waiting) == (False, 2)
    batcher.finished(batch)
    assert (batcher.idle, batcher.waiting) == (False, 1)  # 2 released, 3 still waiting
    (batch,) = batcher.drain()
    assert seqs([batch]) == [[2]]
    batcher.finished(batch)
    (batch,) = batcher.drain()
    assert seqs([batch]) == [[3]]
    assert batcher.idle
    batcher.finished(batch)
    assert batcher.idle
    assert batcher.drain() == []


# --- a randomized model of workers ------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_workers_see_every_write_once_and_each_key_in_input_order(seed: int) -> None:
    rng = random.Random(seed)
    max_ops = rng.choice([2, 5, 25])
    max_bytes = rng.choice([600, 5000, 1 << 24])
    batcher = Batcher(max_ops=max_ops, max_bytes=max_bytes)
    in_flight: list[list[Write]] = []  # batches a worker holds, shrinking as items succeed
    in_flight_keys: set[Key] = set()
    sent: list[Write] = []
    acked: list[Write] = []
    total = 3000

    def send(batches: list[list[Write]]) -> None:
        for batch in batches:
            assert 0 < len(batch) <= max_ops
            assert len(batch) == 1 or sum(w.size for w in batch) <= max_bytes
            assert len(set(keys(batch))) == len(batch), "two writes on one key in a batch"
            for w in batch:
                assert w.key not in in_flight_keys, "sent while an earlier write is in flight"
                in_flight_keys.add(w.key)
            sent.extend(batch)
            in_flight.append(list(batch))

    def respond() -> None:
        """A worker hears back: some writes succeed, the rest are UnprocessedItems."""
        batch = in_flight.pop(rng.randrange(len(in_flight)))
        done = [w for w in batch if rng.random() < 0.7]
        left = [w for w in batch if w not in done]
        for w in done:
            in_flight_keys.remove(w.key)
        acked.extend(done)
        batcher.finished(done)
        if left:
            in_flight.append(left)

    for seq in range(total):
        w = write(seq, f"k{rng.randrange(6)}", size=rng.randint(1, 300))
        send(batcher.add(w))
        while in_flight and rng.random() < 0.4:
            respond()
        if rng.random() < 0.1:
            send(batcher.drain())
    while in_flight or not batcher.idle:
        send(batcher.drain())
        if in_flight:
            respond()

    assert sorted(w.seq for w in sent) == list(range(total))
    assert sorted(w.seq for w in acked) == list(range(total))
    for key in {w.key for w in sent}:
        sent_order = [w.seq for w in sent if w.key == key]
        acked_order = [w.seq for w in acked if w.key == key]
        assert sent_order == sorted(sent_order), f"{key} sent out of input order"
        assert acked_order == sorted(acked_order), f"{key} written out of input order"
    assert batcher.waiting == 0


# --------------------------------------------------------------------------- Dispatch


def dispatch(maxsize: int = 4, **kwargs: int) -> tuple[Dispatch, FakeClock]:
    clock = FakeClock()
    return Dispatch(maxsize, clock, **kwargs), clock


def fresh(first: int, count: int) -> list[Write]:
    return [write(seq, f"k{seq}") for seq in range(first, first + count)]


async def test_fresh_batches_go_out_as_the_reader_put_them() -> None:
    lanes, _ = dispatch()
    await lanes.put(fresh(1, 25))
    await lanes.put(fresh(26, 25))

    assert [w.seq for w in await get(lanes)] == list(range(1, 26))
    assert [w.seq for w in await get(lanes)] == list(range(26, 51))


async def test_a_retry_is_not_sent_before_its_time() -> None:
    lanes, clock = dispatch()
    lanes.retry(fresh(1, 3), not_before=clock.now() + 2.0)
    await lanes.put(fresh(10, 25))

    # Not due: fresh work goes first, and the worker does not wait for the retry.
    assert [w.seq for w in await get(lanes)] == list(range(10, 35))
    assert clock.sleeps == []
    # Nothing else to do: the next get waits until the retry is due.
    assert [w.seq for w in await get(lanes)] == [1, 2, 3]
    assert clock.now() >= 1000.0 + 2.0


async def test_due_retries_go_first_topped_up_to_a_full_batch_with_fresh_writes() -> None:
    lanes, clock = dispatch()
    lanes.retry(fresh(5, 3), not_before=clock.now())
    lanes.retry(fresh(2, 2), not_before=clock.now())
    await lanes.put(fresh(100, 25))
    await lanes.put(fresh(200, 25))

    first = [w.seq for w in await get(lanes)]
    # Due retries in input order, then fresh writes up to 25; the rest of that fresh
    # batch goes before the next one, so input order is kept.
    assert first == [2, 3, 5, 6, 7, *range(100, 120)]
    assert [w.seq for w in await get(lanes)] == [*range(120, 125), *range(200, 220)]


async def test_get_ends_only_when_closed_with_nothing_out_and_no_retry_left() -> None:
    lanes, clock = dispatch()
    await lanes.put(fresh(1, 25))
    lanes.close()
    batch = await get(lanes, done=False)
    # A worker still holds a batch: another worker does not end yet, it waits.
    waiting = asyncio.ensure_future(lanes.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    # The batch comes back in part, for a retry: the waiting worker gets it in time.
    lanes.retry(batch[:2], not_before=clock.now() + 1.0)
    lanes.done()
    assert [w.seq for w in await waiting] == [1, 2]
    lanes.done()
    assert await lanes.get() is None


async def test_stop_drops_fresh_batches_but_lets_retries_finish() -> None:
    lanes, clock = dispatch()
    await lanes.put(fresh(1, 25))
    lanes.retry(fresh(90, 2), not_before=clock.now() + 1.0)
    lanes.stop()

    assert [w.seq for w in await get(lanes)] == [90, 91]
    assert await lanes.get() is None


async def test_past_the_retry_limit_no_fresh_batch_is_taken() -> None:
    lanes, clock = dispatch(retry_limit=10)
    lanes.retry(fresh(1, 11), not_before=clock.now() + 5.0)
    await lanes.put(fresh(100, 25))

    # 11 writes wait for a retry (over 10): the worker waits for them, and sends them
    # without fresh writes, not even to top up: what waits for a retry stays bounded.
    assert [w.seq for w in await get(lanes)] == list(range(1, 12))
    assert clock.now() >= 1005.0
    assert [w.seq for w in await get(lanes)] == list(range(100, 125))


async def get(lanes: Dispatch, *, done: bool = True) -> list[Write]:
    batch = await asyncio.wait_for(lanes.get(), 5)
    assert batch is not None
    if done:
        lanes.done()
    return batch
