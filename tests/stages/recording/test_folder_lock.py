"""One writer per live source folder (issue 21, item 2): a second run is refused, nothing lost."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stages.errors import InputError
from stages.jobs.live import LiveJob
from stages.outputs.keypoint_log import read_keypoint_log
from stages.recording.folder_lock import LOCK_NAME, FolderLocks, check_free, holder
from stages.settings import JobConfig, LiveConfig
from tests.support.live_fixtures import run_in_thread, wait_for
from tests.support.processes import sigkill_once_it_says

ROOT = Path(__file__).resolve().parents[3]
FAKE = dict(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48))
LAVFI = "lavfi:testsrc2=size=64x48:rate=25"
DEADLINE = 30.0
ME = f"pid {os.getpid()} on host {socket.gethostname()}"


def _job(out: Path, name: str = "cam", **live) -> LiveJob:
    return LiveJob([(LAVFI, name)], out, JobConfig(**FAKE, formats=("jsonl",)),
                   LiveConfig(record="none", segment_minutes=0.005, **live))


def _finished(out: Path, name: str = "cam") -> list[Path]:
    return sorted((out / name).glob(f"{name}-*.jsonl"))


def _stop(job: LiveJob, thread) -> None:
    job.cancel()
    thread.join(DEADLINE)
    assert not thread.is_alive()


def test_a_second_live_run_for_a_running_sources_folder_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "out"
    first = _job(out)
    thread, result = run_in_thread(first)
    try:
        wait_for(lambda: len(_finished(out)) >= 2, "two segments of the first run")
        with pytest.raises(InputError) as refused:
            _job(out)
        wait_for(lambda: len(_finished(out)) >= 4, "the first run to go on")
    finally:
        _stop(first, thread)
    message = str(refused.value)
    assert "\n" not in message and str(out / "cam") in message and ME in message
    assert "error" not in result, result
    # every segment is the first run's own: numbered 1, 2, 3... once each, frames in order
    segments = _finished(out)
    assert [int(p.stem.rsplit("-", 1)[1]) for p in segments] == list(range(1, len(segments) + 1))
    frames = [r["frame"] for p in segments for r in read_keypoint_log(p)]
    assert frames == sorted(set(frames)) and len(frames) == first.stats["cam"].frames


def test_a_run_made_before_the_other_started_is_refused_when_it_starts(tmp_path):
    """The race: both checked a free folder; the one that starts second is refused."""
    out = tmp_path / "out"
    second = _job(out)  # checked while nobody held the folder
    first = _job(out)
    thread, result = run_in_thread(first)
    thread2, result2 = None, {}
    try:
        wait_for(lambda: len(_finished(out)) >= 1, "a segment of the first run")
        thread2, result2 = run_in_thread(second)
        wait_for(lambda: "error" in result2 or "stats" in result2, "the second run to be refused")
    finally:
        second.cancel()
        _stop(first, thread)
        if thread2 is not None:
            thread2.join(DEADLINE)
    assert isinstance(result2.get("error"), InputError), result2
    assert ME in str(result2["error"]) and second.stats["cam"].frames == 0
    assert "error" not in result and first.stats["cam"].frames > 0


def test_other_sources_of_a_refused_run_are_let_go(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with FolderLocks([b]):
        with pytest.raises(InputError, match="pid"):
            FolderLocks([a, b]).__enter__()
        assert holder(a) is None and holder(b) == ME
    assert holder(b) is None
    with FolderLocks([a, b]):  # both free again
        assert holder(a) == ME and holder(b) == ME


def test_a_lock_left_by_a_killed_run_blocks_nothing(tmp_path):
    cam = tmp_path / "out" / "cam"
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "from stages.recording.folder_lock import FolderLocks\n"
            f"locks = FolderLocks([{str(cam)!r}]).__enter__()\n"
            "print('WROTE', flush=True)\n"
            "import time; time.sleep(60)\n")
    sigkill_once_it_says(code)
    pid = int((cam / LOCK_NAME).read_text().split()[0])
    assert pid != os.getpid()  # the killed child's pid is still in the file
    check_free([cam])
    job = _job(tmp_path / "out")
    thread, result = run_in_thread(job)
    try:
        wait_for(lambda: len(_finished(tmp_path / "out")) >= 1, "a segment")
        assert holder(cam) == ME
    finally:
        _stop(job, thread)
    assert "error" not in result, result
    assert holder(cam) is None and not (cam / LOCK_NAME).exists()  # let go when the run ended


def test_the_command_line_refuses_in_one_line_and_writes_nothing(tmp_path):
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    sources = tmp_path / "cameras.txt"
    sources.write_text(f"{LAVFI} cam\n")
    with FolderLocks([out / "cam"]):  # another run (this process) writes OUT/cam
        done = subprocess.run(
            [sys.executable, str(ROOT / "run_stream.py"), "--sources", str(sources),
             "-o", str(out), "--backend", FAKE["backend"], "--summary-json", str(summary)],
            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
            timeout=60)
        left = os.listdir(out / "cam")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("posestream: error: ") and ME in lines[0], lines
    assert left == [LOCK_NAME] and not summary.exists()  # nothing but the holder's lock
    assert os.listdir(out / "cam") == []  # which goes with its holder
