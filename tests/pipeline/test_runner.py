import itertools
import random
import threading
import time

import pytest

from pipeline import Pipeline, PipelineError, Policy, PoolInitError

HANG_LIMIT = 10.0  # seconds; only reached if the pipeline hangs


class Boom(Exception):
    pass


def _identity_pool(slot):
    rng = random.Random(slot)

    def process(x):
        time.sleep(rng.random() * 0.002)  # scramble completion order, not synchronisation
        return x
    return process


def _drain(p: Pipeline) -> tuple[list, BaseException | None]:
    """Iterate ``p`` on another thread so a hang fails the test instead of the suite."""
    out, err = [], []

    def consume():
        try:
            out.extend(p)
        except BaseException as exc:  # noqa: BLE001
            err.append(exc)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    t.join(HANG_LIMIT)
    assert not t.is_alive(), "pipeline hung"
    return out, (err[0] if err else None)


def test_pool_output_keeps_input_order():
    p = (Pipeline(queue_size=2)
         .source("src", range(300))
         .map("double", lambda x: 2 * x)
         .pool("work", _identity_pool, workers=4)
         .map("inc", lambda x: x + 1))
    out, err = _drain(p)
    assert err is None
    assert out == [2 * i + 1 for i in range(300)]
    stats = {s.name: s for s in p.statistics().stages}
    assert stats["work"].items == 300 and stats["work"].workers == 4
    assert all(c.dropped == 0 for c in p.statistics().channels)


def test_each_pool_worker_initialises_once_with_its_slot():
    seen = []
    lock = threading.Lock()

    def init(slot):
        with lock:
            seen.append(slot)
        return lambda x: (slot, x)

    p = Pipeline().source("src", range(50)).pool("work", init, workers=3)
    out, err = _drain(p)
    assert err is None
    assert sorted(seen) == [0, 1, 2]
    assert [x for _, x in out] == list(range(50))


def _failing_at(position: str, fail_at: int = 40):
    """A pipeline with every queue size 1 that raises Boom in one place."""
    def maybe_fail(name):
        def fn(x):
            if name == position and x == fail_at:
                raise Boom(f"{name} failed on {x}")
            return x
        return fn

    def source():
        for x in itertools.count():
            if position == "source" and x == fail_at:
                raise Boom("source failed")
            yield x

    def pool_init(slot):
        return maybe_fail("pool")

    return (Pipeline(queue_size=1)
            .source("source", source())
            .map("resize", maybe_fail("resize"))
            .pool("pool", pool_init, workers=3)
            .map("render", maybe_fail("render"))
            .map("sink", maybe_fail("sink")))


@pytest.mark.parametrize("position", ["source", "resize", "pool", "render", "sink"])
def test_a_failing_stage_stops_everything_and_reaches_the_caller(position):
    p = _failing_at(position)
    out, err = _drain(p)
    assert isinstance(err, Boom)
    assert any(position in note for note in err.__notes__)
    assert err.__traceback__ is not None
    assert out == list(range(len(out)))  # what got through is an in-order prefix
    assert p.join(HANG_LIMIT), "a stage thread outlived the failure"


def test_failure_while_caller_is_not_reading_does_not_hang():
    """Writer-joins-a-reader-stuck-on-a-full-queue: the sink raises while every queue is full."""
    gate = threading.Event()

    def sink(x):
        if x == 0:
            gate.wait(HANG_LIMIT)  # hold everything upstream full
            raise Boom("sink")
        return x

    p = Pipeline(queue_size=1).source("src", itertools.count()).map("a", lambda x: x).map("sink", sink)
    p.start()
    # let the source fill every queue behind the stuck sink
    for _ in range(1000):
        if all(c.size == c.capacity for c in p.statistics().channels[:-1]):
            break
        time.sleep(0.001)
    gate.set()
    out, err = _drain(p)
    assert isinstance(err, Boom) and out == []
    assert p.join(HANG_LIMIT)


def test_pool_init_failure_fails_loudly():
    def init(slot):
        if slot == 1:
            raise OSError("model file unreadable")
        return lambda x: x

    p = Pipeline().source("src", range(10_000)).pool("infer", init, workers=2)
    out, err = _drain(p)
    assert isinstance(err, PoolInitError)
    assert "worker 1" in str(err) and isinstance(err.__cause__, OSError)


