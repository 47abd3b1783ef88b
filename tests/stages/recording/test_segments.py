import json
import logging
import os
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from stages.frames import Frame, Result
from stages.outputs.keypoint_log import read_keypoint_log
from stages.sources.stream import LiveSource
from stages.recording.segments import SegmentedOutputs
from tests.support.processes import sigkill_once_it_says

ROOT = Path(__file__).resolve().parents[3]


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
from stages.recording.segments import SegmentedOutputs
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
    sigkill_once_it_says(code)
    folder = tmp_path / "cam"
    finished = sorted(folder.glob("cam-*.mkv"))
    assert len(finished) >= 3
    for video in finished:
        assert _frames_in(video) > 0
        for line in video.with_suffix(".jsonl").read_text().splitlines():
            json.loads(line)
    for partial_log in folder.glob(".*.jsonl.partial-*"):
        read_keypoint_log(partial_log)  # a cut last line is tolerated, the rest parses


# -- names with dots: every segment is its own file pair (issue 11, item 1)

def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(mkv, jsonl) of every finished segment, in segment order."""
    videos = sorted(folder.glob("*.mkv"), key=lambda p: int(p.name[:-4].rsplit("-", 1)[1]))
    return [(v, v.parent / (v.name[:-4] + ".jsonl")) for v in videos]


@pytest.mark.parametrize("name", ["cam1.local", "127.0.0.1", "127.0.0.1_8554_cam1", "a.b.c.d.e"])
def test_dotted_source_names_give_one_file_pair_per_segment(tmp_path, name, caplog):
    with caplog.at_level(logging.INFO, logger="stages.recording.segments"):
        with SegmentedOutputs(tmp_path, name, segment_seconds=60) as out:
            for i in range(9):
                if i % 3 == 0:
                    out.end_segment()  # three segments of three frames
                out.write(_result(i, 1000.0 + i * 0.1))
    started = [r.getMessage().split(" segment ")[1].split()[0] for r in caplog.records
               if " segment " in r.getMessage()]
    assert len(started) == 3 and len(set(started)) == 3
    folder = tmp_path / name
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{base}{suffix}" for base in started for suffix in (".mkv", ".jsonl"))
    pairs = _pairs(folder)
    assert [_frames_in(v) for v, _ in pairs] == [3, 3, 3]
    assert [[r["frame"] for r in read_keypoint_log(j)] for _, j in pairs] == [
        [0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert all(v.name.startswith(f"{name}-") for v, _ in pairs)


def test_segment_names_already_on_disk_are_skipped(tmp_path):
    for _ in range(2):  # a second run in the same second: same stamp, same count
        with SegmentedOutputs(tmp_path, "127.0.0.1", segment_seconds=60) as out:
            for i in range(3):
                out.write(_result(i, 1000.0 + i * 0.1))
    pairs = _pairs(tmp_path / "127.0.0.1")
    assert len(pairs) == 2 and pairs[0][0] != pairs[1][0]
    assert [_frames_in(v) for v, _ in pairs] == [3, 3]
    assert all(len(read_keypoint_log(j)) == 3 for _, j in pairs)


def test_reconnecting_rtsp_camera_named_by_ipv4_keeps_every_segment(rtsp_server, tmp_path,
                                                                    caplog):
    """A real RTSP server on 127.0.0.1, killed and restarted twice, as LiveJob wires it."""
    server = rtsp_server()
    name = f"127.0.0.1_{server.port}_cam1"
    outdir = tmp_path / "out"
    outputs = SegmentedOutputs(outdir, name, segment_seconds=600)
    restarts = {"left": 2}

    def on_event(event):
        if event.kind in ("disconnected", "stalled"):
            outputs.end_segment()  # what LiveJob does while the camera is away
            if restarts["left"]:
                restarts["left"] -= 1
                server.start()

    written = 0
    source = LiveSource(server.url(), stall_timeout=2, backoff_initial=0.05, on_event=on_event)
    with caplog.at_level(logging.INFO, logger="stages.recording.segments"), source, outputs:
        assert source.name == name
        deadline = time.monotonic() + 30
        for frame in source:
            outputs.write(Result(frame, ()))
            written += 1
            if written in (10, 20):
                server.kill()  # the camera drops; on_event brings it back
            if written == 30:
                break
            assert time.monotonic() < deadline, f"only {written} frames"
    assert source.connection == 3
    started = [r.getMessage() for r in caplog.records if "segment" in r.getMessage()]
    assert len(started) == 3, started
    pairs = _pairs(outdir / name)
    assert len(pairs) == 3 and all(v.exists() and j.exists() for v, j in pairs)
    assert len({v.name for v, _ in pairs} | {j.name for _, j in pairs}) == 6
    assert sum(_frames_in(v) for v, _ in pairs) == written
    frames = [r["frame"] for _, j in pairs for r in read_keypoint_log(j)]
    assert frames == list(range(written))


def test_live_job_on_an_ipv4_camera_that_restarts_keeps_every_segment(rtsp_server, tmp_path,
                                                                      caplog):
    """The whole live job (fake network) against a real RTSP server killed and restarted twice."""
    from stages.settings import JobConfig
    from stages.jobs.live import LiveJob
    from stages.settings import LiveConfig

    server = rtsp_server()
    outdir = tmp_path / "out"
    job = LiveJob([(server.url(), None)], outdir,
                  JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48)),
                  LiveConfig(stall_timeout=1.0))
    [name] = job.names
    assert name == f"127.0.0.1_{server.port}_cam1"
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(stats=job.run()), daemon=True)

    def wait_for(predicate, what):
        deadline = time.monotonic() + 30
        while not predicate():
            assert time.monotonic() < deadline and runner.is_alive(), f"no {what}"
            time.sleep(0.02)  # polling a counter the job keeps; bounded by the deadline

    def events(kind):
        return [r for r in list(caplog.records)
                if r.name == "stages.sources.stream" and f": {kind}: " in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="stages"):
        runner.start()
        try:
            for restart in range(2):
                wait_for(lambda: job.stats[name].reconnects == restart
                         and job.stats[name].frames > 10 * (restart + 1), "frames")
                server.kill()
                wait_for(lambda: len(events("disconnected")) == restart + 1, "a disconnect")
                server.start()
            wait_for(lambda: job.stats[name].reconnects == 2, "a second reconnect")
            written = job.stats[name].frames
            wait_for(lambda: job.stats[name].frames > written + 5, "frames after it")
        finally:
            job.cancel()
            runner.join(30)
    assert not runner.is_alive() and "stats" in outcome
    started = [r.getMessage().split(" segment ")[1].split()[0] for r in caplog.records
               if " segment " in r.getMessage() and r.getMessage().endswith("started")]
    assert len(started) == 3 and len(set(started)) == 3
    pairs = _pairs(outdir / name)
    assert [v.name[:-4] for v, _ in pairs] == started  # each started segment has its pair
    assert all(j.exists() for _, j in pairs)
    frames = job.stats[name].frames
    assert sum(_frames_in(v) for v, _ in pairs) == frames
    records = [r["frame"] for _, j in pairs for r in read_keypoint_log(j)]
    assert len(records) == frames and records == sorted(records)


# -- every --format per segment, and segments without the video (issue 12, item 4) ------------

def _with_people(i: int, wall: float, size=(64, 48)) -> Result:
    from tests.stages.outputs.test_formats import _person

    result = _result(i, wall, size)
    people = () if i % 4 == 3 else (_person(i, track_id=1), _person(100 + i, track_id=2))
    return Result(result.frame, people)


def _bases(folder: Path, suffix: str) -> list[str]:
    """Names of the finished segments that have a ``suffix`` file, in segment order."""
    names = [p.name[:-len(suffix)] for p in folder.glob(f"*{suffix}")
             if not p.name.startswith((".", "live."))]  # live.jsonl follows every segment
    return sorted(names, key=lambda base: int(base.rsplit("-", 1)[1]))


ALL_FORMATS = ("jsonl", "csv", "openpose", "coco")


@pytest.mark.parametrize("name", ["cam1", "127.0.0.1"])
def test_every_format_is_written_per_segment(tmp_path, name):
    import pandas as pd

    with SegmentedOutputs(tmp_path, name, formats=ALL_FORMATS, segment_seconds=1.0) as out:
        for i in range(15):  # 1.5 s at 10 fps: two time segments
            out.write(_with_people(i, 1000.0 + i * 0.1))
        out.end_segment()
        for i in range(15, 18):
            out.write(_with_people(i, 1000.0 + i * 0.1))
    folder = tmp_path / name
    bases = _bases(folder, ".mkv")
    assert len(bases) == 3 and len(set(bases)) == 3
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{b}{suffix}" for b in bases for suffix in (".mkv", ".jsonl", ".csv", ".openpose",
                                                     ".coco.json"))
    assert out.finished == [folder / f"{b}{s}" for b in bases
                            for s in (".jsonl", ".csv", ".openpose", ".coco.json", ".mkv")]
    spans = []
    for base in bases:
        records = read_keypoint_log(folder / f"{base}.jsonl")
        spans.append([r["frame"] for r in records])
        assert all("wall" in r for r in records)
        table = pd.read_csv(folder / f"{base}.csv")
        expected = [(r, p) for r in records for p in r["people"]]
        assert list(table.columns[:8]) == ["source", "frame", "pts", "wall", "width", "height",
                                           "id", "score"]
        assert table["frame"].tolist() == [r["frame"] for r, _ in expected]
        assert table["wall"].tolist() == [r["wall"] for r, _ in expected]
        assert table["id"].tolist() == [p["id"] for _, p in expected]
        assert table["nose_x"].tolist() == [p["keypoints"][0][0] for _, p in expected]
        assert sorted(os.listdir(folder / f"{base}.openpose")) == [
            f"{base}_{r['frame']:012d}_keypoints.json" for r in records]
        coco = json.loads((folder / f"{base}.coco.json").read_text())
        assert [c["image_id"] for c in coco] == [r["frame"] for r, _ in expected]
        assert _frames_in(folder / f"{base}.mkv") == len(records)
    assert spans == [list(range(10)), list(range(10, 15)), list(range(15, 18))]


def test_without_the_video_a_segment_is_its_keypoint_files(tmp_path):
    with SegmentedOutputs(tmp_path, "cam", formats=("csv", "jsonl"), video=False,
                          segment_seconds=1.0) as out:
        for i in range(15):
            out.write(_with_people(i, 1000.0 + i * 0.1))
        out.end_segment()
        for i in range(15, 21):  # a new frame size alone starts no segment without a video
            out.write(_with_people(i, 1000.0 + i * 0.1, size=(80, 60) if i > 17 else (64, 48)))
    folder = tmp_path / "cam"
    assert not list(folder.glob("*.mkv")) and not list(folder.glob(".*"))
    bases = _bases(folder, ".jsonl")
    assert _bases(folder, ".csv") == bases and len(bases) == 3
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{b}{s}" for b in bases for s in (".jsonl", ".csv"))
    assert [[r["frame"] for r in read_keypoint_log(folder / f"{b}.jsonl")] for b in bases] == [
        list(range(10)), list(range(10, 15)), list(range(15, 21))]


def test_an_unknown_format_fails_at_start(tmp_path):
    from stages.errors import InputError

    with pytest.raises(InputError, match="--format 'xml'"):
        SegmentedOutputs(tmp_path, "cam", formats=("jsonl", "xml"))
    assert not list(tmp_path.iterdir())


def test_names_already_on_disk_in_any_format_are_skipped(tmp_path):
    """A csv-only run after a jsonl-only run in the same second gets a name of its own."""
    for formats in (("jsonl",), ("csv",)):
        with SegmentedOutputs(tmp_path, "cam", formats=formats, video=False) as out:
            out.write(_with_people(0, 1000.0))
    folder = tmp_path / "cam"
    [jsonl], [csv] = _bases(folder, ".jsonl"), _bases(folder, ".csv")
    assert jsonl != csv


KEYPOINTS_WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.stages.recording.test_segments import _with_people
from stages.recording.segments import SegmentedOutputs
out = SegmentedOutputs({outdir!r}, "cam", formats=("jsonl", "csv"), video=False,
                       segment_seconds=0.5)
t0 = time.time()
for i in range(100000):
    out.write(_with_people(i, t0 + i * 0.04))
    if i == 40:
        print("WROTE", flush=True)
"""


