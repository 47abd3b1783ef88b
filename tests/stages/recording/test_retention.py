"""Retention (--retain, --max-disk): the oldest closed segments go, nothing open or foreign."""

import logging
import os
import shutil
import time

import pytest

from stages.outputs.atomic import partial_path
from stages.settings import JobConfig
from stages.jobs.live import LiveJob
from stages.settings import LiveConfig
from stages.recording.retention import Retention, disk_bytes, scan
from tests.support.live_fixtures import run_in_thread
from tests.support.processes import tmpfs

FAKE = dict(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48))
DEADLINE = 60.0
KB = 1024


def _segment(folder, base, *, size=8 * KB, video=True, mtime=None):
    """Files of one closed segment: video, JSON Lines, CSV, COCO and an OpenPose folder."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{base}.jsonl", folder / f"{base}.csv", folder / f"{base}.coco.json"]
    paths += [folder / f"{base}.mkv"] if video else []
    for path in paths:
        path.write_bytes(b"x" * size)
    pose = folder / f"{base}.openpose"
    pose.mkdir()
    (pose / f"{base}_000000000000_keypoints.json").write_bytes(b"{}")
    if mtime is not None:
        for path in [*paths, pose]:
            os.utime(path, (mtime, mtime))
    return paths + [pose]


def _foreign(out):
    """Files posestream did not write, or not for this run's sources."""
    files = [out / "cam" / "notes.txt", out / "cam" / "other-20240101T000000Z-1.mkv",
             out / "cam" / "cam-20240101T000000Z-1.mkv.bak", out / "cam" / "cam-latest.mkv",
             out / "other" / "other-20240101T000000Z-1.mkv", out / "readme.txt"]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"y" * 64 * KB)
    return files


def test_the_oldest_closed_segments_go_first_until_under_the_cap(tmp_path):
    cam = tmp_path / "cam"
    bases = [f"cam-2026010{d}T000000Z-{n}" for d in (1, 2, 3) for n in (1, 2)]
    for base in bases:
        _segment(cam, base)
    foreign = _foreign(tmp_path)
    per_segment = scan(tmp_path, ["cam"]).segments[0].size
    retention = Retention(tmp_path, ["cam"], max_bytes=3 * per_segment + KB)
    # two segments stay: room for a third, the next one the source writes, is kept free
    assert retention.sweep() == bases[:4]
    assert [s.base for s in scan(tmp_path, ["cam"]).segments] == bases[4:]
    assert all(path.exists() for path in foreign)
    assert retention.used <= 2 * per_segment + KB and retention.freed == 4 * per_segment
    assert retention.sweep() == []  # under the cap: nothing more


def test_an_open_segment_is_never_deleted_and_the_shortfall_is_warned_once(tmp_path, caplog):
    cam = tmp_path / "cam"
    _segment(cam, "cam-20260101T000000Z-1")
    _segment(cam, "cam-20260102T000000Z-2", video=False)
    # being written: the logs are committed, the video is still under its partial name
    partial_path(cam / "cam-20260102T000000Z-2.mkv").write_bytes(b"v" * 64 * KB)
    open_log = partial_path(cam / "cam-20260103T000000Z-3.jsonl")
    open_log.write_bytes(b"j" * 64 * KB)
    retention = Retention(tmp_path, ["cam"], max_bytes=KB)
    with caplog.at_level(logging.INFO, logger="stages.recording.retention"):
        assert retention.sweep() == ["cam-20260101T000000Z-1"]
        retention.sweep()
    assert (cam / "cam-20260102T000000Z-2.jsonl").exists() and open_log.exists()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "--max-disk" in warnings[0].getMessage()
    deleted = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(deleted) == 1 and "cam-20260101T000000Z-1" in deleted[0]


def test_segments_older_than_retain_go_by_their_newest_file(tmp_path):
    now = 1_800_000_000.0
    cam, day = tmp_path / "cam", 86400.0
    _segment(cam, "cam-20260101T000000Z-1", mtime=now - 8 * day)
    _segment(cam, "cam-20260102T000000Z-2", mtime=now - 6 * day)
    kept_after_kill = cam / "cam-20250101T000000Z-9.partial.mkv"  # set aside after a kill
    kept_after_kill.write_bytes(b"k")
    os.utime(kept_after_kill, (now - 30 * day, now - 30 * day))
    foreign = _foreign(tmp_path)
    for path in foreign:
        os.utime(path, (now - 365 * day, now - 365 * day))
    retention = Retention(tmp_path, ["cam"], max_age=7 * day, clock=lambda: now)
    assert sorted(retention.sweep()) == ["cam-20250101T000000Z-9", "cam-20260101T000000Z-1"]
    assert [s.base for s in scan(tmp_path, ["cam"]).segments] == ["cam-20260102T000000Z-2"]
    assert all(path.exists() for path in foreign)


