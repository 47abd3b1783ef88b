"""Damaged video files decode like FFmpeg: bad packets are skipped and counted."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from stages.sources.video import VideoFileSource
from stages.jobs.file_job import FileJob
from stages.settings import JobConfig
from stages.outputs.sample import make_test_clip

FAKE = JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), workers=1)


def damage(path, *, seed: int, start: float = 0.3, end: float = 0.6, fraction: float = 0.02):
    """A copy of ``path`` with ``fraction`` of the bytes between ``start`` and
    ``end`` (fractions of the size) XOR-ed with random non-zero values."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    lo, hi = int(len(data) * start), int(len(data) * end)
    for i in rng.choice(np.arange(lo, hi), size=int((hi - lo) * fraction), replace=False):
        data[i] ^= int(rng.integers(1, 256))
    bad = path.with_name(f"damaged-{seed}-{path.name}")
    bad.write_bytes(bytes(data))
    return bad


def pyav_skipping_errors(path) -> list[int]:
    """pts of the frames PyAV's plain decode loop yields when undecodable
    packets are skipped, as FFmpeg does: the reference to match."""
    pts = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                pts.extend(frame.pts for frame in stream.decode(packet))
            except av.error.InvalidDataError:
                continue
    return pts


@pytest.fixture
def clip60(tmp_path):
    return make_test_clip(tmp_path / "clip.mp4", frames=60, size=(160, 120))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_damage_in_the_middle_is_skipped_not_the_end(clip60, seed, caplog):
    bad = damage(clip60, seed=seed)
    expected = pyav_skipping_errors(bad)
    with caplog.at_level(logging.WARNING, logger="stages.sources.video"):
        with VideoFileSource(bad) as source:
            frames = list(source)
    assert len(frames) == source.frames_read == len(expected) >= 45
    assert [f.index for f in frames] == list(range(len(frames)))
    # pts are the decoded pictures' own: a lost picture leaves a gap in time
    assert [f.pts_ticks for f in frames] == expected
    assert set(expected) <= set(pyav_skipping_errors(clip60))
    assert source.truncated is False
    assert source.frames_lost == 60 - len(frames) > 0
    assert source.packets_skipped > 0
    assert f"damaged: {source.frames_lost} of 60 pictures could not be decoded" in caplog.text


def test_undamaged_file_reports_no_damage(clip60):
    with VideoFileSource(clip60) as source:
        assert len(list(source)) == 60
    assert (source.frames_lost, source.packets_skipped, source.frames_concealed) == (0, 0, 0)
    assert source.truncated is False


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv", "clip.webm"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_cut_file_is_truncated_not_damaged(tmp_path, name, keep):
    codec = "libvpx-vp9" if name.endswith(".webm") else "libx264"
    clip = make_test_clip(tmp_path / name, frames=100, size=(160, 120), codec=codec)
    cut = tmp_path / ("cut-" + name)
    cut.write_bytes(clip.read_bytes()[:int(clip.stat().st_size * keep)])
    expected = pyav_skipping_errors(cut)
    with VideoFileSource(cut) as source:
        frames = list(source)
    # every frame before the cut, also those a decoder still held when the data ended
    assert [f.pts_ticks for f in frames] == expected and 0 < len(expected) < 100
    assert source.truncated is True  # also where the file declares no frame count (Matroska)
    assert (source.frames_lost, source.packets_skipped) == (0, 0)


def test_damage_in_the_middle_and_a_cut_end(clip60):
    bad = damage(clip60, seed=1)
    cut = bad.with_name("cut-" + bad.name)
    cut.write_bytes(bad.read_bytes()[:int(bad.stat().st_size * 0.8)])
    with VideoFileSource(cut) as source:
        frames = list(source)
    assert len(frames) > 20
    assert source.truncated is True and source.frames_lost > 0


def test_file_job_processes_every_decodable_frame_of_a_damaged_file(clip60, tmp_path):
    bad = damage(clip60, seed=2)
    expected = pyav_skipping_errors(bad)
    summary = FileJob(bad, tmp_path / "out", FAKE).run()
    assert summary.frames_read == summary.frames_written == len(expected)
    assert summary.truncated is False
    assert summary.frames_lost == 60 - len(expected) > 0
    video = tmp_path / "out" / bad.name
    with av.open(str(video)) as container:
        written = [frame.time for frame in container.decode(video=0)]
    with av.open(str(bad)) as container:
        tb = container.streams.video[0].time_base
    assert written == pytest.approx([float(p * tb) for p in expected], abs=1e-6)


def test_cli_reports_a_damaged_input(clip60, tmp_path, capsys):
    import json

    import run_stream

    bad = damage(clip60, seed=0)
    expected = pyav_skipping_errors(bad)
    summary = tmp_path / "summary.json"
    code = run_stream.main([str(bad), "-o", str(tmp_path / "out"), "--backend",
                            "tests.support.fakes:ZeroBackend", "--summary-json", str(summary)])
    out, err = capsys.readouterr()
    assert code == 0, err
    lost = 60 - len(expected)
    assert f"{len(expected)} frames read" in out
    assert f"input damaged: {lost} undecodable frames skipped" in out
    assert "truncated" not in out
    data = json.loads(summary.read_text())
    assert (data["frames_read"], data["frames_lost"], data["truncated"]) == (len(expected), lost,
                                                                              False)


def test_batch_rows_report_a_damaged_input(clip60, tmp_path, capsys):
    import json

    import run_stream

    tree = tmp_path / "in"
    tree.mkdir()
    bad = damage(clip60, seed=3)
    (tree / "bad.mp4").write_bytes(bad.read_bytes())
    (tree / "good.mp4").write_bytes(clip60.read_bytes())
    out = tmp_path / "out"
    code = run_stream.main([str(tree), "-o", str(out), "--backend", "tests.support.fakes:ZeroBackend",
                            "--resolution", "64x48"])
    assert code == 0, capsys.readouterr().err
    rows = {r["input"]: r for r in json.loads((out / "batch-summary.json").read_text())["files"]}
    expected = len(pyav_skipping_errors(bad))
    assert (rows["bad.mp4"]["frames"], rows["bad.mp4"]["frames_lost"]) == (expected, 60 - expected)
    assert (rows["good.mp4"]["frames"], rows["good.mp4"]["frames_lost"]) == (60, 0)
    assert not rows["bad.mp4"]["truncated"]
