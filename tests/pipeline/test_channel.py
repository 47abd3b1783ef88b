import threading

import pytest

from pipeline import Cancelled, Channel, EndOfStream, Policy


def _blocked(target) -> threading.Thread:
    """Start ``target`` on a thread and return it while it is still running."""
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(0.05)
    return t


def test_fifo_and_close_drains_then_ends():
    ch = Channel(3)
    for i in range(3):
        ch.put(i)
    ch.close()
    assert list(ch) == [0, 1, 2]
    with pytest.raises(EndOfStream):
        ch.get()


def test_put_after_close_is_an_error():
    ch = Channel(1)
    ch.close()
    with pytest.raises(EndOfStream):
        ch.put(1)


def test_block_policy_waits_for_room_and_never_drops():
    ch = Channel(2, policy=Policy.BLOCK)
    ch.put(0)
    ch.put(1)
    t = _blocked(lambda: ch.put(2))
    assert t.is_alive(), "put into a full BLOCK channel must wait"
    assert ch.statistics().waiting_producers == 1
    assert ch.get() == 0
    t.join(5)
    assert not t.is_alive()
    assert [ch.get(), ch.get()] == [1, 2]
    assert ch.statistics().dropped == 0


def test_drop_oldest_never_blocks_and_counts_drops():
    dropped = []
    ch = Channel(3, policy=Policy.DROP_OLDEST, on_drop=dropped.append)
    for i in range(10):
        ch.put(i)
    ch.close()
    assert list(ch) == [7, 8, 9]
    assert dropped == [0, 1, 2, 3, 4, 5, 6]
    stats = ch.statistics()
    assert (stats.dropped, stats.put, stats.peak, stats.capacity) == (7, 10, 3, 3)


def test_cancel_wakes_blocked_producer_and_consumer():
    full = Channel(1)
    full.put("x")
    empty = Channel(1)
    errors = []

    def call(fn):
        try:
            fn()
        except Cancelled as exc:
            errors.append(exc)

    producer = _blocked(lambda: call(lambda: full.put("y")))
    consumer = _blocked(lambda: call(empty.get))
    assert producer.is_alive() and consumer.is_alive()
    full.cancel()
    empty.cancel()
    producer.join(5)
    consumer.join(5)
    assert not producer.is_alive() and not consumer.is_alive()
    assert len(errors) == 2
    with pytest.raises(Cancelled):
        full.get()


def test_cancel_and_close_are_idempotent():
    ch = Channel(1)
    ch.close()
    ch.close()
    ch.cancel()
    ch.cancel()
    assert ch.cancelled


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        Channel(0, name="q")


def test_get_with_timeout_returns_an_item_or_times_out():
    ch = Channel(2)
    with pytest.raises(TimeoutError):
        ch.get(timeout=0)
    ch.put("a")
    assert ch.get(timeout=0) == "a"
    ch.close()
    with pytest.raises(EndOfStream):
        ch.get(timeout=0)
