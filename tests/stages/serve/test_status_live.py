"""The status routes over real live runs: Server-Sent Events against the segment
logs, /healthz and /metrics through a real RTSP camera killed and restarted,
and no password in any answer."""

from __future__ import annotations

import json

from stages.settings import JobConfig
from stages.outputs.keypoint_log import read_keypoint_log
from stages.jobs.base import Views
from stages.jobs.live import LiveJob
from stages.settings import LiveConfig
from stages.serve.preview import PreviewServer
from stages.serve.status import LiveStatus, StatusServer
from tests.support.live_fixtures import make_live_clip, run_in_thread
from tests.support.status_fixtures import (WAIT, EventReader, get, scrape, stuck_client,
                                          wait_until)

FAKE = dict(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48))
DEADLINE = 30.0


def logged(outdir, name: str) -> list[dict]:
    return [r for log in sorted((outdir / name).glob(f"{name}-*.jsonl"))
            for r in read_keypoint_log(log)]


def _keypoints(record: dict) -> dict:
    return {key: record[key] for key in ("frame", "pts", "people")}


def test_events_carry_exactly_the_records_of_the_segment_logs(tmp_path):
    sources = [(f"lavfi:testsrc2=size=64x48:rate=25:duration={d}", name)
               for d, name in ((1, "cam1"), (2, "cam2"))]
    job = LiveJob(sources, tmp_path / "out", JobConfig(**FAKE), LiveConfig(max_retries=0))
    with StatusServer(port=0, status=LiveStatus.of(job)) as server:
        stuck = stuck_client(server.url)  # never reads: nobody waits for it
        every, one = EventReader(server.url), EventReader(server.url, "?source=cam2")
        assert wait_until(lambda: server.event_clients == 3)
        thread, out = run_in_thread(job)  # both streams end, the sources give up, the run ends
        thread.join(DEADLINE)
        assert every.ended.wait(WAIT) and one.ended.wait(WAIT)  # the feed closed: streams end
        stuck.close()
    assert "gave up" in str(out.get("error"))
    for name in ("cam1", "cam2"):
        sent = [_keypoints(r) for r in every.records if r["source"] == name]
        assert sent == [_keypoints(r) for r in logged(tmp_path / "out", name)]
        assert len(sent) == job.monitors[name].frames
    assert [r["frame"] for r in one.records] == [r["frame"] for r in logged(tmp_path / "out", "cam2")]
    assert [i for i in every.ids if i.startswith("cam2:")] == [
        f"cam2:{n}" for n in range(1, job.monitors["cam2"].frames + 1)]


def test_health_and_metrics_follow_a_camera_killed_and_restarted(tmp_path, rtsp_server):
    cam = rtsp_server(make_live_clip(tmp_path / "c.mp4"), user="admin", password="s3cret")
    job = LiveJob([(cam.url(user="admin", password="s3cret"), "cam1")], tmp_path / "out",
                  JobConfig(**FAKE), LiveConfig(stall_timeout=1.0))
    bodies: list[bytes] = []

    def answer(path: str) -> tuple[int, dict]:
        code, _, body = get(server.url, path)
        bodies.append(body)
        return code, json.loads(body)

    def frames() -> float:
        metrics = scrape(server.url)
        bodies.append(json.dumps(list(metrics)).encode())
        return metrics[("posestream_frames_total", (("source", "cam1"),))]

    with PreviewServer(port=0, sources=("cam1",), status=LiveStatus.of(job)) as server:
        reader = EventReader(server.url)  # --preview implies the status routes
        thread, out = run_in_thread(job, views=Views(preview=server.publish))
        try:
            assert wait_until(lambda: job.monitors["cam1"].frames > 10, DEADLINE)
            code, reply = answer("/healthz")
            assert code == 200 and reply["ok"] and reply["sources"]["cam1"]["state"] == "live"
            before = frames()
            cam.kill()
            assert wait_until(lambda: answer("/healthz")[0] == 503, DEADLINE)
            code, reply = answer("/healthz")
            assert reply["ok"] is False and reply["reason"].startswith("cam1: no frame for")
            assert wait_until(lambda: answer("/healthz")[1]["sources"]["cam1"].get("last_error"))
            metrics = scrape(server.url)
            assert metrics[("posestream_source_state", (("source", "cam1"), ("state", "live")))] == 0
            cam.restart()
            assert wait_until(lambda: answer("/healthz")[0] == 200, DEADLINE)
            assert wait_until(lambda: frames() > before + 5, DEADLINE)
            metrics = scrape(server.url)
            assert metrics[("posestream_reconnects_total", (("source", "cam1"),))] >= 1
            assert metrics[("posestream_reconnect_attempts_total", (("source", "cam1"),))] >= 1
            assert metrics[("posestream_latency_seconds_count", (("source", "cam1"),))] > 10
            bodies.append(get(server.url, "/stats.json")[2])
            bodies.append(get(server.url, "/metrics")[2])
        finally:
            job.cancel()
            thread.join(DEADLINE)
        assert reader.ended.wait(WAIT) and len(reader.records) > 10
    assert not thread.is_alive() and "error" not in out, out
    bodies.append(json.dumps(reader.records).encode())
    assert all(b"s3cret" not in body for body in bodies)
    assert all(b"admin" not in body for body in bodies)
