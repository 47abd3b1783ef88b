"""A closed or full stdout ends the printing, never the records (issue 21, item 3).

The rule (``stages.display.stdout.stdout_status``): every output file is
written first; a reader that went away (``| head -1``) ends the printing
quietly with status 141 (128 + SIGPIPE); a full device (``> /dev/full``) ends
it with one line on stderr and status 1; a run that failed or was stopped
keeps its own status. Each case runs the command in a process of its own,
its stdout a pipe whose read end is closed at once, or a copy of /dev/full
made in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.outputs.sample import make_test_clip
from tests.support.nodes import FULL, char_device
from tests.support.tables import RUN_TABLES

ROOT = Path(__file__).resolve().parents[2]
FAKE = ["--backend", "tests.support.fakes:ZeroBackend", "--resolution", "64x48"]


def _run(args: list, stdout) -> tuple[int, str]:
    """Run the command with ``stdout`` ("closed": a pipe nobody reads; else a file
    object); return its status and stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, str(ROOT / "run_stream.py"), *map(str, args)]
    pipe = stdout == "closed"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE if pipe else stdout,
                            stderr=subprocess.PIPE, text=True)
    if pipe:
        proc.stdout.close()  # the reader is gone before anything is printed
    try:
        err = proc.stderr.read()
        return proc.wait(timeout=120), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def batch(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a", "b"):
        make_test_clip(data / f"{name}.mp4", frames=3, size=(64, 48))
    return data


def _assert_batch_records(out: Path, summary: Path, statuses: dict[str, str]) -> None:
    written = json.loads((out / "batch-summary.json").read_text())
    assert {r["input"]: r["status"] for r in written["files"]} == statuses
    assert json.loads(summary.read_text()) == written
    dataset = json.loads((out / "keypoints.coco.json").read_text())
    assert {image["file_name"] for image in dataset["images"]} == {
        name for name, status in statuses.items() if status == "done"}


def test_a_batch_piped_into_a_reader_that_left_writes_every_record(tmp_path, batch):
    out, summary = tmp_path / "out", tmp_path / "mine.json"
    code, err = _run([batch, "-o", out, *FAKE, "--format", "jsonl", "coco", "--summary-json", summary],
                     "closed")
    assert code == 141 and err == "", err  # quietly, as `yes | head -1`
    _assert_batch_records(out, summary, {"a.mp4": "done", "b.mp4": "done"})


def test_a_failed_batch_keeps_its_own_status_when_the_reader_left(tmp_path, batch):
    (batch / "c.mp4").write_text("not a video\n")
    out, summary = tmp_path / "out", tmp_path / "mine.json"
    code, err = _run([batch, "-o", out, *FAKE, "--format", "jsonl", "coco", "--summary-json", summary],
                     "closed")
    assert code == 1 and "Traceback" not in err and "BrokenPipe" not in err, err
    _assert_batch_records(out, summary, {"a.mp4": "done", "b.mp4": "done", "c.mp4": "failed"})


def test_a_file_run_piped_into_a_reader_that_left_writes_its_summary(tmp_path):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=3, size=(64, 48))
    out, summary = tmp_path / "out", tmp_path / "mine.json"
    code, err = _run([clip, "-o", out, *FAKE, "--summary-json", summary], "closed")
    assert code == 141 and err == "", err
    assert json.loads(summary.read_text())["frames_written"] == 3
    assert sorted(os.listdir(out)) == sorted(["clip.jsonl", "clip.mp4", *RUN_TABLES])


@pytest.mark.parametrize("mode", ["file", "batch"])
def test_stdout_to_a_full_device_is_one_line_and_every_record_is_written(tmp_path, batch, mode):
    full = char_device(tmp_path / "full", FULL)
    out, summary = tmp_path / "out", tmp_path / "mine.json"
    inputs = [batch / "a.mp4"] if mode == "file" else [batch]
    with open(full, "w") as stdout:
        code, err = _run([*inputs, "-o", out, *FAKE, "--format", "jsonl", "coco",
                          "--summary-json", summary], stdout)
    assert code == 1 and err.strip().splitlines() == [
        "posestream: error: stdout: cannot print the report (No space left on device); "
        "the output files are not affected"], err
    if mode == "batch":
        _assert_batch_records(out, summary, {"a.mp4": "done", "b.mp4": "done"})
    else:
        assert json.loads(summary.read_text())["state"] == "done"
        assert sorted(os.listdir(out)) == sorted(["a.coco.json", "a.jsonl", "a.mp4",
                                                  "keypoints.coco.json", *RUN_TABLES])
