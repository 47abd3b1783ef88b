"""``OUT/<source>/live.jsonl``: rolled by size, appended across runs, followed by a real ``tail -F``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from stages.settings import JobConfig
from stages.outputs.keypoint_log import read_keypoint_log
from stages.jobs.live import LiveJob
from stages.settings import LiveConfig
from stages.recording.live_log import LIVE_LOG, LiveLogFile, LiveLogs
from tests.support.live_fixtures import make_live_clip, wait_for

FAKE = dict(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), video=False)
DEADLINE = 30.0
INOTIFY = ["tail", "-n", "+1", "-F"]
POLLING = INOTIFY + ["---disable-inotify", "-s", "0.02"]  # reopens a rolled file after ~0.12 s


def _line(i: int, width: int = 100) -> bytes:
    head = f'{{"frame": {i}, "pad": "'
    return (head + "x" * (width - len(head) - 3) + '"}\n').encode()  # width bytes


# -- one file -------------------------------------------------------------------------------------

def test_lines_roll_whole_at_the_size(tmp_path):
    path = tmp_path / "cam" / LIVE_LOG
    log = LiveLogFile(path, 1000)
    lines = [_line(i) for i in range(35)]
    for line in lines:
        log.append(line)
    log.close()
    assert log.rolls == 3  # 10 lines a file: 0-9, 10-19, 20-29 | 30-34
    older, newer = Path(f"{path}.1").read_bytes(), path.read_bytes()
    assert older == b"".join(lines[20:30]) and newer == b"".join(lines[30:])
    assert len(older) <= 1000 and len(newer) <= 1000


def test_a_line_bigger_than_the_size_gets_a_file_of_its_own(tmp_path):
    path = tmp_path / LIVE_LOG
    log = LiveLogFile(path, 150)
    for line in (_line(0), _line(1, 400), _line(2)):
        log.append(line)
    log.close()
    assert Path(f"{path}.1").read_bytes() == _line(1, 400) and path.read_bytes() == _line(2)


def test_a_new_run_appends_and_ends_a_torn_line(tmp_path, caplog):
    path = tmp_path / LIVE_LOG
    first = LiveLogFile(path, 1 << 20)
    first.append(_line(0))
    first.close()
    with open(path, "ab") as f:
        f.write(b'{"frame": 1, "pa')  # a run killed mid-line
    second = LiveLogFile(path, 1 << 20)
    second.append(_line(2))
    second.close()
    assert path.read_bytes().splitlines() == [_line(0).strip(), b'{"frame": 1, "pa', _line(2).strip()]
    assert "torn line" in caplog.text
    with open(path, "rb") as f:
        assert [json.loads(x)["frame"] for x in f if x.endswith(b"}\n")] == [0, 2]


# -- the consumer ---------------------------------------------------------------------------------

def test_each_source_gets_its_own_file(tmp_path):
    logs = LiveLogs(tmp_path, 1 << 20)
    for i in range(6):
        logs.offer(f"cam{i % 2}", _line(i), {})
    logs.close()
    assert (tmp_path / "cam0" / LIVE_LOG).read_bytes() == _line(0) + _line(2) + _line(4)
    assert (tmp_path / "cam1" / LIVE_LOG).read_bytes() == _line(1) + _line(3) + _line(5)
    assert logs.written == {"cam0": 3, "cam1": 3} and not logs.dropped


def test_a_stuck_disk_never_blocks_offer(tmp_path, monkeypatch):
    release = threading.Event()
    real_append = LiveLogFile.append

    def stuck(self, line):
        release.wait(DEADLINE)
        real_append(self, line)

    monkeypatch.setattr(LiveLogFile, "append", stuck)
    logs = LiveLogs(tmp_path, 1 << 20, max_pending=5)
    for i in range(50):
        logs.offer("cam", _line(i), {})  # returns at once although nothing is written
    assert logs.dropped["cam"] >= 44  # one in the writer's hands, 5 waiting
    release.set()
    logs.close()
    assert logs.written["cam"] + logs.dropped["cam"] == 50


def test_a_file_that_cannot_be_written_drops_its_lines_and_says_so_once(tmp_path, caplog):
    (tmp_path / "cam" / LIVE_LOG).mkdir(parents=True)  # a folder where the file should be
    logs = LiveLogs(tmp_path, 1 << 20)
    for i in range(3):
        logs.offer("cam", _line(i), {})
        logs.offer("ok", _line(i), {})
    logs.close()
    assert logs.dropped == {"cam": 3} and logs.written == {"ok": 3}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot write" in errors[0].getMessage()


# -- a real tail -F following a live run ----------------------------------------------------------

class Follower:
    """A ``tail -F`` child process following ``path`` from its first line."""

    def __init__(self, path: Path, args: list[str], out_dir: Path) -> None:
        if shutil.which("tail") is None or b"GNU" not in subprocess.run(
                ["tail", "--version"], capture_output=True).stdout:
            pytest.skip("GNU tail not found")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()  # as a run leaves it: tail -F polls once a second a file missing at its start
        self.out_path, self.err_path = out_dir / "tail.out", out_dir / "tail.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(args + [os.fspath(path)], stdout=out, stderr=err)

    def lines(self) -> list[bytes]:
        return self.out_path.read_bytes().splitlines()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def _logged(folder: Path) -> list[dict]:
    """Every record of the source's finished segment logs, the segments in time order."""
    segments = [read_keypoint_log(p) for p in folder.glob("*.jsonl") if p.name != LIVE_LOG]
    return [r for seg in sorted(filter(None, segments), key=lambda s: s[0]["wall"]) for r in seg]