def test_rotated_live_logs_count_and_go_only_after_every_closed_segment(tmp_path):
    cam = tmp_path / "cam"
    _segment(cam, "cam-20260101T000000Z-1")
    (cam / "live.jsonl").write_bytes(b"l" * 32 * KB)
    (cam / "live.jsonl.1").write_bytes(b"l" * 32 * KB)
    (cam / "live.jsonl.2").write_bytes(b"l" * 32 * KB)
    usage = scan(tmp_path, ["cam"])
    assert usage.total >= 96 * KB + usage.segments[0].size
    Retention(tmp_path, ["cam"], max_bytes=70 * KB).sweep()
    assert not list(cam.glob("cam-*"))
    assert (cam / "live.jsonl").exists() and (cam / "live.jsonl.1").exists()
    assert not (cam / "live.jsonl.2").exists()  # the oldest rotation went first


def test_a_segment_loses_its_video_before_its_keypoint_files(tmp_path, monkeypatch):
    import stages.recording.retention as retention_module

    _segment(tmp_path / "cam", "cam-20260101T000000Z-1")
    order = []
    monkeypatch.setattr(retention_module, "remove_quietly", lambda p: order.append(p.name))
    Retention(tmp_path, ["cam"], max_bytes=1).sweep()
    assert order[0].endswith(".mkv") and len(order) == 5


def _open_bytes(folder):
    return sum(disk_bytes(p) for p in folder.iterdir() if p.name.startswith("."))


