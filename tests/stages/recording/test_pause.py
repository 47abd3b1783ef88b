"""A live run outlives a full disk: recording stops, says so once, and resumes (issue 21, item 7).

A real small tmpfs (``tests.support.processes.tmpfs``, root needed) is filled up
while a lavfi source (an RTSP camera on 127.0.0.1 for ``--record raw``) runs,
then space is freed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stages.errors import OutputError
from stages.jobs.live import LiveJob
from stages.outputs.video import VideoWriter
from stages.serve.status import LiveStatus, StatusServer
from stages.settings import JobConfig, LiveConfig
from stages.sources.file_source import SourceInfo
from tests.support.live_fixtures import (gstreamer, make_live_clip, rtsp_server,  # noqa: F401
                                         run_in_thread, wait_for)
from tests.support.processes import tmpfs

FAKE = dict(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48))
SOURCE = "lavfi:testsrc2=size=160x120:rate=25,realtime"
DEADLINE = 30.0


@pytest.fixture
def disk(tmp_path):
    """A 4 MB tmpfs, unmounted afterwards; skips where mounting is not permitted."""
    with tmpfs(tmp_path / "disk", "4m") as where:
        yield where


def _fill(disk: Path) -> Path:
    """Fill ``disk`` with one file until it is full; return the file."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
    return filler