def test_caller_leaving_early_stops_every_thread():
    p = Pipeline(queue_size=1).source("src", itertools.count()).pool("w", _identity_pool, workers=2)
    with p:
        for x in p:
            if x == 5:
                break
    assert p.join(HANG_LIMIT)


def test_cancel_from_another_thread_ends_iteration_without_error():
    started = threading.Event()

    def slow(x):
        started.set()
        return x

    p = Pipeline(queue_size=1).source("src", itertools.count()).map("slow", slow)
    threading.Thread(target=lambda: (started.wait(HANG_LIMIT), p.cancel()), daemon=True).start()
    out, err = _drain(p)
    assert err is None
    assert out == list(range(len(out)))


def test_stop_ends_the_source_and_delivers_what_is_in_flight():
    stopped = threading.Event()

    def source():
        for x in itertools.count():
            if stopped.is_set():
                return
            yield x

    p = Pipeline(queue_size=2).source("src", source(), stop=stopped.set).pool(
        "w", _identity_pool, workers=2)
    out = []
    for x in p:
        out.append(x)
        if x == 20:
            p.stop()
    assert out == list(range(len(out))) and len(out) >= 21
    assert stopped.is_set()


def test_close_is_idempotent_and_safe_before_start():
    p = Pipeline().source("src", range(3))
    p.close()
    p.close()
    q = Pipeline().source("src", range(3))
    assert list(q) == [0, 1, 2]
    q.close()
    q.close()


def test_live_source_channel_drops_oldest_instead_of_blocking():
    release = threading.Event()
    dropped = []

    def slow(x):
        release.wait(HANG_LIMIT)
        return x

    def source():
        yield from range(100)
        release.set()

    p = (Pipeline(queue_size=2)
         .source("cam", source(), policy=Policy.DROP_OLDEST, on_drop=dropped.append)
         .map("slow", slow))
    out, err = _drain(p)
    assert err is None
    assert len(out) + len(dropped) == 100
    assert dropped and out == sorted(out) and out[-1] == 99
    assert p.statistics().channels[0].dropped == len(dropped)


def test_building_errors():
    with pytest.raises(PipelineError):
        Pipeline().map("x", lambda x: x)
    with pytest.raises(PipelineError):
        Pipeline().source("a", []).source("b", [])
    with pytest.raises(ValueError):
        Pipeline().source("a", []).pool("p", _identity_pool, workers=0)


def test_stage_rows_give_each_stage_its_share_of_the_time_and_its_output_queue():
    from pipeline import ChannelStatistics, PipelineStatistics, StageStatistics

    stats = PipelineStatistics(
        stages=(StageStatistics("decode", 1, 10, 0.5), StageStatistics("infer", 2, 10, 2.0),
                StageStatistics("idle", 1, 0, 0.0)),
        channels=(ChannelStatistics("decode.out", 3, 8, 5, 10, 1, 0, 0, False),))
    rows = stats.stage_rows(elapsed=2.0)
    assert [r["stage"] for r in rows] == ["decode", "infer", "idle"]
    assert rows[0] == {"stage": "decode", "workers": 1, "items": 10, "busy_seconds": 0.5,
                       "busy_pct": 25.0, "mean_ms": 50.0, "queue": 3, "queue_capacity": 8,
                       "queue_peak": 5, "dropped": 1}
    assert rows[1]["busy_pct"] == 50.0 and rows[1]["mean_ms"] == 200.0  # of both workers' time
    assert rows[2]["mean_ms"] == 0.0 and rows[2]["queue_capacity"] == 0  # no output queue


def test_a_cancel_does_not_wait_for_a_worker_still_loading_its_model():
    """Issue 21 item 11: a stop during a model load ends the run, not the load's end."""
    loading, release = threading.Event(), threading.Event()

    def init(slot):
        loading.set()
        release.wait(HANG_LIMIT)  # a load that cannot be interrupted
        return lambda x: x

    p = Pipeline().source("src", range(10)).pool("infer", init, workers=1)
    try:
        p.start()
        assert loading.wait(HANG_LIMIT)
        p.cancel()
        assert p.join(HANG_LIMIT), "the pipeline waited for the load to finish"
        assert not release.is_set() and p.error is None
    finally:
        release.set()

