"""SourceMonitor: states from connection events, FPS over the last 10 s, health."""

from __future__ import annotations

import time

import numpy as np
import pytest

from stages.frames import Frame, Result
from stages.sources.stream import SourceEvent
from stages.publish.monitor import (CONNECTING, FPS_WINDOW, GIVEN_UP, LIVE, RECONNECTING, STOPPED,
                                  SourceMonitor)
from tests.support.status_fixtures import Clock


def result(source: str = "cam", index: int = 0, *, age: float = 0.0) -> Result:
    frame = Frame(source=source, index=index, pts=index / 25, image=np.zeros((4, 4, 3), np.uint8),
                  wall=time.time() - age)
    return Result(frame=frame, people=())


def event(kind: str, message: str = "", reconnected: bool = False) -> SourceEvent:
    return SourceEvent(source="cam", kind=kind, message=message, attempt=1, delay=0.5,
                       reconnected=reconnected)


def test_states_follow_the_connection_events():
    monitor = SourceMonitor("cam")
    seen = []
    monitor.on_state(lambda name, state, row: seen.append((name, state, row["state"])))
    assert monitor.state == CONNECTING
    monitor.event(event("connected"))
    monitor.event(event("disconnected", "disconnected: end of stream"))
    monitor.event(event("retry", "retrying in 0.5 s after: end of stream"))
    monitor.event(event("connected", reconnected=True))
    monitor.event(event("gave_up", "rtsp://127.0.0.1/x: gave up after 3 failures"))
    monitor.stopped()
    assert [s for _, s, _ in seen] == [LIVE, RECONNECTING, LIVE, GIVEN_UP]
    assert all(name == "cam" and state == row_state for name, state, row_state in seen)
    assert monitor.attempts == 1 and monitor.reconnects == 1
    assert monitor.last_error == "rtsp://127.0.0.1/x: gave up after 3 failures"


def test_a_run_that_ends_stops_a_live_source():
    monitor = SourceMonitor("cam")
    monitor.event(event("connected"))
    monitor.stopped()
    assert monitor.state == STOPPED and monitor.healthy() == (True, "")


def test_fps_counts_only_the_last_ten_seconds():
    clock = Clock()
    monitor = SourceMonitor("cam", clock=clock)
    clock.now += 20  # a long-running source ...
    for i in range(50):  # ... gets 5 frames a second for 10 s
        clock.now += 0.2
        monitor.frame_done(result(index=i))
    assert monitor.fps() == pytest.approx(50 / FPS_WINDOW, rel=0.05)
    clock.now += FPS_WINDOW / 2  # the camera died 5 s ago: half the window is empty
    assert monitor.fps() == pytest.approx(25 / FPS_WINDOW, rel=0.1)
    clock.now += FPS_WINDOW  # and now 15 s ago
    assert monitor.fps() == 0.0 and monitor.frames == 50


def test_health_is_a_frame_within_the_stall_timeout():
    clock = Clock()
    monitor = SourceMonitor("cam", stall_timeout=5.0, clock=clock)
    assert monitor.healthy()[0]  # just started
    clock.now += 6
    ok, reason = monitor.healthy()
    assert not ok and "no frame yet" in reason
    monitor.event(event("connected"))
    monitor.frame_done(result())
    assert monitor.healthy() == (True, "")
    clock.now += 5.5
    ok, reason = monitor.healthy()
    assert not ok and "no frame for 6 s" in reason
    monitor.event(event("gave_up", "gave up"))
    assert monitor.healthy() == (True, "")  # given up: the run's health no longer waits for it


def test_latency_quantiles_and_row():
    monitor = SourceMonitor("cam")
    for age in (0.1, 0.2, 0.3, 0.4, 1.0):
        monitor.frame_done(result(age=age))
    monitor.dropped_one()
    assert monitor.latency(0.5) == pytest.approx(0.3, abs=0.05)
    assert monitor.latency(0.95) == pytest.approx(1.0, abs=0.05)
    row = monitor.row()
    assert row["source"] == "cam" and row["frames"] == 5 and row["dropped"] == 1
    assert row["state"] == CONNECTING and row["latency_p95_ms"] == pytest.approx(1000, abs=50)
    assert len(monitor.latencies) == 5


def test_recording_is_healthy_again_only_when_every_stopped_part_resumed():
    monitor = SourceMonitor("cam", stall_timeout=60.0)
    monitor.recording("recording stopped: logs full", part="segments")
    monitor.recording("recording stopped: raw full", part="raw")
    monitor.recording(None, part="segments")  # the logs found room first
    assert monitor.healthy() == (False, "recording stopped: raw full")
    monitor.recording(None, part="raw")
    assert monitor.healthy() == (True, "")