def _healthz(server: StatusServer) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(server.url + "healthz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as answer:
        return answer.code, json.loads(answer.read())


def _stopped(server: StatusServer) -> bool:
    return "recording stopped" in _healthz(server)[1].get("reason", "")


def _committed(folder: Path, suffix: str) -> set[str]:
    return {p.name[:-len(suffix)] for p in folder.glob(f"cam-*{suffix}")
            if ".partial." not in p.name}


@pytest.mark.slow
@pytest.mark.parametrize("record", ["annotated", "none"])
def test_a_live_run_outlives_a_full_disk_and_records_again_when_space_returns(disk, record,
                                                                                caplog):
    job = LiveJob([(SOURCE, "cam")], disk / "out", JobConfig(**FAKE),
                  LiveConfig(record=record, segment_minutes=0.02))
    monitor, folder = job.monitors["cam"], disk / "out" / "cam"
    with caplog.at_level(logging.INFO), StatusServer("127.0.0.1", 0,
                                                      status=LiveStatus.of(job)) as server:
        thread, result = run_in_thread(job)
        try:
            wait_for(lambda: list(folder.glob("cam-*.jsonl")), "a first segment", DEADLINE)
            filler = _fill(disk)
            wait_for(lambda: not thread.is_alive() or _stopped(server), "recording to stop",
                     DEADLINE)
            assert thread.is_alive() and not result, result  # the run goes on
            frames = monitor.frames
            wait_for(lambda: monitor.frames > frames + 25, "frames while the disk is full",
                     DEADLINE)
            code, body = _healthz(server)
            assert code == 503 and "recording stopped" in body["reason"], body
            assert "No space left on device" in body["sources"]["cam"]["reason"], body
            assert thread.is_alive() and not result, result
            before = _committed(folder, ".jsonl")
            filler.unlink()
            wait_for(lambda: _healthz(server)[0] == 200, "recording to resume", DEADLINE)
            wait_for(lambda: _committed(folder, ".jsonl") - before, "a segment after the outage",
                     DEADLINE)
            code, body = _healthz(server)
            assert code == 200 and body["ok"], body
        finally:
            job.cancel()
            thread.join(DEADLINE)
    assert not thread.is_alive() and "error" not in result, result
    stops = [r for r in caplog.records if "recording stopped" in r.getMessage()
             or "recording resumes" in r.getMessage()]
    assert len(stops) == 1, [r.getMessage() for r in stops]
    assert sum("recording again" in r.getMessage() for r in caplog.records) == 1
    assert not [r for r in caplog.records if "torn line" in r.getMessage()]  # said once, above
    if record == "annotated":  # no log committed without its video, nor the other way
        assert _committed(folder, ".jsonl") == _committed(folder, ".mkv")
        assert {p.name[:-len(".partial.jsonl")] for p in folder.glob("*.partial.jsonl")} <= \
            {p.name[:-len(".partial.mkv")] for p in folder.glob("*.partial.mkv")}
    assert (folder / "live.jsonl").stat().st_size > 0


def test_a_video_that_cannot_be_finished_names_where_it_was_kept(disk):
    info = SourceInfo(name="t", width=160, height=120, rate=Fraction(25),
                      time_base=Fraction(1, 25), frames=None, duration=None, codec="h264")
    writer = VideoWriter(disk / "clip.mkv", info)
    rng = np.random.default_rng(0)
    for index in range(10):
        writer.write(rng.integers(0, 256, (120, 160, 3), np.uint8), index)
    _fill(disk)
    with pytest.raises(OutputError):  # the disk filled up under the writer
        for index in range(10, 400):
            writer.write(rng.integers(0, 256, (120, 160, 3), np.uint8), index)
    with pytest.raises(OutputError) as closing:
        writer.close()
    named = re.findall(r"(?:kept as|left at) (/\S+)", str(closing.value))
    assert named and all(os.path.exists(path) for path in named), str(closing.value)
    assert not (disk / "clip.mkv").exists()


@pytest.mark.slow
def test_a_raw_recording_outlives_a_full_disk_and_records_again_when_space_returns(
        disk, rtsp_server, tmp_path, caplog):
    cam = rtsp_server(make_live_clip(tmp_path / "clip.mp4"))
    job = LiveJob([(cam.url(), "cam")], disk / "out", JobConfig(**FAKE),
                  LiveConfig(record="raw", segment_minutes=0.02))
    recorder, monitor, folder = job._recorders["cam"], job.monitors["cam"], disk / "out" / "cam"
    with caplog.at_level(logging.INFO), StatusServer("127.0.0.1", 0,
                                                      status=LiveStatus.of(job)) as server:
        thread, result = run_in_thread(job)
        try:
            wait_for(lambda: _committed(folder, ".mkv"), "a first raw segment", DEADLINE)
            filler = _fill(disk)
            wait_for(lambda: not thread.is_alive() or recorder.error is not None,
                     "raw recording to stop", DEADLINE)
            assert thread.is_alive() and not result, result  # the run goes on
            frames, lost = monitor.frames, recorder.lost
            wait_for(lambda: not thread.is_alive() or (monitor.frames > frames + 25
                                                       and recorder.lost > lost + 25),
                     "frames processed, not recorded, while the disk is full", DEADLINE)
            assert thread.is_alive() and not result, result
            code, body = _healthz(server)
            assert code == 503 and "recording stopped" in body["reason"], body
            assert "No space left on device" in body["sources"]["cam"]["reason"], body
            assert thread.is_alive() and not result and recorder.fatal is None, result
            before = _committed(folder, ".mkv")
            filler.unlink()
            wait_for(lambda: _healthz(server)[0] == 200, "recording to resume", DEADLINE)
            wait_for(lambda: _committed(folder, ".mkv") - before, "a raw segment after the outage",
                     DEADLINE)
            assert recorder.error is None and _healthz(server)[1]["ok"]
        finally:
            job.cancel()
            thread.join(DEADLINE)
    assert not thread.is_alive() and "error" not in result, result
    messages = [r.getMessage() for r in caplog.records]
    stops = [m for m in messages if "recording resumes" in m]
    assert len([m for m in stops if ".mkv" in m]) == 1, stops  # the raw recording's, once
    assert sum("recording again" in m for m in messages) == len(stops) <= 2, messages
    after = min(_committed(folder, ".mkv") - before)  # the first segment after the outage
    with av.open(str(folder / f"{after}.mkv")) as container:
        pictures = list(container.decode(video=0))
    assert pictures and (folder / f"{after}.jsonl").exists()
