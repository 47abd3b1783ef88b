import threading
import time

import pytest

from pipeline import Pipeline

HANG_LIMIT = 10.0


def _batched_pool(sizes: list[int], gate: threading.Event | None = None):
    def init(slot):
        def process(items):
            if gate is not None:
                gate.wait(HANG_LIMIT)
            sizes.append(len(items))
            return [x * 10 for x in items]
        return process
    return init


def test_a_worker_takes_up_to_batch_queued_items_and_order_holds():
    sizes: list[int] = []
    gate = threading.Event()
    p = (Pipeline(queue_size=8).source("src", iter(range(40)))
         .pool("infer", _batched_pool(sizes, gate), workers=2, batch=4))
    p.start()
    for _ in range(5000):  # hold the workers until their input queue is full
        if p.statistics().channels[0].size == 8:
            break
        time.sleep(0.001)
    gate.set()
    out = list(p)
    assert out == [x * 10 for x in range(40)]
    assert sum(sizes) == 40 and max(sizes) == 4 and all(1 <= s <= 4 for s in sizes)
    assert p.statistics().stages[1].items == 40


def test_batch_timeout_waits_for_stragglers():
    sizes: list[int] = []

    def source():
        yield 0
        time.sleep(0.05)  # arrives well inside the 5 s timeout
        yield 1

    p = Pipeline().source("src", source()).pool("infer", _batched_pool(sizes), workers=1,
                                                   batch=2, batch_timeout=5.0)
    assert list(p) == [0, 10]
    assert sizes == [2]


def test_no_timeout_means_no_waiting_for_a_full_batch():
    sizes: list[int] = []
    release = threading.Event()

    def source():
        yield 0
        release.wait(HANG_LIMIT)  # item 1 only comes after item 0 was processed
        yield 1

    def init(slot):
        def process(items):
            sizes.append(len(items))
            release.set()
            return items
        return process

    assert list(Pipeline().source("src", source()).pool("p", init, workers=1, batch=8)) == [0, 1]
    assert sizes == [1, 1]


def test_a_batch_processor_must_return_one_result_per_item():
    p = Pipeline().source("src", range(4)).pool("p", lambda slot: (lambda items: items[:1]),
                                                workers=1, batch=4, batch_timeout=1.0)
    with pytest.raises(RuntimeError, match="4 items in, 1 results out"):
        list(p)
