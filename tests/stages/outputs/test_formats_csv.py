"""The CSV keypoint table: pandas reads it as is, with the values of the JSON Lines log."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np
import pandas as pd
import pytest

import run_stream
from stages.errors import OutputError
from stages.outputs.formats import CsvWriter, csv_columns, make_writers
from stages.frames import PART_NAMES, Frame, Result
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip
from tests.stages.outputs.test_formats import _person, _results
from tests.support.tables import RUN_TABLES

PEOPLE = "tests.support.fakes:OnePersonBackend"


def _write(tmp_path, results, *, wall_clock=False, formats=("jsonl", "csv")):
    writers = make_writers(formats, tmp_path, "clip", wall_clock=wall_clock)
    for result in results:
        for writer in writers:
            writer.write(result)
    for writer in writers:
        writer.close()


def _assert_matches_jsonl(table: pd.DataFrame, records: list[dict], source: str) -> None:
    """Every row is one person of the log, in order, with the same numbers."""
    expected = [(r, p) for r in records for p in r["people"]]
    assert len(table) == len(expected)
    for (_, row), (record, person) in zip(table.iterrows(), expected):
        assert row["source"] == source
        assert row["frame"] == record["frame"] and row["pts"] == record["pts"]
        assert (row["width"], row["height"]) == (record["width"], record["height"])
        assert row["score"] == person["score"]
        if "id" in person:
            assert row["id"] == person["id"]
        else:
            assert math.isnan(row["id"])
        for name, (x, y, c) in zip(PART_NAMES, person["keypoints"]):
            if c == 0:  # missing: no coordinates, confidence 0
                assert math.isnan(row[f"{name}_x"]) and math.isnan(row[f"{name}_y"])
                assert row[f"{name}_c"] == 0.0
            else:
                assert (row[f"{name}_x"], row[f"{name}_y"], row[f"{name}_c"]) == (x, y, c)


@pytest.mark.parametrize("tracked", [False, True], ids=["untracked", "tracked"])
def test_pandas_reads_the_table_with_the_values_of_the_jsonl(tmp_path, tracked):
    _write(tmp_path, _results(tracked))
    table = pd.read_csv(tmp_path / "clip.csv")
    assert list(table.columns) == ["source", "frame", "pts", "width", "height", "id", "score"] + [
        f"{name}_{axis}" for name in PART_NAMES for axis in "xyc"]
    assert "nose_x" in table and "r_shoulder_c" in table and "l_ear_y" in table
    assert table["frame"].dtype == table["width"].dtype == table["height"].dtype == np.int64
    assert set(table["width"]) == {640} and set(table["height"]) == {480}  # the frame size
    assert table["pts"].dtype == table["score"].dtype == np.float64
    assert table["id"].dtype == (np.int64 if tracked else np.float64)
    assert all(table[f"{name}_{axis}"].dtype == np.float64 for name in PART_NAMES for axis in "xyc")
    assert pd.api.types.is_string_dtype(table["source"])
    records = read_keypoint_log(tmp_path / "clip.jsonl")
    assert list(table["frame"]) == [0, 0, 1, 3, 3, 5]  # one row per person; frames 2, 4 empty
    _assert_matches_jsonl(table, records, "clip")
    assert table["r_elbow_x"].isna().all() and (table["r_elbow_c"] == 0).all()
    assert table["nose_x"].notna().all()


def test_wall_clock_adds_the_wall_column(tmp_path):
    results = [Result(frame=Frame(source="cam1", index=i, pts=i / 25, wall=1_700_000_000.25 + i,
                                  image=np.zeros((4, 4, 3), np.uint8)), people=(_person(i),))
               for i in range(3)]
    _write(tmp_path, results, wall_clock=True)
    table = pd.read_csv(tmp_path / "clip.csv")
    assert list(table.columns[:8]) == ["source", "frame", "pts", "wall", "width", "height", "id",
                                       "score"]
    assert table["wall"].dtype == np.float64
    assert list(table["wall"]) == [r["wall"] for r in read_keypoint_log(tmp_path / "clip.jsonl")]
    assert list(table["wall"]) == [1_700_000_000.25, 1_700_000_001.25, 1_700_000_002.25]


def test_a_run_with_nobody_is_a_header_alone(tmp_path):
    empty = [r for r in _results(False) if not r.people]
    _write(tmp_path, empty, formats=("csv",))
    assert (tmp_path / "clip.csv").read_text() == ",".join(csv_columns()) + "\n"
    table = pd.read_csv(tmp_path / "clip.csv")
    assert table.empty and list(table.columns) == csv_columns()


def test_a_never_found_part_stays_float_and_names_are_quoted(tmp_path):
    """A part missing in every row is still a float column; a comma in a name is quoted."""
    frame = Frame(source="hall, east", index=7, pts=0.0, image=np.zeros((4, 4, 3), np.uint8))
    with CsvWriter(tmp_path / "t.csv") as writer:
        writer.write(Result(frame=frame, people=(_person(1, missing=(0,)),)))
    table = pd.read_csv(tmp_path / "t.csv")
    assert table["source"].tolist() == ["hall, east"]
    assert table["nose_c"].dtype == np.float64 and table["nose_c"].tolist() == [0.0]
    assert table["pts"].dtype == np.float64 and table["pts"].tolist() == [0.0]


def test_nothing_until_closed_and_nothing_written_keeps_the_old_table(tmp_path):
    (tmp_path / "clip.csv").write_text("old\n")
    CsvWriter(tmp_path / "clip.csv").close()  # no frame: the old table stays
    assert (tmp_path / "clip.csv").read_text() == "old\n"
    writer = CsvWriter(tmp_path / "clip.csv")
    writer.write(_results(False)[0])
    assert (tmp_path / "clip.csv").read_text() == "old\n"
    assert len(writer.tmp.read_text().splitlines()) == 3  # flushed: header and two rows
    writer.close()
    writer.close()
    assert len(pd.read_csv(tmp_path / "clip.csv")) == 2
    assert os.listdir(tmp_path) == ["clip.csv"]
    with pytest.raises(OutputError, match="after close"):
        writer.write(_results(False)[1])
    with pytest.raises(OutputError, match="cannot create"):
        CsvWriter(tmp_path / "missing" / "t.csv")


# -- through the command line: file, image and batch runs -------------------------------------

def _cli(capsys, *args) -> int:
    code = run_stream.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return code


def test_file_run_writes_the_csv_in_its_output_set(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "walk.mp4", frames=6, size=(96, 64))
    _cli(capsys, clip, "-o", tmp_path / "out", "--backend", PEOPLE, "--format", "jsonl", "csv")
    assert sorted(os.listdir(tmp_path / "out")) == sorted(["walk.csv", "walk.jsonl", "walk.mp4",
                                                           *RUN_TABLES])
    table = pd.read_csv(tmp_path / "out" / "walk.csv")
    records = read_keypoint_log(tmp_path / "out" / "walk.jsonl")
    assert list(table["frame"]) == list(range(6))  # one person on every frame, tracked
    assert table["id"].dtype == np.int64 and set(table["id"]) == {1}
    _assert_matches_jsonl(table, records, str(clip))  # the source as given


def test_image_and_batch_runs_write_a_csv_per_input(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((64, 96, 3), 90, np.uint8))
    _cli(capsys, tmp_path / "photo.png", "-o", tmp_path / "img", "--backend", PEOPLE,
         "--format", "csv", "--no-track")
    table = pd.read_csv(tmp_path / "img" / "photo.csv")
    assert list(table["frame"]) == [0] and table["id"].isna().all()
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_test_clip(folder / name, frames=3, size=(96, 64))
    _cli(capsys, folder, "-o", tmp_path / "out", "--backend", PEOPLE, "--format", "csv", "jsonl")
    for stem in ("a", "b"):
        table = pd.read_csv(tmp_path / "out" / f"{stem}.csv")
        _assert_matches_jsonl(table, read_keypoint_log(tmp_path / "out" / f"{stem}.jsonl"),
                              f"{stem}.mp4")  # a batch names an input from its root


def test_a_resumed_batch_trusts_a_whole_csv_and_redoes_a_cut_one(tmp_path):
    from stages.jobs.batch import BatchJob
    from stages.sources.inputs import expand_inputs
    from stages.settings import JobConfig

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_test_clip(folder / name, frames=3, size=(96, 64))
    config = JobConfig(backend=PEOPLE, formats=("csv",))
    out = tmp_path / "out"
    BatchJob(expand_inputs([str(folder)]), out, config).run()
    assert len(pd.read_csv(out / "a.csv")) == len(pd.read_csv(out / "b.csv")) == 3
    text = (out / "b.csv").read_text()
    (out / "b.csv").write_text(text[:-10])  # cut mid-row, e.g. copied before it was whole
    again = BatchJob(expand_inputs([str(folder)]), out, config)
    assert again.todo == 1
    reports = again.run()
    assert {k: r.status for k, r in reports.items()} == {"a.mp4": "skipped", "b.mp4": "done"}
    assert (out / "b.csv").read_text() == text