def _followed(follower: Follower, expected: int) -> list[dict]:
    wait_for(lambda: len(follower.lines()) >= expected, f"tail to print {expected} lines", 10)
    follower.stop()
    return [json.loads(line) for line in follower.lines()]


def _run(job: LiveJob, until, what: str) -> None:
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("stats", job.run()), daemon=True)
    thread.start()
    try:
        wait_for(lambda: until() or not thread.is_alive(), what)
    finally:
        job.cancel()
        thread.join(DEADLINE)
    assert not thread.is_alive() and "stats" in out


def _check_exactly_once(folder: Path, follower: Follower, name: str) -> int:
    logged = _logged(folder)
    followed = _followed(follower, len(logged))
    assert {r.pop("source") for r in followed} == {name}
    assert followed == logged  # every record once, in order
    return len(follower.out_path.read_bytes())


@pytest.mark.parametrize("mode", [INOTIFY, POLLING], ids=["inotify", "polling"])
def test_tail_follows_every_record_once_across_segment_and_file_rolls(tmp_path, mode):
    out = tmp_path / "out"
    follower = Follower(out / "cam" / LIVE_LOG, mode, tmp_path)
    job = LiveJob([("lavfi:testsrc2=size=64x48:rate=50", "cam")], out, JobConfig(**FAKE),
                  LiveConfig(segment_minutes=0.01, live_log_size=4096))
    try:
        _run(job, lambda: job.feed.published["cam"] >= 220, "220 records")
        size = _check_exactly_once(out / "cam", follower, "cam")
    finally:
        follower.stop()
    assert size > 3 * 4096  # so live.jsonl rolled at least three times (it never passes 4096)
    assert len([p for p in (out / "cam").glob("*.jsonl") if p.name != LIVE_LOG]) >= 3


def test_tail_follows_across_a_restart_of_posestream(tmp_path):
    out = tmp_path / "out"
    follower = Follower(out / "cam" / LIVE_LOG, INOTIFY, tmp_path)
    try:
        for _ in range(2):
            job = LiveJob([("lavfi:testsrc2=size=64x48:rate=50", "cam")], out, JobConfig(**FAKE),
                          LiveConfig(live_log_size=4096))
            _run(job, lambda: job.feed.published["cam"] >= 40, "40 records")
        frames = [r["frame"] for r in _logged(out / "cam")]
        assert frames.count(0) == 2  # both runs' records are in the logs
        _check_exactly_once(out / "cam", follower, "cam")
    finally:
        follower.stop()


@pytest.mark.slow
def test_tail_follows_a_camera_killed_and_restarted(tmp_path, rtsp_server):
    cam = rtsp_server(make_live_clip(tmp_path / "c.mp4"))
    out = tmp_path / "out"
    follower = Follower(out / "cam" / LIVE_LOG, INOTIFY, tmp_path)
    job = LiveJob([(cam.url(), "cam")], out, JobConfig(**FAKE),
                  LiveConfig(stall_timeout=1.0, live_log_size=4096))
    monitor, killed = job.monitors["cam"], []

    def camera_dies_and_comes_back() -> bool:
        if monitor.frames > 20 and not killed:
            cam.kill()
            killed.append(monitor.frames)
        elif cam.proc is None and monitor.state == "reconnecting":
            cam.start()
        return monitor.reconnects >= 1 and job.feed.published["cam"] >= 120

    try:
        _run(job, camera_dies_and_comes_back, "the camera to come back and 120 records")
        size = _check_exactly_once(out / "cam", follower, "cam")
    finally:
        follower.stop()
    assert size > 2 * 4096


def test_the_api_writes_no_live_log_and_says_so(tmp_path):
    from stages.api import results
    from stages.errors import UsageError

    with pytest.raises(UsageError, match="--live-log-size .* results\\(\\) writes nothing"):
        next(results("lavfi:testsrc2=size=64x48:rate=5", config=JobConfig(**FAKE),
                     live=LiveConfig(live_log_size=1 << 20)))
