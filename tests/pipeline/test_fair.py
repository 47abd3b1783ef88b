import threading

from pipeline import Channel, Pipeline, Policy
from pipeline.fair import FairChannel


def _key(item):
    return item[0]


def test_a_flooding_producer_only_evicts_its_own_items():
    dropped = []
    ch = FairChannel(2, key=_key, policy=Policy.DROP_OLDEST, on_drop=dropped.append)
    ch.put(("slow", 0))
    for i in range(10):
        ch.put(("fast", i))
    ch.close()
    out = list(ch)
    assert ("slow", 0) in out
    assert [x for x in out if x[0] == "fast"] == [("fast", 8), ("fast", 9)]
    assert dropped == [("fast", i) for i in range(8)]
    assert ch.statistics().dropped == 8 and ch.statistics().peak == 3


def test_items_are_served_round_robin_between_producers():
    ch = FairChannel(10, key=_key)
    for i in range(3):
        ch.put(("a", i))
    for i in range(3):
        ch.put(("b", i))
    ch.close()
    assert [k for k, _ in ch] == ["a", "b", "a", "b", "a", "b"]


def test_block_policy_holds_only_the_full_producer():
    ch = FairChannel(1, key=_key)
    ch.put(("a", 0))
    t = threading.Thread(target=lambda: ch.put(("a", 1)), daemon=True)
    t.start()
    t.join(0.05)
    assert t.is_alive()
    ch.put(("b", 0))  # another producer is not held up
    assert ch.get() == ("a", 0)
    t.join(5)
    assert not t.is_alive()
    assert sorted(ch.get() for _ in range(2)) == [("a", 1), ("b", 0)]


def test_cancel_clears_every_producer():
    ch = FairChannel(3, key=_key)
    ch.put(("a", 0))
    ch.put(("b", 0))
    ch.cancel()
    assert ch.statistics().size == 0
    assert isinstance(ch, Channel)


def test_several_sources_share_one_pool_and_keep_their_own_order():
    feeds = [(iter([(name, i) for i in range(n)]), None) for name, n in (("a", 50), ("b", 5), ("c", 30))]
    p = (Pipeline(queue_size=2).sources("cams", feeds, key=_key)
         .pool("w", lambda slot: (lambda x: x), workers=3))
    out = list(p)
    assert len(out) == 85
    for name, n in (("a", 50), ("b", 5), ("c", 30)):
        assert [i for k, i in out if k == name] == list(range(n))
    assert p.statistics().stages[0].workers == 3


def test_stop_reaches_every_source():
    stops = []
    events = [threading.Event(), threading.Event()]

    def feed(i):
        while not events[i].is_set():
            yield (str(i), 0)
            events[i].wait(0.001)

    def stopper(i):
        return lambda: (stops.append(i), events[i].set())

    p = Pipeline().sources("cams", [(feed(0), stopper(0)), (feed(1), stopper(1))], key=_key,
                           policy=Policy.DROP_OLDEST)
    for _ in p:
        p.stop()
    assert set(stops) == {0, 1}
