"""Batch progress over the whole batch, and summaries that add up on a resumed batch."""

import io
import json
import sys
from types import SimpleNamespace

import pytest

import run_stream
from stages.jobs.batch import BatchJob
from stages.display.console import (BatchProgress, batch_progress, batch_totals,
                                    print_batch_table)
from stages.sources.inputs import expand_inputs
from stages.settings import JobConfig
from stages.sources.probe import declared_frames, expected_frames
from stages.outputs.sample import make_test_clip

FAKE = JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), workers=2)
ONE_PERSON = ["--backend", "tests.support.fakes:OnePersonBackend", "--resolution", "432x368"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _result(key: str):
    return SimpleNamespace(frame=SimpleNamespace(source=key))


@pytest.fixture
def clips(tmp_path):
    """Three clips of 4, 6 and 8 frames."""
    data = tmp_path / "data"
    data.mkdir()
    for name, n in (("a.mp4", 4), ("b.mp4", 6), ("c.mov", 8)):
        make_test_clip(data / name, frames=n)
    return data


def _summary(out):
    return json.loads((out / "batch-summary.json").read_text())


def test_a_resumed_batch_keeps_each_files_figures_from_its_manifest_and_totals_add_up(
        clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_stream.main([str(clips), "-o", str(out), *ONE_PERSON]) == 0
    first = _summary(out)
    capsys.readouterr()
    assert run_stream.main([str(clips), "-o", str(out), *ONE_PERSON]) == 0
    printed = capsys.readouterr().out
    second = _summary(out)

    before = {r["input"]: r for r in first["files"]}
    after = {r["input"]: r for r in second["files"]}
    assert {k: r["status"] for k, r in after.items()} == dict.fromkeys(("a.mp4", "b.mp4", "c.mov"), "skipped")
    for key, row in after.items():
        assert row["frames"] == before[key]["frames"] == {"a.mp4": 4, "b.mp4": 6, "c.mov": 8}[key]
        assert row["mean_people"] == before[key]["mean_people"] == 1.0
        assert row["people"] == row["frames"]
        assert row["fps"] == pytest.approx(before[key]["fps"], rel=0.01) and row["fps"] > 0
        assert row["engine"]["backend"] == "tests.support.fakes:OnePersonBackend"
    assert first["totals"]["done"] == 3 and first["totals"]["frames"] == 18
    totals = second["totals"]
    assert {k: totals[k] for k in ("files", "done", "skipped", "failed", "interrupted", "pending")} == \
        {"files": 3, "done": 0, "skipped": 3, "failed": 0, "interrupted": 0, "pending": 0}
    assert totals["frames"] == sum(r["frames"] for r in second["files"]) == 18
    assert totals["people_per_frame"] == 1.0 and totals["seconds"] >= 0
    assert "total: 3 files" in printed and "3 skipped" in printed
    assert printed.count("1.00") >= 4  # people/frame of each file and of the totals row


def test_a_manifest_from_before_people_and_seconds_shows_what_it_knows(clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_stream.main([str(clips), "-o", str(out), *ONE_PERSON]) == 0
    old = out / "a.manifest.json"
    data = json.loads(old.read_text())
    for key in ("people", "seconds", "truncated", "frames_lost"):
        data.pop(key)
    old.write_text(json.dumps(data))
    capsys.readouterr()
    assert run_stream.main([str(clips), "-o", str(out), *ONE_PERSON]) == 0
    printed = capsys.readouterr().out
    summary = _summary(out)
    rows = {r["input"]: r for r in summary["files"]}
    assert rows["a.mp4"]["status"] == "skipped" and rows["a.mp4"]["frames"] == 4
    assert rows["a.mp4"]["mean_people"] is None and rows["a.mp4"]["fps"] is None
    assert rows["b.mp4"]["mean_people"] == 1.0
    assert summary["totals"]["frames"] == 18  # frames are known for all
    assert summary["totals"]["people_per_frame"] == 1.0  # over the 14 frames whose people are known
    a_line = next(line for line in printed.splitlines() if "a.mp4" in line)
    assert " - " in a_line


def test_totals_count_every_status_and_the_frames_this_run_processed():
    rows = [{"input": "a", "status": "done", "frames": 10, "people": 20},
            {"input": "b", "status": "skipped", "frames": 30, "people": None},
            {"input": "c", "status": "failed", "frames": 0, "people": 0},
            {"input": "d", "status": "interrupted", "frames": 5, "people": 0},
            {"input": "e", "status": "pending", "frames": 0, "people": 0}]
    totals = batch_totals(rows, 5.0)
    assert totals == {"files": 5, "done": 1, "skipped": 1, "failed": 1, "interrupted": 1, "pending": 1,
                      "frames": 45, "people_per_frame": round(20 / 15, 3), "seconds": 5.0, "fps": 3.0}
    assert "people_per_frame" not in batch_totals([{"input": "b", "status": "skipped", "frames": 3,
                                                    "people": None}], 1.0)


def test_progress_totals_come_from_declared_frame_counts_and_skipped_files_are_done_at_once(
        clips, tmp_path):
    out = tmp_path / "out"
    BatchJob(expand_inputs([str(clips / "b.mp4")]), out, FAKE).run()  # b is done before the batch
    items = expand_inputs([str(clips)])
    job = BatchJob(items, out, FAKE)
    stream = io.StringIO()
    with batch_progress(items, job.reports, FAKE, tty=False, stream=stream) as progress:
        assert (progress.total_files, progress.files_done) == (3, 1)
        assert (progress.total_frames, progress.frames) == (18, 6)
        assert progress.eta is None  # nothing processed yet
        job.run(on_result=progress.frame_done, on_file=lambda r: progress.file_done(r.as_dict()))
    assert (progress.files_done, progress.frames, progress.total_frames) == (3, 18, 18)
    assert progress.run_frames == 12 and progress.eta == 0.0


def test_without_a_terminal_a_plain_line_comes_every_interval(clips):
    clock, stream = FakeClock(), io.StringIO()
    progress = BatchProgress(3, {"a.mp4": 4, "b.mp4": 6, "c.mov": 8}, tty=False, interval=30,
                             clock=clock, stream=stream)
    with progress:
        clock.now += 1
        progress.frame_done(_result("a.mp4"))
        assert stream.getvalue() == ""  # not yet 30 s
        clock.now += 1
        for _ in range(3):
            progress.frame_done(_result("a.mp4"))
        progress.file_done({"input": "a.mp4", "status": "done", "frames": 4})
        assert stream.getvalue() == ""
        clock.now += 28  # 30 s since the start: 4 frames in 30 s, 14 to go
        progress.frame_done(_result("b.mp4"))
        assert stream.getvalue().splitlines() == \
            ["batch: 1/3 files, 5/18 frames, 0.2 FPS, ETA 0:01:18"]
        clock.now += 10
        progress.frame_done(_result("b.mp4"))
        assert len(stream.getvalue().splitlines()) == 1  # the next one is due 30 s after it


def test_the_periodic_line_of_a_real_batch_has_the_batch_figures(clips, tmp_path):
    items = expand_inputs([str(clips)])
    job = BatchJob(items, tmp_path / "out", FAKE)
    stream = io.StringIO()
    with batch_progress(items, job.reports, FAKE, tty=False, interval=0, stream=stream) as progress:
        job.run(on_result=progress.frame_done, on_file=lambda r: progress.file_done(r.as_dict()))
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 18 and all(line.startswith("batch: ") for line in lines)
    assert any(line.startswith("batch: 0/3 files, 1/18 frames, ") for line in lines)
    assert lines[-1].startswith("batch: 3/3 files, 18/18 frames, ") and lines[-1].endswith("ETA 0:00:00")


def test_unknown_frame_counts_leave_the_total_open_until_those_files_finish(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    paths = [make_test_clip(data / "raw.h264", frames=6), make_test_clip(data / "clip.mkv", frames=5),
             make_test_clip(data / "clip.mp4", frames=7)]
    assert declared_frames(paths[0]) is None and declared_frames(paths[1]) is None
    items = expand_inputs([str(p) for p in paths])
    job = BatchJob(items, tmp_path / "out", FAKE, lanes=1)
    stream = io.StringIO()
    with batch_progress(items, job.reports, FAKE, tty=False, interval=0, stream=stream) as progress:
        assert progress.total_frames is None and progress.eta is None
        assert progress.line().startswith("batch: 0/3 files, 0 (total unknown) frames, 0.0 FPS, ETA unknown")
        reports = job.run(on_result=progress.frame_done, on_file=lambda r: progress.file_done(r.as_dict()))
    assert {r.status for r in reports.values()} == {"done"}
    assert (progress.files_done, progress.frames, progress.total_frames) == (3, 18, 18)
    assert "(total unknown)" in stream.getvalue() and stream.getvalue().splitlines()[-1].startswith(
        "batch: 3/3 files, 18/18 frames")


def test_expected_frames_follow_stride_and_range(tmp_path):
    clip = make_test_clip(tmp_path / "c.mp4", frames=50)  # 2 s at 25 FPS
    assert expected_frames(clip) == 50
    assert expected_frames(clip, frame_step=5) == 10
    assert expected_frames(clip, start=1.0) == 25
    assert expected_frames(clip, start=0.5, end=1.5, frame_step=5) == 5
    still = tmp_path / "x.png"
    still.write_bytes(b"not read")
    assert expected_frames(still, frame_step=5) == 1


def test_bars_on_a_terminal_count_the_same_figures():
    with BatchProgress(2, {"a": 2, "b": None}, tty=True, settled=[{"input": "b", "status": "skipped",
                                                                 "frames": 3}]) as progress:
        assert (progress.files_done, progress.frames, progress.total_frames) == (1, 3, 5)
        progress.frame_done(_result("a"))
        progress.file_done({"input": "a", "status": "done", "frames": 2})
        progress.frame_done(_result("a"))  # the last frame's result follows its file's end
    assert (progress.files_done, progress.frames, progress.total_frames, progress.run_frames) == (2, 5, 5, 2)


ROWS = [{"input": "a.mp4", "status": "done", "frames": 4, "mean_people": 1.0, "fps": 20.0,
         "error": ""},
        {"input": "b.mp4", "status": "skipped", "frames": 6, "mean_people": None, "fps": None,
         "error": ""},
        {"input": "broken.mp4", "status": "failed", "frames": 0, "mean_people": None,
         "fps": None, "error": "cannot decode"}]
TOTALS = {"files": 3, "done": 1, "skipped": 1, "failed": 1, "interrupted": 0, "pending": 0,
          "frames": 10, "people_per_frame": 1.0, "seconds": 0.25, "fps": 16.0}
BOX = set("┏┓┗┛┃│━─┡┩└┘┌┐")


def test_the_batch_table_is_plain_lines_when_stdout_is_not_a_terminal(capsys):
    print_batch_table(ROWS, TOTALS)  # pytest's captured stdout is no terminal
    out = capsys.readouterr().out
    assert not BOX & set(out), out
    assert out.splitlines() == [
        "a.mp4: done, 4 frames, 1.00 people/frame, 20.0 FPS",
        "b.mp4: skipped, 6 frames, - people/frame, - FPS",
        "broken.mp4: failed, 0 frames, - people/frame, - FPS; error: cannot decode",
        "total: 3 files: 1 done, 1 skipped, 1 failed, 10 frames, 1.00 people/frame, 16.0 FPS, "
        "0.2 s wall time"]


def test_the_batch_table_is_a_table_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    print_batch_table(ROWS, TOTALS)
    out = capsys.readouterr().out
    assert BOX & set(out) and "people/frame" in out and "broken.mp4" in out
    assert "total: 3 files" in out and "total: 3 files:" not in out  # the table's totals row
    capsys.readouterr()
    print_batch_table(ROWS, TOTALS, tty=False)  # the caller's word wins
    assert not BOX & set(capsys.readouterr().out)
