"""The status server: /healthz from the source monitors, /metrics scraped with
prometheus_client's own parser, /events read by real HTTP clients (one of
them stuck), bounds and shutdown. Without a camera: monitors and a record
feed fed by hand (tests/stages/serve/test_status_live.py runs a real one)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from stages.sources.stream import SourceEvent
from stages.publish.feed import LiveFeed, live_record
from stages.publish.monitor import GIVEN_UP, LATENCY_BUCKETS, STATES, SourceMonitor
from stages.serve.status import LiveStatus, StatusServer, health
from tests.support.status_fixtures import (WAIT, Clock, EventReader, get, result, scrape,
                                          stuck_client, wait_until)


def event(kind: str, message: str = "", *, source: str = "cam",
          reconnected: bool = False) -> SourceEvent:
    return SourceEvent(source=source, kind=kind, message=message, attempt=1, delay=0.5,
                       reconnected=reconnected)


def make_status(names=("cam",), *, clock=None, stall_timeout: float = 2.0) -> LiveStatus:
    clock = clock or Clock()
    monitors = {n: SourceMonitor(n, stall_timeout, clock=clock) for n in names}
    stages = [{"stage": "inference", "items": 5, "busy_seconds": 1.25},
              {"stage": "write", "items": 5, "busy_seconds": 0.5}]

    def snapshot() -> dict:
        return {"sources": [m.row() for m in monitors.values()], "stages": stages}

    return LiveStatus(monitors=monitors, snapshot=snapshot, feed=LiveFeed())


@pytest.fixture
def status():
    return make_status(("cam", "door"))


@pytest.fixture
def server(status):
    with StatusServer(port=0, status=status, send_timeout=1.0) as srv:
        yield srv


# -- /healthz

def test_health_needs_a_recent_frame_from_every_source_not_given_up():
    clock = Clock()
    status = make_status(("cam", "door"), clock=clock)
    cam, door = status.monitors["cam"], status.monitors["door"]
    assert health(status.monitors)[0]  # within the stall timeout of the start
    clock.now += 3
    ok, body = health(status.monitors)
    assert not ok and "cam: no frame yet" in body["reason"] and "door: no frame yet" in body["reason"]
    for monitor in (cam, door):
        monitor.event(event("connected"))
        monitor.frame_done(result(0))
    assert health(status.monitors) == (True, {"ok": True, "sources": {
        "cam": {"state": "live", "ok": True, "seconds_since_frame": 0.0},
        "door": {"state": "live", "ok": True, "seconds_since_frame": 0.0}}})
    clock.now += 2.5
    door.frame_done(result(1, source="door"))
    ok, body = health(status.monitors)
    assert not ok and body["reason"] == "cam: no frame for 2 s (live)"
    assert body["sources"]["door"]["ok"] and not body["sources"]["cam"]["ok"]
    cam.event(event("gave_up", "gave up after 4 failures"))  # no longer expected to deliver
    assert health(status.monitors)[0]
    door.event(event("gave_up", "gave up after 4 failures", source="door"))
    ok, body = health(status.monitors)
    assert not ok and body["reason"] == "every source was given up"


def test_healthz_answers_200_or_503_with_a_json_reason(server, status):
    clock = status.monitors["cam"]._clock
    for name, monitor in status.monitors.items():
        monitor.event(event("connected", source=name))
        monitor.frame_done(result(0, source=name))
    code, kind, body = get(server.url, "/healthz")
    assert code == 200 and kind == "application/json" and json.loads(body)["ok"] is True
    clock.now += 5
    status.monitors["door"].frame_done(result(1, source="door"))
    code, kind, body = get(server.url, "/healthz")
    reply = json.loads(body)
    assert code == 503 and reply["ok"] is False and reply["reason"].startswith("cam: no frame for 5 s")
    assert get(server.url, "/healthz", "HEAD")[::2] == (503, b"")


def test_a_server_without_a_live_run_says_ok_and_has_no_metrics_or_events():
    with StatusServer(port=0) as srv:
        assert get(srv.url, "/healthz")[::2] == (200, b"ok\n")
        assert get(srv.url, "/metrics")[0] == 404 and get(srv.url, "/events")[0] == 404
        assert get(srv.url, "/nope")[0] == 404


# -- /metrics

def test_metrics_parse_and_move_with_the_run(server, status):
    cam = status.monitors["cam"]
    cam.event(event("connected"))
    for i, age in enumerate((0.02, 0.2, 0.7, 3.0)):
        cam.frame_done(result(i, age=age))
    cam.dropped_one()
    cam.rate_dropped = 4
    cam.event(event("disconnected", "end of stream"))
    cam.event(event("retry", "retrying in 0.5 s"))
    cam.event(event("retry", "retrying in 1 s"))
    cam.event(event("connected", reconnected=True))
    first = scrape(server.url)
    assert first[("posestream_frames_total", (("source", "cam"),))] == 4
    assert first[("posestream_frames_total", (("source", "door"),))] == 0
    assert first[("posestream_dropped_frames_total", (("reason", "queue"), ("source", "cam")))] == 1
    assert first[("posestream_dropped_frames_total", (("reason", "rate"), ("source", "cam")))] == 4
    assert first[("posestream_reconnect_attempts_total", (("source", "cam"),))] == 2
    assert first[("posestream_reconnects_total", (("source", "cam"),))] == 1
    states = {s: first[("posestream_source_state", (("source", "cam"), ("state", s)))] for s in STATES}
    assert states == {s: float(s == "live") for s in STATES}
    assert first[("posestream_source_state", (("source", "door"), ("state", "connecting")))] == 1
    assert first[("posestream_source_fps", (("source", "cam"),))] > 0
    assert first[("posestream_stage_busy_seconds_total", (("stage", "inference"),))] == 1.25
    assert first[("posestream_stage_items_total", (("stage", "write"),))] == 5
    buckets = [first[("posestream_latency_seconds_bucket", (("le", repr(b)), ("source", "cam")))]
               for b in LATENCY_BUCKETS]
    assert buckets[0] == 1 and buckets[-1] == 4 and buckets == sorted(buckets)
    assert first[("posestream_latency_seconds_bucket", (("le", "+Inf"), ("source", "cam")))] == 4
    assert first[("posestream_latency_seconds_count", (("source", "cam"),))] == 4
    assert 3.9 < first[("posestream_latency_seconds_sum", (("source", "cam"),))] < 5
    assert first[("posestream_events_clients", ())] == 0

    cam.frame_done(result(4))
    cam.event(event("gave_up", "gave up after 4 failures"))
    second = scrape(server.url)
    assert second[("posestream_frames_total", (("source", "cam"),))] == 5
    assert second[("posestream_source_state", (("source", "cam"), ("state", GIVEN_UP)))] == 1
    assert second[("posestream_source_state", (("source", "cam"), ("state", "live")))] == 0
    assert ("posestream_seconds_since_last_frame", (("source", "cam"),)) not in second
    assert ("posestream_seconds_since_last_frame", (("source", "door"),)) in second


# -- /events

def publish_paced(feed: LiveFeed, reader: EventReader, results, batch: int = 100) -> None:
    """Publish in batches smaller than a client's queue, each after ``reader`` took the last."""
    for start in range(0, len(results), batch):
        for res in results[start:start + batch]:
            feed.publish(res)
        done = start + len(results[start:start + batch])
        assert wait_until(lambda: len(reader.records) >= done), (len(reader.records), done)