def test_a_tiny_cap_holds_over_many_rolls_and_spares_the_open_and_foreign_files(tmp_path):
    out = tmp_path / "out"
    foreign = _foreign(out)
    cap = 40 * KB
    job = LiveJob([("lavfi:testsrc2=size=64x48:rate=25", "cam")], out,
                  JobConfig(**FAKE, formats=("jsonl", "csv")),
                  LiveConfig(record="none", segment_minutes=0.005, max_disk=cap))
    job.retention.interval = 0.2
    after_sweeps = []  # what each sweep left: the cap is kept at every sweep
    sweep = job.retention.sweep
    job.retention.sweep = lambda: (sweep(), after_sweeps.append(job.retention.used))[0]
    thread, result = run_in_thread(job)
    try:
        deadline = time.monotonic() + DEADLINE
        while len(job.retention.deleted) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        job.cancel()
        thread.join(DEADLINE)
    assert not thread.is_alive() and "error" not in result, result
    # Between two sweeps the folder may grow past the cap only by more segments closing than the
    # sweep's headroom allows for, which takes a starved retention thread (segments here are 0.3 s
    # long, against minutes in use): what the product promises, and what is checked, is each sweep.
    assert len(job.retention.deleted) >= 8 and len(after_sweeps) > 8
    assert max(after_sweeps) <= cap, after_sweeps
    assert all(path.exists() for path in foreign)
    segments = scan(out, ["cam"]).segments
    assert segments and not any(s.open for s in segments)
    # the segment that was being written at the end was finished, not deleted
    assert segments[-1].base not in job.retention.deleted
    assert _open_bytes(out / "cam") == 0


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MB tmpfs, unmounted afterwards; skips where mounting is not permitted."""
    with tmpfs(tmp_path / "disk", "2m") as where:
        yield where


@pytest.mark.slow
def test_a_run_never_fills_a_small_disk(small_tmpfs):
    disk_size = shutil.disk_usage(small_tmpfs).total
    job = LiveJob([("lavfi:testsrc2=size=64x48:rate=40", "cam")], small_tmpfs,
                  JobConfig(**FAKE, formats=("jsonl", "csv", "openpose")),
                  LiveConfig(record="none", segment_minutes=0.005, max_disk=disk_size // 2))
    job.retention.interval = 0.2
    thread, result = run_in_thread(job)
    try:
        deadline = time.monotonic() + 2 * DEADLINE
        while job.retention.freed < 1.5 * disk_size and time.monotonic() < deadline:
            assert shutil.disk_usage(small_tmpfs).free > 0
            time.sleep(0.1)
    finally:
        job.cancel()
        thread.join(DEADLINE)
    assert not thread.is_alive() and "error" not in result, result
    assert job.retention.freed >= 1.5 * disk_size  # more than the disk holds was written
    assert shutil.disk_usage(small_tmpfs).used < disk_size


def test_the_summary_says_what_retention_did(tmp_path):
    _segment(tmp_path / "out" / "cam", "cam-20260101T000000Z-1")
    job = LiveJob([("lavfi:testsrc2=size=64x48:rate=5", "cam")], tmp_path / "out",
                  JobConfig(**FAKE), LiveConfig(record="none", max_disk=1))
    thread, result = run_in_thread(job)
    try:
        deadline = time.monotonic() + DEADLINE
        while not job.retention.deleted and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        job.cancel()
        thread.join(DEADLINE)
    assert not thread.is_alive() and "error" not in result, result
    recording = job.snapshot()["recording"]
    assert recording["record"] == "none" and recording["max_disk"] == 1
    assert recording["deleted"] >= 1 and recording["freed"] > 0 and recording["used"] is not None


def test_folder_sizes_are_cached_until_the_folder_changes(tmp_path):
    _segment(tmp_path / "cam", "cam-20260101T000000Z-1")
    pose = tmp_path / "cam" / "cam-20260101T000000Z-1.openpose"
    folders = {}
    first = scan(tmp_path, ["cam"], folders).total
    assert folders[pose][1] == disk_bytes(pose) and scan(tmp_path, ["cam"], folders).total == first
    (pose / "more_keypoints.json").write_bytes(b"z" * 64 * KB)
    assert scan(tmp_path, ["cam"], folders).total >= first + 64 * KB


def test_room_is_kept_for_the_open_segment_to_grow_to_the_largest_size_seen(tmp_path):
    cam = tmp_path / "cam"
    _segment(cam, "cam-20260101T000000Z-1", size=16 * KB)
    _segment(cam, "cam-20260101T000000Z-2", size=8 * KB)
    largest = scan(tmp_path, ["cam"]).segments[0].size
    partial_path(cam / "cam-20260101T000000Z-3.mkv").write_bytes(b"v" * 20 * KB)
    retention = Retention(tmp_path, ["cam"], max_bytes=10 * largest)
    usage = scan(tmp_path, ["cam"])
    open_bytes = usage.segments[-1].open_size
    assert usage.segments[-1].open and 20 * KB <= open_bytes < largest
    assert retention.headroom(usage) == largest - open_bytes
    # once the open segment holds more than the largest closed one, it needs no more room
    partial_path(cam / "cam-20260101T000000Z-3.jsonl").write_bytes(b"j" * 2 * largest)
    assert retention.headroom(scan(tmp_path, ["cam"])) == 0


# -- retention never leaves OUTDIR (issue 21, item 13) ---------------------------------------------

def test_a_symlinked_source_folder_is_never_followed(tmp_path, caplog):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    old = _segment(elsewhere, "cam-20200101T000000Z-1", mtime=1_000_000_000.0)
    out.mkdir()
    (out / "cam").symlink_to(elsewhere, target_is_directory=True)
    retention = Retention(out, ["cam"], max_age=86400.0, max_bytes=1)
    with caplog.at_level(logging.WARNING, logger="stages.recording.retention"):
        assert retention.sweep() == [] and retention.sweep() == []
    assert all(path.exists() for path in old) and retention.freed == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and "symbolic link" in r.getMessage()]
    assert len(warnings) == 1 and str(out / "cam") in warnings[0], warnings


def test_a_symlinked_segment_file_is_neither_deleted_nor_followed(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "keep.mkv"
    target.write_bytes(b"k" * 64 * KB)
    mine = _segment(out / "cam", "cam-20200101T000000Z-1", mtime=1_000_000_000.0)
    links = [out / "cam" / "cam-20200101T000000Z-2.mkv", out / "cam" / "live.jsonl.1",
             out / "cam" / "cam-20200101T000000Z-3.openpose"]
    for link in links:
        link.symlink_to(target if link.suffix != ".openpose" else elsewhere)
    os.utime(links[0], (1_000_000_000.0, 1_000_000_000.0), follow_symlinks=False)
    retention = Retention(out, ["cam"], max_age=86400.0, max_bytes=1)
    assert retention.sweep() == ["cam-20200101T000000Z-1"]  # what posestream wrote goes
    assert not any(path.exists() for path in mine)
    assert all(link.is_symlink() for link in links) and target.read_bytes() == b"k" * 64 * KB
    assert [s.base for s in scan(out, ["cam"]).segments] == []  # links are not segments


# -- one --max-disk for a folder two runs share (issue 21, item 14) --------------------------------

def test_the_cap_counts_every_live_source_folder_of_the_output_folder(tmp_path, caplog):
    cam1, cam2 = tmp_path / "cam1", tmp_path / "cam2"
    _segment(cam1, "cam1-20260102T000000Z-1")
    _segment(cam2, "cam2-20260101T000000Z-1")  # another run's, and the oldest
    _segment(cam2, "cam2-20260103T000000Z-2")
    (cam1 / "live.jsonl").write_bytes(b"")
    (cam2 / "live.jsonl").write_bytes(b"")
    foreign = _foreign(tmp_path)  # other/ holds no live.jsonl: no live run's folder
    per_segment = scan(tmp_path, ["cam1"]).segments[0].size
    retention = Retention(tmp_path, ["cam1"], max_bytes=3 * per_segment + KB)  # room: 2 open
    with caplog.at_level(logging.INFO, logger="stages.recording.retention"):
        assert retention.sweep() == ["cam2-20260101T000000Z-1", "cam1-20260102T000000Z-1"]
    left = [s.base for s in scan(tmp_path, ["cam1", "cam2"]).segments]
    assert left == ["cam2-20260103T000000Z-2"]
    assert all(path.exists() for path in foreign)
    assert any(str(cam2) in r.getMessage() and "--max-disk counts" in r.getMessage()
               for r in caplog.records)


def test_retain_ages_only_the_runs_own_sources(tmp_path):
    now, day = 1_800_000_000.0, 86400.0
    _segment(tmp_path / "cam1", "cam1-20260101T000000Z-1", mtime=now - 8 * day)
    theirs = _segment(tmp_path / "cam2", "cam2-20260101T000000Z-1", mtime=now - 8 * day)
    for name in ("cam1", "cam2"):
        (tmp_path / name / "live.jsonl").write_bytes(b"")
    retention = Retention(tmp_path, ["cam1"], max_age=7 * day, max_bytes=1 << 30, clock=lambda: now)
    assert retention.sweep() == ["cam1-20260101T000000Z-1"]
    assert all(path.exists() for path in theirs)


def test_two_runs_sharing_an_output_folder_hold_one_cap_together(tmp_path):
    out, cap = tmp_path / "out", 60 * KB
    jobs = [LiveJob([("lavfi:testsrc2=size=64x48:rate=25", name)], out,
                    JobConfig(**FAKE, formats=("jsonl", "csv")),
                    LiveConfig(record="none", segment_minutes=0.005, max_disk=cap))
            for name in ("cam1", "cam2")]
    runs = []
    for job in jobs:
        job.retention.interval = 0.2
        runs.append(run_in_thread(job))
    checks = 0
    try:
        deadline = time.monotonic() + DEADLINE
        while sum(len(j.retention.deleted) for j in jobs) < 16 and time.monotonic() < deadline:
            # both folders together, as the disk sees them; no sweep reserves room for the
            # live.jsonl logs' growth until the next one (a block or two), but two caps
            # of their own would let the runs take twice the cap
            usage = scan(out, ["cam1", "cam2"])
            assert usage.total <= cap + 4 * 4 * KB, usage
            checks += 1
            time.sleep(0.05)
    finally:
        for job, (thread, _) in zip(jobs, runs):
            job.cancel()
            thread.join(DEADLINE)
    assert all(not t.is_alive() and "error" not in r for t, r in runs), runs
    assert sum(len(j.retention.deleted) for j in jobs) >= 16 and checks > 10
    for name in ("cam1", "cam2"):  # each run's own newest segments are still there
        assert scan(out, [name]).segments


def test_the_cap_keeps_room_for_the_live_log_to_grow_until_the_next_sweep(tmp_path):
    """live.jsonl is never deleted and grows between sweeps: a sweep makes room for
    it to grow as much again as it did since the last one (it was let past the cap)."""
    folder = tmp_path / "out" / "cam"
    old = _segment(folder, "cam-20260101T000000Z-1", size=8 * KB)
    _segment(folder, "cam-20260101T000100Z-2", size=8 * KB)
    log = folder / "live.jsonl"
    log.write_bytes(b"x" * 4 * KB)
    usage = scan(tmp_path / "out", ["cam"])
    largest = max(segment.size for segment in usage.segments)  # room kept for an open one
    retention = Retention(tmp_path / "out", ["cam"], max_bytes=usage.total + largest + 12 * KB)
    assert retention.sweep() == []  # under the cap, nothing seen growing yet
    with log.open("ab") as grow:
        grow.write(b"x" * 8 * KB)  # between sweeps
    # 8 KB over the first total: under the cap; as much again by the next sweep is not
    assert scan(tmp_path / "out", ["cam"]).total + largest <= retention.max_bytes
    assert retention.sweep() == ["cam-20260101T000000Z-1"]
    assert not any(path.exists() for path in old)
