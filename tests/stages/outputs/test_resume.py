"""The work folder of an input: checkpoints, what a resume keeps, one writer at a time."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from stages.frames import Frame, Person, Result
from stages.outputs import atomic
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.resume import (CHECKPOINT, PIECE_SECONDS, Work, piece_of, starts_piece,
                                   work_folder)

IDENTITY = {"size": 1, "mtime_ns": 2, "head_tail_sha256": "ab"}
SETTINGS = {"formats": ["jsonl", "csv", "coco", "openpose"], "number": 1}
FORMATS = SETTINGS["formats"]


def _result(index: int) -> Result:
    keypoints = np.zeros((18, 3), np.float32)
    keypoints[1] = (10 + index, 20, 0.5)
    frame = Frame(source="clip.mp4", index=index, pts=index / 5, image=np.zeros((4, 4, 3), np.uint8))
    return Result(frame=frame, people=(Person(keypoints=keypoints, score=1.0, track_id=index),))


def _write(work: Work, out, indexes, *, cut_at=None) -> list:
    writers = work.writers(FORMATS, out, number=1)
    for i in indexes:
        if i == cut_at:
            work.commit(frames=i, people=i, next_index=i, next_pts=i / 5, video=None,
                        writers=writers, tracker={"at": i})
        for writer in writers:
            writer.write(_result(i))
    return writers


def test_pieces_are_cut_on_the_clock_of_the_stream():
    assert PIECE_SECONDS == 30.0
    assert [piece_of(t) for t in (0.0, 29.99, 30.0, 61.0, -0.5)] == [0, 0, 1, 2, -1]
    assert starts_piece(29.9, 30.1) and not starts_piece(30.1, 59.9) and not starts_piece(31, 29)


def test_a_resumed_work_folder_goes_on_from_its_checkpoint_byte_for_byte(tmp_path):
    out = tmp_path / "out"
    whole = Work.open(tmp_path / "whole", "clip", IDENTITY, SETTINGS)
    for writer in _write(whole, tmp_path / "whole", range(10)):
        writer.finish()
    whole.release()
    first = Work.open(out, "clip", IDENTITY, SETTINGS)
    assert first.checkpoint is None and first.folder == work_folder(out, "clip")
    for writer in _write(first, out, range(8), cut_at=5):  # frames 5-7 after the checkpoint
        writer.finish()  # (a kill would not even close them)
    first.release()
    second = Work.open(out, "clip", IDENTITY, SETTINGS)
    assert (second.next_index, second.resumed_frames, second.checkpoint.tracker) == (5, 5, {"at": 5})
    for writer in _write(second, out, range(5, 10)):
        writer.finish()
    for name in ("clip.jsonl.partial", "clip.csv.partial", "clip.coco.json.partial"):
        assert (second.folder / name).read_bytes() == (whole.folder / name).read_bytes()
    assert [r["frame"] for r in read_keypoint_log(second.folder / "clip.jsonl.partial")] == \
        list(range(10))
    assert json.loads((second.folder / "clip.coco.json.partial").read_text())[5]["image_id"] \
        == 10**9 + 5
    assert sorted(os.listdir(second.folder / "clip.openpose.partial")) == \
        sorted(os.listdir(whole.folder / "clip.openpose.partial"))


@pytest.mark.parametrize("change", ["input", "settings", "a piece", "a file", "restart"])
def test_a_checkpoint_that_does_not_fit_starts_over_and_is_cleared(tmp_path, change):
    first = Work.open(tmp_path, "clip", IDENTITY, SETTINGS)
    for writer in _write(first, tmp_path, range(4), cut_at=2):
        writer.finish()
    first.release()
    checkpoint = json.loads((first.folder / CHECKPOINT).read_text())
    identity, settings, restart = IDENTITY, SETTINGS, False
    if change == "input":
        identity = {**IDENTITY, "size": 3}
    elif change == "settings":
        settings = {**SETTINGS, "number": 2}
    elif change == "a piece":
        checkpoint["pieces"] = [{"name": "piece-000001.mp4.partial", "frames": 2,
                                 "first_ticks": 0, "last_ticks": 1}]
        (first.folder / CHECKPOINT).write_text(json.dumps(checkpoint))
    elif change == "a file":
        os.truncate(first.folder / "clip.csv.partial", 10)
    else:
        restart = True
    again = Work.open(tmp_path, "clip", identity, settings, restart=restart)
    assert again.checkpoint is None and again.next_index is None
    assert os.listdir(again.folder) == ["lock"]


def test_a_second_writer_works_in_a_private_folder_without_checkpoints(tmp_path):
    first = Work.open(tmp_path, "clip", IDENTITY, SETTINGS)
    second = Work.open(tmp_path, "clip", IDENTITY, SETTINGS)
    assert not first.private and second.private
    assert second.folder.parent == first.folder.parent and second.folder.name.startswith(".clip.work-")
    for writer in _write(second, tmp_path, range(4), cut_at=2):
        writer.finish()
    assert not (second.folder / CHECKPOINT).exists()
    second.release()
    assert not second.folder.exists()
    first.remove()
    assert not (tmp_path / ".partial").exists()


def test_the_private_folder_of_a_dead_run_is_removed_by_the_next(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmp_path / ".partial" / f".clip.work-{dead.pid}-0123abcd@{atomic._HOST}"
    folder.mkdir(parents=True)
    (folder / "clip.jsonl.partial").write_text("{}\n")
    Work.open(tmp_path, "other", IDENTITY, SETTINGS).remove()
    assert not folder.exists() and not (tmp_path / ".partial").exists()
