"""A run's tables from its inputs' logs: pandas reads them as they are, with the numbers of
the per-input CSV and JSON Lines."""

from __future__ import annotations

import errno
import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.errors import OutputError
from stages.frames import PART_NAMES
from stages.outputs import atomic
from stages.outputs.formats import csv_columns, make_writers
from stages.outputs.keypoint_log import log_schema, read_keypoint_log
from stages.outputs.sample import make_test_clip
from stages.outputs.tables import (FRAME_COLUMNS, PEOPLE_COLUMNS, TableInput, TablePaths,
                                   table_inputs, write_tables)
from stages.sources.inputs import expand_inputs
from tests.stages.outputs.test_formats import _results


def _input(folder: Path, source: str, results, tracked=True) -> TableInput:
    """The logs of one input named ``source``: its JSON Lines and, to compare, its CSV."""
    results = [replace(r, frame=replace(r.frame, source=source)) for r in results]
    writers = make_writers(("jsonl", "csv"), folder, source)
    for result in results:
        for writer in writers:
            writer.write(result)
    for writer in writers:
        writer.close()
    return TableInput(source, folder / f"{source}.jsonl")


def _tracked_twice() -> list:
    """Six frames in which person 1 is in 0, 1, 3, 5 and person 2 in 0 and 3, then frames 9,
    10 and 11: person 1 has left, person 2 is back in 9 and 11."""
    first = _results(True)
    later = [replace(r, frame=replace(r.frame, index=r.frame.index + 6, pts=r.frame.pts + 0.24),
                     people=tuple(replace(p, track_id=2) for p in r.people[:1]))
             for r in first if r.frame.index >= 3]
    return first + later


@pytest.fixture
def run(tmp_path):
    """Two inputs' logs, and their tables."""
    inputs = [_input(tmp_path, "a", _tracked_twice()), _input(tmp_path, "b", _results(True))]
    paths = TablePaths.of(tmp_path / "out")
    (tmp_path / "out").mkdir()
    counts = write_tables(paths, inputs, parquet=False)
    return paths, inputs, counts


def test_keypoints_csv_is_the_inputs_csvs_one_after_another(run, tmp_path):
    paths, inputs, counts = run
    table = pd.read_csv(paths.keypoints)
    assert list(table.columns) == csv_columns()
    assert table["frame"].dtype == table["width"].dtype == table["id"].dtype == np.int64
    assert table["pts"].dtype == table["score"].dtype == table["nose_x"].dtype == np.float64
    parts = [pd.read_csv(tmp_path / f"{i.source}.csv") for i in inputs]
    pd.testing.assert_frame_equal(table, pd.concat(parts, ignore_index=True))
    assert len(table) == counts.rows == sum(len(p) for p in parts) == 8 + 6
    header, *rows = paths.keypoints.read_text().splitlines()  # byte for byte, too
    assert rows == [line for i in inputs
                    for line in (tmp_path / f"{i.source}.csv").read_text().splitlines()[1:]]


def test_frames_csv_has_every_frame_people_or_not(run):
    paths, inputs, counts = run
    table = pd.read_csv(paths.frames)
    assert tuple(table.columns) == FRAME_COLUMNS
    assert all(table[c].dtype == np.int64 for c in ("frame", "width", "height", "people"))
    records = [(i.source, r) for i in inputs for r in read_keypoint_log(i.log)]
    assert len(table) == counts.frames == len(records) == 9 + 6
    assert list(zip(table["source"], table["frame"], table["pts"], table["people"])) == [
        (source, r["frame"], r["pts"], len(r["people"])) for source, r in records]
    assert (table["people"] == 0).sum() == 3 + 2  # the empty frames are there
    assert set(zip(table["width"], table["height"])) == {(640, 480)}