def test_after_sigkill_finished_keypoint_segments_parse(tmp_path):
    import pandas as pd

    code = KEYPOINTS_WRITER.format(root=str(ROOT), outdir=str(tmp_path))
    sigkill_once_it_says(code)
    folder = tmp_path / "cam"
    bases = _bases(folder, ".csv")
    assert len(bases) >= 3 and _bases(folder, ".jsonl")[:len(bases)] == bases
    frames = []
    for base in bases:
        table = pd.read_csv(folder / f"{base}.csv")
        records = read_keypoint_log(folder / f"{base}.jsonl")
        assert table["frame"].tolist() == [r["frame"] for r in records for _ in r["people"]]
        frames += [r["frame"] for r in records]
    assert frames == list(range(len(frames)))
    for partial in folder.glob(".*.csv.partial-*"):  # flushed frame by frame: the header at least
        assert partial.read_text().startswith("source,frame,pts,wall,width,height,id,score,nose_x,")


def test_live_job_writes_the_chosen_formats_per_segment_without_video(tmp_path):
    """The live job passes --format and --no-video to its segments (a lavfi camera)."""
    import pandas as pd

    from stages.settings import JobConfig
    from stages.jobs.live import LiveJob

    job = LiveJob([("lavfi:testsrc2=size=160x120:rate=25", "cam")], tmp_path / "out",
                  JobConfig(backend="tests.support.fakes:OnePersonBackend", video=False,
                            formats=("jsonl", "csv", "openpose")))
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(stats=job.run()), daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while job.stats["cam"].frames < 10:
            assert time.monotonic() < deadline and runner.is_alive(), "no frames"
            time.sleep(0.02)  # polling a counter the job keeps; bounded by the deadline
    finally:
        job.cancel()
        runner.join(30)
    assert not runner.is_alive() and "stats" in outcome
    folder = tmp_path / "out" / "cam"
    [base] = _bases(folder, ".jsonl")
    assert sorted(p.name for p in folder.iterdir()) == [f"{base}.csv", f"{base}.jsonl",
                                                         f"{base}.openpose", "live.jsonl"]
    records = read_keypoint_log(folder / f"{base}.jsonl")
    assert len(records) == job.stats["cam"].frames >= 10
    table = pd.read_csv(folder / f"{base}.csv")
    assert table["frame"].tolist() == [r["frame"] for r in records]  # one person a frame
    assert table["wall"].tolist() == [r["wall"] for r in records]
    assert (table["source"] == "cam").all() and (table["id"] == 1).all()
    assert len(os.listdir(folder / f"{base}.openpose")) == len(records)


