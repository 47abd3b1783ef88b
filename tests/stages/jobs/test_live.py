"""Live sources through the whole pipeline, against real RTSP servers on 127.0.0.1."""


import av

from stages.settings import JobConfig
from stages.outputs.keypoint_log import read_keypoint_log
from stages.jobs.live import LiveJob
from stages.settings import LiveConfig
from tests.support.live_fixtures import make_live_clip, run_in_thread, wait_for

FAKE = dict(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48))
DEADLINE = 30.0


def _segments(outdir, name):
    return sorted((outdir / name).glob(f"{name}-*.mkv"))


def test_two_cameras_one_killed_and_back_the_other_untouched(tmp_path, rtsp_server):
    clip = make_live_clip(tmp_path / "c.mp4")
    cam1, cam2 = rtsp_server(clip), rtsp_server(clip)
    job = LiveJob([(cam1.url(), "cam1"), (cam2.url(), "cam2")], tmp_path / "out",
                  JobConfig(**FAKE), LiveConfig(stall_timeout=1.0))
    t, out = run_in_thread(job)
    try:
        wait_for(lambda: job.stats["cam1"].frames > 20 and job.stats["cam2"].frames > 20, "frames")
        cam1.kill()
        wait_for(lambda: len(_segments(tmp_path / "out", "cam1")) >= 1, "cam1's segment to finish")
        before = job.stats["cam2"].frames
        cam1.restart()
        wait_for(lambda: job.stats["cam1"].reconnects >= 1, "cam1 to reconnect")
        wait_for(lambda: job.stats["cam1"].frames > 40 and job.stats["cam2"].frames > before + 40,
              "both to keep going")
    finally:
        job.cancel()
        t.join(DEADLINE)
    assert not t.is_alive() and "error" not in out, out
    cam1_segments = _segments(tmp_path / "out", "cam1")
    assert len(cam1_segments) >= 2  # one before the drop, one after
    assert job.stats["cam2"].reconnects == 0 and len(_segments(tmp_path / "out", "cam2")) == 1
    for name in ("cam1", "cam2"):
        frames = [r["frame"] for seg in _segments(tmp_path / "out", name)
                  for r in read_keypoint_log(seg.with_suffix(".jsonl"))]
        assert frames == sorted(frames) and len(frames) == job.stats[name].frames
        for seg in _segments(tmp_path / "out", name):
            with av.open(str(seg)) as c:
                assert sum(1 for _ in c.decode(video=0)) > 0


def test_a_slow_pipeline_drops_frames_and_latency_stays_bounded(tmp_path, rtsp_server, monkeypatch):
    monkeypatch.setenv("POSESTREAM_FAKE_DELAY", "0.2")  # 5 FPS against a 25 FPS camera
    cam = rtsp_server(make_live_clip(tmp_path / "c.mp4"))
    job = LiveJob([(cam.url(), "cam")], tmp_path / "out",
                  JobConfig(backend="tests.support.fakes:SlowBackend", resolution=(64, 48)),
                  LiveConfig(queue_size=1))
    t, out = run_in_thread(job)
    try:
        wait_for(lambda: job.stats["cam"].frames >= 15, "15 frames")
    finally:
        job.cancel()
        t.join(DEADLINE)
    stats = job.stats["cam"]
    assert stats.dropped > stats.frames  # most frames were dropped, not queued
    # a frame waits behind at most a few others: queues of 1, each step 0.2 s at most
    assert stats.latency(0.95) < 2.0, stats.latency(0.95)
    recent = list(stats.latencies)[-5:]
    assert max(recent) < 2.0
    engine = job.snapshot()["engine"]
    assert (engine["backend"], engine["precision"], engine["devices"]) == ("tests.support.fakes:SlowBackend", "f32", ["cpu"])


def test_credentials_never_reach_names_files_or_logs(tmp_path, rtsp_server, caplog):
    cam = rtsp_server(make_live_clip(tmp_path / "c.mp4"), user="admin", password="s3cret")
    job = LiveJob([(cam.url(user="admin", password="s3cret"), None)], tmp_path / "out",
                  JobConfig(**FAKE), LiveConfig())
    t, out = run_in_thread(job)
    try:
        wait_for(lambda: next(iter(job.stats.values())).frames > 5, "frames")
    finally:
        job.cancel()
        t.join(DEADLINE)
    names = [str(p) for p in (tmp_path / "out").rglob("*")]
    assert names and not any("s3cret" in n or "admin" in n for n in names)
    assert "s3cret" not in caplog.text and "s3cret" not in str(job.snapshot())