def test_people_csv_follows_each_track_of_each_input(run):
    paths, inputs, counts = run
    table = pd.read_csv(paths.people)
    assert tuple(table.columns) == PEOPLE_COLUMNS
    assert len(PEOPLE_COLUMNS) == 9 + len(PART_NAMES)
    assert list(zip(table["source"], table["id"])) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert counts.people == 4
    for row in table.itertuples(index=False):
        log = read_keypoint_log(next(i.log for i in inputs if i.source == row.source))
        seen = [(r, p) for r in log for p in r["people"] if p["id"] == row.id]
        (first, _), (last, _) = seen[0], seen[-1]
        assert (row.first_frame, row.last_frame) == (first["frame"], last["frame"])
        assert (row.first_pts, row.last_pts) == (first["pts"], last["pts"])
        assert row.duration == pytest.approx(last["pts"] - first["pts"])
        assert row.frames_seen == len(seen)
        assert row.mean_score == pytest.approx(np.mean([p["score"] for _, p in seen]), abs=1e-4)
        for k, name in enumerate(PART_NAMES):
            share = np.mean([p["keypoints"][k][2] > 0 for _, p in seen])
            assert getattr(row, f"{name}_found") == pytest.approx(share, abs=1e-4)
    a2 = table[(table["source"] == "a") & (table["id"] == 2)].iloc[0]
    # seen at 0 and 3, then at 9 and 11: four frames over a span of twelve
    assert (a2["first_frame"], a2["last_frame"], a2["frames_seen"]) == (0, 11, 4)
    assert a2["duration"] == pytest.approx(11 / 25 + 0.0, abs=1e-6)
    assert a2["r_elbow_found"] == 0 and a2["nose_found"] == 1  # _person leaves parts 3, 9 out


def test_without_tracking_people_csv_has_its_header_alone(tmp_path):
    inputs = [_input(tmp_path, "u", _results(False))]
    (tmp_path / "out").mkdir()
    paths = TablePaths.of(tmp_path / "out")
    counts = write_tables(paths, inputs, parquet=False)
    people = pd.read_csv(paths.people)
    assert people.empty and tuple(people.columns) == PEOPLE_COLUMNS and counts.people == 0
    keypoints = pd.read_csv(paths.keypoints)
    assert len(keypoints) == 6 and keypoints["id"].isna().all()  # the rows are all there


def test_an_input_whose_log_cannot_be_read_back_is_left_out_of_every_table(tmp_path, caplog):
    good = _input(tmp_path, "good", _results(True))
    cut = _input(tmp_path, "cut", _results(True))
    lines = cut.log.read_text().splitlines()
    lines[3] = "{not json"
    cut.log.write_text("\n".join(lines) + "\n")
    alien = tmp_path / "alien.jsonl"
    alien.write_text('{"frame": 0, "pts": 0.0, "people": []}\n{"frame": 1, "people": [{}]}\n')
    inputs = [cut, TableInput("alien", alien), TableInput("gone", tmp_path / "gone.jsonl"), good]
    (tmp_path / "out").mkdir()
    paths = TablePaths.of(tmp_path / "out")
    counts = write_tables(paths, inputs, parquet=False)
    assert counts.inputs == 1
    for path in (paths.keypoints, paths.frames, paths.people):
        assert set(pd.read_csv(path)["source"]) == {"good"}  # rows begun were taken back
    assert len(pd.read_csv(paths.frames)) == 6
    for name in ("cut", "alien", "gone"):
        assert f"{name}: left out of the tables" in caplog.text


