"""Interrupted work never looks finished, and resumes from its last checkpoint (issue 23,
items 1 and 2): real runs of run_stream.py stopped by SIGINT or SIGKILL, then run again.

The clips are 64x48 at 5 FPS, over 60 s, so that their outputs are cut into pieces
(every 30 s of source time, ``stages.outputs.resume``); ``BlinkingPersonBackend``
finds a person who keeps disappearing, and a short ``--track-memory`` gives them a new
track id each time they come back, so track ids run high and must continue across
the resume point.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip
from tests.support.same_outputs import assert_same_outputs, video_frames

ROOT = Path(__file__).resolve().parents[2]
RUN = ["--backend", "tests.support.fakes:BlinkingPersonBackend", "--workers", "1",
       "--track-memory", "0.1", "--format", "jsonl", "csv", "coco", "openpose"]
FPS = Fraction(5)
LONG = 320  # frames: 64 s, three pieces (0-30 s, 30-60 s, 60-64 s)
PIECE = 150  # frames in a 30 s piece


def _run(args: list, delay: str = "0") -> subprocess.CompletedProcess:
    env = dict(os.environ, POSESTREAM_FAKE_DELAY=delay, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "run_stream.py"), *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=120)


def _popen(args: list, delay: str) -> subprocess.Popen:
    env = dict(os.environ, POSESTREAM_FAKE_DELAY=delay, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *map(str, args)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop_at_checkpoint(proc: subprocess.Popen, checkpoint: Path, sig: int) -> tuple[str, str]:
    """Send ``sig`` to ``proc`` once ``checkpoint`` exists (the first piece is committed)."""
    deadline = time.monotonic() + 60
    try:
        while not checkpoint.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.01)
        proc.send_signal(sig)
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _final_names(folder: Path, stem: str) -> list[Path]:
    return [folder / f"{stem}{s}" for s in (".mp4", ".jsonl", ".csv", ".coco.json", ".openpose",
                                            ".manifest.json")]


def _globbed(folder: Path) -> set[Path]:
    """What globs of the final names find under ``folder`` (pathlib's, hidden names
    included, and glob's, as pandas users write them)."""
    found = {p for pattern in ("*.mp4", "*.jsonl", "*.csv", "*.coco.json")
             for p in folder.rglob(pattern)}
    found |= {Path(p) for p in glob.glob(str(folder / "**" / "*_keypoints.json"), recursive=True)}
    return found


# -- a batch ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Three clips, two of them long, and their outputs from an uninterrupted batch."""
    data = tmp_path_factory.mktemp("data")
    make_test_clip(data / "a.mp4", frames=LONG, fps=FPS)
    make_test_clip(data / "b.mp4", frames=20, fps=FPS)
    make_test_clip(data / "c.mp4", frames=LONG, fps=FPS)
    reference = tmp_path_factory.mktemp("reference")
    done = _run([data, "-o", reference, *RUN, "--files-in-flight", "1"])
    assert done.returncode == 0, done.stderr
    assert max(p.get("id", 0) for r in read_keypoint_log(reference / "a.jsonl")
               for p in r["people"]) > 20  # the person keeps coming back under new ids
    return data, reference


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_stopped_batch_leaves_nothing_partial_under_a_final_name_and_resumes(
        tmp_path, batch, sig):
    data, reference = batch
    out = tmp_path / "out"
    proc = _popen([data, "-o", out, *RUN, "--files-in-flight", "1"], delay="0.01")
    stdout, stderr = _stop_at_checkpoint(proc, out / ".partial" / "a" / "checkpoint.json", sig)
    assert proc.returncode == (-sig if sig == signal.SIGKILL else 128 + sig), stderr
    # a did not finish: nothing of it under its final names, nor where a glob finds it
    assert not [p for p in _final_names(out, "a") if p.exists()]
    assert _globbed(out) == set()
    checkpoint = json.loads((out / ".partial" / "a" / "checkpoint.json").read_text())
    assert checkpoint["frames"] >= PIECE and checkpoint["next_index"] == checkpoint["frames"]
    if sig == signal.SIGINT:  # the summary lists where its work is kept
        rows = {r["input"]: r for r in json.loads((out / "batch-summary.json").read_text())["files"]}
        assert rows["a.mp4"]["status"] == "interrupted" and rows["a.mp4"]["outputs"] == []
        assert rows["a.mp4"]["partial"] == [str(out / ".partial" / "a")]
        assert f"partial: 1 input(s) not finished, their work kept in: {out / '.partial' / 'a'}" \
            in stdout
        kept = read_keypoint_log(out / ".partial" / "a" / "a.jsonl.partial")  # readable
        assert kept == read_keypoint_log(reference / "a.jsonl")[:len(kept)]

    again = _run([data, "-o", out, *RUN, "--files-in-flight", "1"])
    assert again.returncode == 0, again.stderr
    rows = {r["input"]: r for r in json.loads((out / "batch-summary.json").read_text())["files"]}
    assert {k: r["status"] for k, r in rows.items()} == dict.fromkeys(rows, "done")
    resumed = rows["a.mp4"]
    assert resumed["frames_resumed_from"] == checkpoint["frames"]
    assert resumed["frames_processed"] == LONG - checkpoint["frames"] and resumed["frames"] == LONG
    for stem in ("a", "b", "c"):
        assert_same_outputs(out, reference, stem)
    assert not (out / ".partial").exists()


# -- one long file -----------------------------------------------------------------

@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """A 72 s clip and its outputs from an uninterrupted run."""
    folder = tmp_path_factory.mktemp("long")
    clip = make_test_clip(folder / "clip.mp4", frames=360, fps=FPS)
    reference = folder / "reference"
    done = _run([clip, "-o", reference, *RUN])
    assert done.returncode == 0, done.stderr
    return clip, reference


@pytest.mark.slow
def test_a_killed_long_file_resumes_from_its_last_checkpoint(tmp_path, long_clip):
    clip, reference = long_clip
    out = tmp_path / "out"
    proc = _popen([clip, "-o", out, *RUN], delay="0.02")
    _stop_at_checkpoint(proc, out / ".partial" / "clip" / "checkpoint.json", signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert not [p for p in _final_names(out, "clip") if p.exists()]
    checkpoint = json.loads((out / ".partial" / "clip" / "checkpoint.json").read_text())
    assert PIECE <= checkpoint["frames"] < 360  # killed half-way

    resumed = _run([clip, "-o", out, *RUN, "--summary-json", tmp_path / "summary.json"])
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["state"] == "done" and summary["partial"] is False
    assert summary["frames_resumed_from"] == checkpoint["frames"]
    # at most the frames after the last checkpoint (those of the piece the kill cut short too)
    assert summary["frames_processed"] == 360 - checkpoint["frames"]
    assert summary["frames_done"] == 360
    assert_same_outputs(out, reference, "clip")
    assert not (out / ".partial").exists()


@pytest.mark.slow
def test_ctrl_c_leaves_a_playable_partial_file_says_so_and_the_rerun_resumes(tmp_path, long_clip):
    clip, reference = long_clip
    out = tmp_path / "out"
    proc = _popen([clip, "-o", out, *RUN, "--summary-json", tmp_path / "stopped.json"],
                  delay="0.02")
    stdout, stderr = _stop_at_checkpoint(proc, out / ".partial" / "clip" / "checkpoint.json",
                                         signal.SIGINT)
    assert proc.returncode == 130, stderr
    # as FFmpeg leaves it: what was done, under the final names, and said to be partial
    stopped = json.loads((tmp_path / "stopped.json").read_text())
    done = stopped["frames_done"]
    assert stopped["partial"] is True and stopped["state"] == "interrupted"
    records = read_keypoint_log(out / "clip.jsonl")
    assert len(records) == done and records == read_keypoint_log(reference / "clip.jsonl")[:done]
    pts, _ = video_frames(out / "clip.mp4")
    assert pts == video_frames(reference / "clip.mp4")[0][:done]
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"partial: the outputs hold {done} of 360 frames"), stdout
    assert f"resumes after its first {stopped['resumes_after']} frames" in last
    assert stopped["resumes_after"] >= PIECE

    resumed = _run([clip, "-o", out, *RUN, "--summary-json", tmp_path / "summary.json"])
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_resumed_from"] == stopped["resumes_after"]
    assert summary["frames_processed"] == 360 - stopped["resumes_after"]
    assert_same_outputs(out, reference, "clip")
    assert not (out / ".partial").exists()
