"""Issue 23: a run ends as one table (keypoints.csv, frames.csv, people.csv), and its COCO
files fit together (every per-input results file loads against the run's dataset)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import run_stream
from stages.frames import PART_NAMES
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_sample_clip, make_test_clip
from stages.outputs.tables import PEOPLE_COLUMNS, parquet_available

ROOT = Path(__file__).resolve().parents[2]
ONE_PERSON = ["--backend", "tests.support.fakes:OnePersonBackend", "--resolution", "432x368"]


def _run(argv: list) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_stream.main([str(a) for a in argv])
    return code, out.getvalue()


def _quiet(call, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return call(*args)


def _per_input_csvs(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in sorted(out.rglob("*.csv"))
                      if p.parent != out or p.name not in ("keypoints.csv", "frames.csv",
                                                           "people.csv")],
                     ignore_index=True)


def test_a_batch_ends_as_one_table_and_a_resumed_run_writes_the_same(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    make_test_clip(data / "a.mp4", frames=4, size=(96, 64))
    make_test_clip(data / "sub" / "b.mp4", frames=3, size=(80, 48))
    out = tmp_path / "out"
    code, printed = _run([data, "-o", out, *ONE_PERSON, "--format", "jsonl", "csv"])
    assert code == 0
    assert f"tables: {out / 'keypoints.csv'}, {out / 'frames.csv'}, {out / 'people.csv'}" in printed
    keypoints = pd.read_csv(out / "keypoints.csv")
    mine = {"a.mp4": pd.read_csv(out / "a.csv"), "sub/b.mp4": pd.read_csv(out / "sub" / "b.csv")}
    pd.testing.assert_frame_equal(keypoints, pd.concat(mine.values(), ignore_index=True))
    assert len(keypoints) == 7  # one person on every frame
    assert set(zip(keypoints["source"], keypoints["width"], keypoints["height"])) == {
        ("a.mp4", 96, 64), ("sub/b.mp4", 80, 48)}
    frames = pd.read_csv(out / "frames.csv")
    assert frames.groupby("source").size().to_dict() == {"a.mp4": 4, "sub/b.mp4": 3}
    assert (frames["people"] == 1).all()
    people = pd.read_csv(out / "people.csv")
    assert people[["source", "id", "first_frame", "last_frame", "frames_seen"]].values.tolist() == [
        ["a.mp4", 1, 0, 3, 4], ["sub/b.mp4", 1, 0, 2, 3]]
    schema = json.loads((out / "keypoints.schema.json").read_text())
    assert schema["parts"] == list(PART_NAMES)
    names = ("keypoints.csv", "frames.csv", "people.csv")
    before = {name: (out / name).read_bytes() for name in names}
    code, _ = _run([data, "-o", out, *ONE_PERSON, "--format", "jsonl", "csv"])  # all skipped
    assert code == 0
    assert {r["status"] for r in json.loads((out / "batch-summary.json").read_text())["files"]} == {
        "skipped"}
    assert {name: (out / name).read_bytes() for name in before} == before


def test_a_file_run_writes_the_tables_and_the_dataset_of_its_one_file(tmp_path):
    clip = make_test_clip(tmp_path / "walk.mp4", frames=5, size=(96, 64))
    out = tmp_path / "out"
    code, printed = _run([clip, "-o", out, *ONE_PERSON, "--format", "jsonl", "coco"])
    assert code == 0 and f"coco dataset: {out / 'keypoints.coco.json'}" in printed
    keypoints = pd.read_csv(out / "keypoints.csv")
    assert set(keypoints["source"]) == {str(clip)}  # as the file's own CSV would name it
    assert list(keypoints["frame"]) == list(range(5))
    assert len(pd.read_csv(out / "frames.csv")) == len(read_keypoint_log(out / "walk.jsonl")) == 5
    gt = _quiet(COCO, str(out / "keypoints.coco.json"))
    assert [i["file_name"] for i in gt.dataset["images"]] == ["walk.mp4"] * 5
    results = _quiet(gt.loadRes, str(out / "walk.coco.json"))
    assert len(results.getAnnIds()) == 5
    assert all(0 <= a["score"] <= 1 for a in results.loadAnns(results.getAnnIds()))


def test_without_tracking_people_csv_has_no_rows_and_the_run_says_why(tmp_path):
    clip = make_test_clip(tmp_path / "walk.mp4", frames=3, size=(96, 64))
    code, printed = _run([clip, "-o", tmp_path / "out", *ONE_PERSON, "--no-track"])
    assert code == 0
    assert "people.csv: no rows: without tracking (--no-track)" in printed
    people = pd.read_csv(tmp_path / "out" / "people.csv")
    assert people.empty and tuple(people.columns) == PEOPLE_COLUMNS
    keypoints = pd.read_csv(tmp_path / "out" / "keypoints.csv")
    assert len(keypoints) == 3 and keypoints["id"].isna().all()


def test_without_the_jsonl_logs_no_table_is_written_and_the_run_says_why(tmp_path):
    clip = make_test_clip(tmp_path / "walk.mp4", frames=3, size=(96, 64))
    out = tmp_path / "out"
    code, printed = _run([clip, "-o", out, *ONE_PERSON, "--format", "csv"])
    assert code == 0 and "tables: not written: they are made from the .jsonl logs" in printed
    assert sorted(os.listdir(out)) == ["walk.csv", "walk.mp4"]


def test_a_stopped_batch_has_tables_of_its_finished_files_only(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_test_clip(data / "a.mp4", frames=3, size=(64, 48))
    make_test_clip(data / "b.mp4", frames=40, size=(64, 48))
    make_test_clip(data / "c.mp4", frames=3, size=(64, 48))
    out = tmp_path / "out"
    # SIGINT on the 20th frame through the network: b's 17th. One worker, one file in flight and
    # queues of one keep what is in flight behind it to a few frames: a's three are written.
    env = dict(os.environ, PYTHONPATH=str(ROOT), POSESTREAM_FAKE_SIGNAL_AT="20")
    done = subprocess.run(
        [sys.executable, str(ROOT / "run_stream.py"), str(data), "-o", str(out),
         "--backend", "tests.support.fakes:SignalAtBackend", "--resolution", "64x48",
         "--workers", "1", "--queue-size", "1", "--files-in-flight", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    summary = json.loads((out / "batch-summary.json").read_text())
    rows = {r["input"]: r["status"] for r in summary["files"]}
    assert rows == {"a.mp4": "done", "b.mp4": "interrupted", "c.mp4": "pending"}
    assert not (out / "b.jsonl").exists()  # its first frames: kept aside, not in place...
    assert len(read_keypoint_log(out / ".partial" / "b" / "b.jsonl.partial")) >= 10
    frames = pd.read_csv(out / "frames.csv")  # ...but not in the tables (nobody is found here)
    assert frames["source"].tolist() == ["a.mp4"] * 3 and frames["frame"].tolist() == [0, 1, 2]
    assert pd.read_csv(out / "keypoints.csv").empty


@pytest.mark.slow
def test_three_clips_with_people_through_the_real_model(tmp_path):
    """The acceptance run: a batch of three short H.264 clips of real photos of people,
    through the command line and the default model."""
    data = tmp_path / "data"
    (data / "day2").mkdir(parents=True)
    for name, seconds in (("a.mp4", 0.3), ("b.mp4", 0.4), ("day2/c.mp4", 0.5)):
        make_sample_clip(data / name, seconds=seconds, fps=Fraction(10), size=(320, 180))
    out = tmp_path / "out"
    code, printed = _run([data, "-o", out, "--resolution", "320x176",
                          "--format", "jsonl", "csv", "coco"])
    assert code == 0, printed
    keypoints = pd.read_csv(out / "keypoints.csv")
    frames = pd.read_csv(out / "frames.csv")
    people = pd.read_csv(out / "people.csv")
    logs = {name: out / name.replace(".mp4", ".jsonl") for name in ("a.mp4", "b.mp4", "day2/c.mp4")}
    records = {source: read_keypoint_log(path) for source, path in logs.items()}
    assert {s: len(r) for s, r in records.items()} == {"a.mp4": 3, "b.mp4": 4, "day2/c.mp4": 5}

    per_input = _per_input_csvs(out)
    people_in_logs = sum(len(r["people"]) for log in records.values() for r in log)
    assert len(keypoints) == len(per_input) == people_in_logs
    assert len(keypoints) >= 2 * 12  # the two people of every frame were found
    assert frames.groupby("source").size().to_dict() == {s: len(r) for s, r in records.items()}
    assert frames["people"].tolist() == [len(r["people"]) for rs in records.values() for r in rs]
    assert set(zip(frames["width"], frames["height"])) == {(320, 180)}

    assert not people.empty and set(people["source"]) == set(logs)
    seen = keypoints.groupby(["source", "id"]).size().to_dict()
    assert {(r.source, r.id): r.frames_seen for r in people.itertuples()} == seen
    assert ((people["nose_found"] >= 0) & (people["nose_found"] <= 1)).all()

    gt = _quiet(COCO, str(out / "keypoints.coco.json"))
    assert len(gt.getImgIds()) == len(frames)
    results = []
    for source in logs:
        path = out / source.replace(".mp4", ".coco.json")
        loaded = _quiet(gt.loadRes, str(path))  # each file as it is
        mine = loaded.loadAnns(loaded.getAnnIds())
        assert {gt.loadImgs(a["image_id"])[0]["file_name"] for a in mine} == {source}
        results += json.loads(path.read_text())
    assert len(results) == len(keypoints)
    assert all(0 <= r["score"] <= 1 for r in results)
    assert all(0 <= a["score"] <= 1 for a in gt.dataset["annotations"])
    evaluation = COCOeval(gt, _quiet(gt.loadRes, results), "keypoints")
    for step in (evaluation.evaluate, evaluation.accumulate, evaluation.summarize):
        _quiet(step)
    assert evaluation.stats[0] == pytest.approx(1.0)  # the detections against themselves

    if parquet_available():
        import pyarrow.parquet as pq
        assert pq.read_table(out / "keypoints.parquet").num_rows == len(keypoints)