def test_the_tables_appear_together_and_a_failure_keeps_the_previous_ones(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    paths = TablePaths.of(out)
    write_tables(paths, [_input(tmp_path, "a", _results(True))], parquet=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["frames.csv", "keypoints.csv", "keypoints.schema.json", "people.csv"]
    replace_file = os.replace

    def full_disk(src, dst):  # the people table cannot be put in place
        if Path(dst) == paths.people and ".partial-" in Path(src).name:
            raise OSError(errno.ENOSPC, "No space left on device")
        replace_file(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    with pytest.raises(OutputError):
        write_tables(paths, [_input(tmp_path, "b", _results(True))], parquet=False)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old ones, whole


def test_the_schema_beside_the_tables_names_the_parts_of_the_log(run):
    paths, inputs, _ = run
    schema = json.loads(paths.schema.read_text())
    assert schema == log_schema() and schema["parts"] == list(PART_NAMES)
    line = schema["$defs"]["person"]["properties"]["keypoints"]
    assert [p["title"] for p in line["prefixItems"]] == list(PART_NAMES)
    for record in read_keypoint_log(inputs[0].log):
        assert set(schema["required"]) <= set(record) <= set(schema["properties"])
        for person in record["people"]:
            assert set(person) <= set(schema["$defs"]["person"]["properties"])
            assert len(person["keypoints"]) == len(schema["parts"])


def test_table_names_stay_clear_of_an_inputs_own_outputs(tmp_path):
    data = tmp_path / "in"
    (data / "sub").mkdir(parents=True)
    make_test_clip(data / "sub" / "people.mp4", frames=1)  # not at the root: no clash
    make_test_clip(data / "clip.mp4", frames=1)
    out = tmp_path / "out"
    paths = TablePaths.of(out, expand_inputs([str(data)]))
    assert [p.name for p in (paths.keypoints, paths.frames, paths.people, paths.parquet)] == [
        "keypoints.csv", "frames.csv", "people.csv", "keypoints.parquet"]
    for name in ("keypoints.mp4", "people.mov", "people.table.mp4"):
        make_test_clip(data / name, frames=1)
    paths = TablePaths.of(out, expand_inputs([str(data)]))
    assert [p.name for p in (paths.keypoints, paths.frames, paths.people, paths.parquet)] == [
        "keypoints.table.csv", "frames.csv", "people.table-1.csv", "keypoints.table.parquet"]


class _Report:
    def __init__(self, status, outputs=()):
        self.status, self.outputs = status, list(outputs)


def test_table_inputs_are_the_finished_inputs_with_a_log(tmp_path):
    for name in ("a.mp4", "b.mp4", "c.mp4", "d.mp4"):
        make_test_clip(tmp_path / name, frames=1)
    items = expand_inputs([str(tmp_path)])
    reports = {"a.mp4": _Report("done", ["o/a.mp4", "o/a.jsonl"]),
               "b.mp4": {"status": "skipped", "outputs": ["o/b.jsonl"]},  # a cluster's dict
               "c.mp4": _Report("interrupted", ["o/c.jsonl"]),
               "d.mp4": _Report("done", ["o/d.csv"])}
    assert table_inputs(items, reports) == [TableInput("a.mp4", Path("o/a.jsonl")),
                                            TableInput("b.mp4", Path("o/b.jsonl"))]


def test_parquet_holds_the_keypoints_table(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    inputs = [_input(tmp_path, "a", _results(True)), _input(tmp_path, "b, north", _results(False))]
    (tmp_path / "out").mkdir()
    paths = TablePaths.of(tmp_path / "out")
    counts = write_tables(paths, inputs)  # pyarrow is importable: the default writes it
    assert counts.parquet and paths.parquet.is_file()
    table = pq.read_table(paths.parquet)
    assert table.column_names == csv_columns()
    types = {f.name: str(f.type) for f in table.schema}
    assert types["source"] == "string" and types["frame"] == types["id"] == "int64"
    assert types["width"] == types["height"] == "int64" and types["nose_x"] == "double"
    rows = table.to_pylist()
    from_csv = pd.read_csv(paths.keypoints).to_dict("records")
    assert len(rows) == len(from_csv) == counts.rows == 12
    for got, want in zip(rows, from_csv):
        for key, value in want.items():
            if isinstance(value, float) and math.isnan(value):
                assert got[key] is None  # null: no id without tracking, a part not found
            else:
                assert got[key] == value