def test_events_deliver_every_record_with_numbered_ids(server, status):
    reader = EventReader(server.url)
    assert wait_until(lambda: server.event_clients == 1)
    assert reader.reply.getheader("Content-Type").startswith("text/event-stream")
    results = [result(i, source="cam" if i % 3 else "door") for i in range(30)]
    publish_paced(status.feed, reader, results)
    assert reader.records == [live_record(r) for r in results]
    cam_ids = [i for i in reader.ids if i.startswith("cam:")]
    assert cam_ids == [f"cam:{n}" for n in range(1, 21)]
    assert reader.comments and reader.comments[0] == "posestream live keypoints"
    status.feed.close()  # the run ended: the stream ends
    assert reader.ended.wait(WAIT) and reader.error is None
    reader.close()


def test_events_of_one_source(server, status):
    reader = EventReader(server.url, "?source=door")
    assert wait_until(lambda: server.event_clients == 1)
    for i in range(10):
        status.feed.publish(result(i, source="cam" if i % 2 else "door"))
    assert wait_until(lambda: len(reader.records) == 5)
    assert {r["source"] for r in reader.records} == {"door"}
    assert get(server.url, "/events?source=ghost")[0] == 404
    reader.close()


def test_a_stuck_client_never_slows_the_pipeline_or_another_client(status):
    with StatusServer(port=0, status=status, send_timeout=1.0) as srv:
        stuck = stuck_client(srv.url)
        assert wait_until(lambda: srv.event_clients == 1)
        reader = EventReader(srv.url)
        assert wait_until(lambda: srv.event_clients == 2)
        results = [result(i, people=3) for i in range(4000)]  # ~1.3 MB of events
        publish_paced(status.feed, reader, results)
        assert reader.records == [live_record(r) for r in results]
        # the stuck one lost records (its queue is bounded) and was dropped at its send timeout
        assert wait_until(lambda: srv.event_clients == 1)
        clients, dropped = srv.events_figures()
        assert clients == 1 and dropped > 0
        assert scrape(srv.url)[("posestream_events_dropped_total", ())] == dropped
        reader.close()
        stuck.close()


def test_event_streams_are_bounded_and_head_subscribes_none(status):
    with StatusServer(port=0, status=status, max_events=1) as srv:
        reader = EventReader(srv.url)
        assert wait_until(lambda: srv.event_clients == 1)
        code, _, body = get(srv.url, "/events")
        assert code == 429 and b"1 event streams at most" in body
        assert get(srv.url, "/events", "HEAD")[0] == 200 and srv.event_clients == 1
        reader.close()
        assert wait_until(lambda: srv.event_clients == 0)  # a client that left frees its place


def test_close_ends_every_event_stream_promptly(status):
    srv = StatusServer(port=0, status=status).start()
    readers = [EventReader(srv.url) for _ in range(3)]
    stuck = stuck_client(srv.url)
    assert wait_until(lambda: srv.event_clients == 4)
    srv.close()
    assert all(r.ended.wait(WAIT) for r in readers)
    assert not [t for t in threading.enumerate() if t.name.startswith("status-events")]
    stuck.close()
    srv.close()  # idempotent


def test_the_host_check_applies_to_every_route(server):
    for path in ("/healthz", "/metrics", "/events"):
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1][:-1])),
                                      timeout=WAIT) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: evil.example\r\n\r\n".encode())
            assert sock.recv(100).startswith(b"HTTP/1.0 421")