# -- a SIGKILLed live run loses about a second of its segment's video (issue 21, item 8)

def _partial(folder: Path, suffix: str) -> Path | None:
    found = [p for p in folder.glob(f".*{suffix}.partial-*")] if folder.is_dir() else []
    return found[0] if found else None


def _lines(path: Path | None) -> int:
    try:
        return path.read_bytes().count(b"\n") if path else 0
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_a_sigkilled_live_run_keeps_its_video_up_to_about_a_second_before_the_log_ends(tmp_path):
    import signal
    import subprocess
    import sys

    rate, seconds = 25, 3  # the stream's own clock: lavfi at full speed, not in real time
    spec = f"lavfi:testsrc2=size=160x120:rate={rate}"
    folder = tmp_path / "out" / LiveSource(spec).name
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), spec, "-o",
                             str(tmp_path / "out"), "--backend", "tests.support.fakes:ZeroBackend",
                             "--resolution", "64x48", "--segment", "60"],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _lines(_partial(folder, ".jsonl")) < rate * seconds:
            assert proc.poll() is None and time.monotonic() < deadline, "no frames logged"
            time.sleep(0.05)  # polling the growing log; bounded by the deadline
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    records = read_keypoint_log(_partial(folder, ".jsonl"))
    video = _partial(folder, ".mkv")
    assert video is not None, "no partial video"
    with av.open(str(video)) as container:
        pts = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    logged = records[-1]["pts"] - records[0]["pts"]
    assert len(pts) >= len(records) - 1.5 * rate, f"{len(pts)} frames of {len(records)} logged"
    assert pts and pts[-1] >= logged - 1.5, f"video to {pts[-1] if pts else None} s of {logged} s"
