"""KeypointLog: schema, flush per line, safe files, reading back."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from stages.errors import InputError, InputNotFoundError, OutputError
from stages.frames import NUM_PARTS, Frame, Person, Result
from stages.outputs.keypoint_log import KeypointLog, keypoint_record, read_keypoint_log


def _result(index: int, people=()) -> Result:
    frame = Frame(source="clip", index=index, pts=index * 1001 / 30000,
                  image=np.zeros((4, 4, 3), np.uint8))
    return Result(frame=frame, people=tuple(people))


def _person(score=0.87654321, track_id=None) -> Person:
    keypoints = np.zeros((NUM_PARTS, 3), np.float32)
    keypoints[0] = (10.123456, 20.98765, 0.912345)
    keypoints[1] = (11.5, 22.25, 0.5)
    keypoints[2] = (99.0, 98.0, 0.0)  # found nowhere: confidence 0
    keypoints[3] = (np.nan, 1.0, 0.7)  # not a number: treated as missing
    return Person(keypoints=keypoints, score=score, track_id=track_id)


def test_record_schema():
    record = keypoint_record(_result(3, [_person(), _person(0.5, track_id=7)]))
    assert record["frame"] == 3
    assert record["pts"] == round(3 * 1001 / 30000, 6)
    first, second = record["people"]
    assert first["score"] == 0.8765 and "id" not in first
    assert second["id"] == 7
    keypoints = first["keypoints"]
    assert len(keypoints) == NUM_PARTS
    assert keypoints[0] == [10.12, 20.99, 0.9123]
    assert keypoints[1] == [11.5, 22.25, 0.5]
    assert keypoints[2] == keypoints[3] == keypoints[17] == [0, 0, 0]
    assert json.loads(json.dumps(record)) == record


def test_frame_without_people():
    assert keypoint_record(_result(0)) == {"frame": 0, "pts": 0.0, "width": 4, "height": 4,
                                           "people": []}


def test_lines_are_flushed_as_they_are_written(tmp_path):
    path = tmp_path / "keypoints.jsonl"
    with KeypointLog(path) as log:
        for i in range(3):
            log.write(_result(i, [_person()]))
            assert len(read_keypoint_log(log.tmp)) == i + 1
        assert not path.exists() and log.tmp.name.startswith(f".{path.name}.partial-{os.getpid()}-")
    assert not log.tmp.exists()
    records = read_keypoint_log(path)
    assert [r["frame"] for r in records] == [0, 1, 2]
    assert log.records_written == 3


def test_exception_in_with_block_keeps_the_lines_done(tmp_path):
    path = tmp_path / "keypoints.jsonl"
    path.write_text("old log\n")
    with pytest.raises(KeyboardInterrupt):
        with KeypointLog(path) as log:
            log.write(_result(0))
            log.write(_result(1))
            assert path.read_text() == "old log\n"
            raise KeyboardInterrupt
    assert [r["frame"] for r in read_keypoint_log(path)] == [0, 1]


def test_write_after_close_and_bad_path(tmp_path):
    log = KeypointLog(tmp_path / "k.jsonl")
    log.close()
    log.close()  # idempotent
    with pytest.raises(OutputError, match="after close"):
        log.write(_result(0))
    with pytest.raises(OutputError, match="cannot create"):
        KeypointLog(tmp_path / "missing-dir" / "k.jsonl")


def test_read_skips_a_cut_last_line_only(tmp_path):
    path = tmp_path / "k.jsonl"
    path.write_text('{"frame": 0, "pts": 0.0, "people": []}\n{"frame": 1, "pt')
    assert read_keypoint_log(path) == [{"frame": 0, "pts": 0.0, "people": []}]
    path.write_text('{"frame": 0\n{"frame": 1, "pts": 0.0, "people": []}\n')
    with pytest.raises(InputError, match=":1: not valid JSON"):
        read_keypoint_log(path)
    with pytest.raises(InputNotFoundError):
        read_keypoint_log(tmp_path / "nope.jsonl")
