import json
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from stages.frames import Frame, Result
from stages.keypoint_log import read_keypoint_log
from stages.segments import SegmentedOutputs

ROOT = Path(__file__).resolve().parents[2]


def _result(i: int, wall: float, size=(64, 48)) -> Result:
    img = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
    return Result(Frame(source="cam", index=i, pts=i * 0.1, wall=wall, image=img), ())


def _frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_segments_roll_on_time_size_and_request(tmp_path):
    with SegmentedOutputs(tmp_path, "cam", segment_seconds=1.0) as out:
        for i in range(25):  # 2.5 s of wall time at 10 fps: three time segments
            out.write(_result(i, 1000.0 + i * 0.1))
        out.end_segment()  # the stream dropped
        for i in range(25, 30):
            out.write(_result(i, 1000.0 + i * 0.1))
        for i in range(30, 33):  # the camera came back at another size
            out.write(_result(i, 1000.0 + i * 0.1, size=(80, 60)))
    videos = sorted((tmp_path / "cam").glob("*.mkv"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert [_frames_in(v) for v in videos] == [10, 10, 5, 5, 3]
    logs = [v.with_suffix(".jsonl") for v in videos]
    records = [r for log in logs for r in read_keypoint_log(log)]
    assert [r["frame"] for r in records] == list(range(33))
    assert all("wall" in r and "pts" in r for r in records)
    assert not list((tmp_path / "cam").glob(".*partial*"))


def test_segment_pts_follow_the_stream_clock(tmp_path):
    with SegmentedOutputs(tmp_path, "cam", segment_seconds=60) as out:
        for i in (0, 1, 2, 5, 6):  # frames 3 and 4 were dropped by the live queue
            out.write(_result(i, 1000.0 + i * 0.1))
    [video] = (tmp_path / "cam").glob("*.mkv")
    with av.open(str(video)) as c:
        pts = [round(float(f.pts * f.time_base), 3) for f in c.decode(video=0)]
    assert pts == [0.0, 0.1, 0.2, 0.5, 0.6]


WRITER = """
import sys, time
sys.path.insert(0, {root!r})
import numpy as np
from stages.frames import Frame, Result
from stages.segments import SegmentedOutputs
out = SegmentedOutputs({outdir!r}, "cam", segment_seconds=0.5)
t0 = time.time()
for i in range(100000):
    img = np.full((48, 64, 3), i % 255, np.uint8)
    out.write(Result(Frame(source="cam", index=i, pts=i * 0.04, wall=t0 + i * 0.04, image=img), ()))
    if i == 40:
        print("WROTE", flush=True)
"""


def test_after_sigkill_finished_segments_play_and_logs_parse(tmp_path):
    code = WRITER.format(root=str(ROOT), outdir=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WROTE"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    folder = tmp_path / "cam"
    finished = sorted(folder.glob("cam-*.mkv"))
    assert len(finished) >= 3
    for video in finished:
        assert _frames_in(video) > 0
        for line in video.with_suffix(".jsonl").read_text().splitlines():
            json.loads(line)
    for partial_log in folder.glob(".*.jsonl.partial-*"):
        read_keypoint_log(partial_log)  # a cut last line is tolerated, the rest parses
