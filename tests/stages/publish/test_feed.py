"""LiveFeed: one record per frame, serialised once, offered to every consumer."""

from __future__ import annotations

import json

import numpy as np

from stages.frames import Frame, Person, Result
from stages.publish.feed import LiveFeed, live_record


class Collect:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.closed = False

    def offer(self, source, line, record) -> None:
        self.lines.append(line)

    def close(self) -> None:
        self.closed = True


class Broken(Collect):
    def offer(self, source, line, record) -> None:
        raise RuntimeError("consumer bug")


def result(index: int) -> Result:
    keypoints = np.zeros((18, 3), np.float32)
    keypoints[0] = (10.123, 20.5, 0.9)
    frame = Frame(source="cam1", index=index, pts=index * 0.2, image=np.zeros((4, 4, 3), np.uint8),
                  wall=1764700000.12345)
    return Result(frame=frame, people=(Person(keypoints=keypoints, score=0.8, track_id=3),))


def test_record_is_the_log_line_with_source_and_wall():
    record = live_record(result(2))
    assert record["source"] == "cam1" and record["frame"] == 2 and record["pts"] == 0.4
    assert record["wall"] == 1764700000.123
    assert record["people"][0]["id"] == 3 and record["people"][0]["keypoints"][0] == [10.12, 20.5, 0.9]


def test_every_consumer_gets_every_record_even_when_another_fails(caplog):
    feed = LiveFeed()
    first, broken, last = Collect(), Broken(), Collect()
    for consumer in (first, broken, last):
        feed.subscribe(consumer)
    for i in range(3):
        assert feed.publish(result(i)).frame.index == i
    assert first.lines == last.lines and len(last.lines) == 3
    assert [json.loads(line)["frame"] for line in last.lines] == [0, 1, 2]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in last.lines)
    assert "consumer bug" in caplog.text and feed.published["cam1"] == 3
    feed.close()
    assert first.closed and last.closed


def test_unsubscribed_consumer_gets_nothing_more():
    feed = LiveFeed()
    consumer = feed.subscribe(Collect())
    feed.publish(result(0))
    feed.unsubscribe(consumer)
    feed.publish(result(1))
    assert len(consumer.lines) == 1 and feed.published["cam1"] == 2
