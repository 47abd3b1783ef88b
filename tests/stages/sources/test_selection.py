"""Frame stride and time range of video files (``--frame-step``, ``--start``, ``--end``).

Clips are flat colour frames (``frame_colour(i)`` for picture i of the file),
so every frame shows which picture of the original it is.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from stages.sources import video as decode
from stages.sources.video import open_source
from stages.errors import InputError
from stages.outputs.sample import frame_colour
from stages.sources._selection import Selection
from stages.outputs.video import muxer_options

CODECS = {".mp4": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}


def make_clip(path, *, frames: int = 100, first_pts: int = 35, gop: int = 10,
              pts: list[int] | None = None, time_base: Fraction = Fraction(1, 25),
              size: tuple[int, int] = (32, 32), open_gop: bool = False):
    """A clip of ``frames`` flat colour frames at 25 fps, a key frame every ``gop``.

    The default first pts (35 ticks of 1/25 s) is 1.4 s: a file that does not
    start at 0. libx264 uses B-frames, so pts and decode order differ; with
    ``open_gop`` the B-frames before a key frame refer to the GOP before it.
    """
    fmt = "mp4" if path.suffix == ".mp4" else ""
    ticks = pts if pts is not None else [first_pts + i * round(1 / (25 * time_base))
                                         for i in range(frames)]
    options = muxer_options(fmt, time_base, faststart=True) if fmt else {}
    with av.open(os.fspath(path), "w", options=options) as container:
        codec_options = {"g": str(gop)}
        if open_gop:
            codec_options["x264-params"] = "open-gop=1:bframes=3:scenecut=0"
        stream = container.add_stream(CODECS[path.suffix], rate=25, options=codec_options)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        for index, tick in enumerate(ticks):
            image = np.empty((size[1], size[0], 3), np.uint8)
            image[:] = frame_colour(index)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = tick, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def read_all(path, **selection_kwargs):
    with open_source(path, **selection_kwargs) as source:
        frames = list(source)
    return source, frames


def assert_original_pictures(frames) -> None:
    """Each frame shows the picture of the original that its index names."""
    for frame in frames:
        np.testing.assert_allclose(frame.image.mean(axis=(0, 1)), frame_colour(frame.index),
                                   atol=6, err_msg=f"frame {frame.index}")


# --- the acceptance: --frame-step 5 --start 1 --end 2 on a late-starting file ---

@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_stride_and_range_keep_source_frame_numbers_and_pts(tmp_path, suffix):
    clip = make_clip(tmp_path / f"late{suffix}")  # pts 1.4 s .. 5.36 s
    source, frames = read_all(clip, frame_step=5, start=1, end=2)
    # start/end count from the file's start (1.4 s): pts in [2.4 s, 3.4 s), every 5th
    assert [f.index for f in frames] == [25, 30, 35, 40, 45]
    assert [Fraction(f.pts_ticks) * Fraction(*f.time_base) for f in frames] == [
        Fraction(12, 5) + Fraction(k, 5) for k in range(5)]
    assert [f.pts for f in frames] == pytest.approx([2.4, 2.6, 2.8, 3.0, 3.2], abs=1e-9)
    assert_original_pictures(frames)
    assert source.seeked and source.frames_read == 5
    assert source.truncated is False and source.frames_lost == 0 and source.packets_skipped == 0


def test_planned_frame_count_and_span_for_the_progress_bar(tmp_path):
    clip = make_clip(tmp_path / "late.mp4")
    with open_source(clip, frame_step=5, start=1, end=2) as source:
        assert source.info.frames == 5  # CFR mp4: known before decoding
        assert source.info.duration == pytest.approx(1.0)
    with open_source(clip, frame_step=3) as source:
        assert source.info.frames == 34 and source.info.duration == pytest.approx(4.0)
        assert len(list(source)) == 34
    with open_source(make_clip(tmp_path / "late.mkv"), start=1, end=2) as source:
        assert source.info.frames is None  # Matroska declares no frame count


def test_a_seek_skips_decoding_the_start(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", frames=400, first_pts=0)
    source, frames = read_all(clip, start=15.6)  # the last 10 frames
    assert [f.index for f in frames] == list(range(390, 400))
    assert_original_pictures(frames)
    assert source.seeked
    assert source.frames_decoded < 30  # one GOP before the start at most, not 390 frames
    assert source.truncated is False and source.frames_lost == 0


def test_end_stops_reading_without_calling_the_rest_lost_or_truncated(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", frames=400, first_pts=0)
    source, frames = read_all(clip, end=0.4)
    assert [f.index for f in frames] == list(range(10))
    assert not source.seeked
    assert source.frames_decoded < 20
    assert source.truncated is False and source.frames_lost == 0


# --- stride only, range only ---------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_stride_only_counts_from_the_first_frame(tmp_path, suffix):
    source, frames = read_all(make_clip(tmp_path / f"c{suffix}", frames=23), frame_step=4)
    assert [f.index for f in frames] == [0, 4, 8, 12, 16, 20]
    assert [f.pts for f in frames] == pytest.approx([1.4 + i / 25 for i in range(0, 23, 4)])
    assert_original_pictures(frames)
    assert source.frames_decoded == 23 and not source.seeked and source.truncated is False


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_range_only(tmp_path, suffix):
    source, frames = read_all(make_clip(tmp_path / f"c{suffix}"), start=2, end=2.2)
    assert [f.index for f in frames] == [50, 51, 52, 53, 54]
    assert frames[0].pts == pytest.approx(3.4)
    assert_original_pictures(frames)


def test_start_only_reads_to_the_end(tmp_path):
    source, frames = read_all(make_clip(tmp_path / "c.mp4"), start=3.5)
    assert [f.index for f in frames] == list(range(88, 100))
    assert source.truncated is False


def test_stride_counts_from_the_first_frame_of_the_range(tmp_path):
    source, frames = read_all(make_clip(tmp_path / "c.mp4"), frame_step=3, start=0.5, end=1)
    assert [f.index for f in frames] == [13, 16, 19, 22]  # 0.5 s is between frames 12 and 13


def test_variable_frame_rate_counts_the_pictures_before_the_start(tmp_path, caplog):
    ticks = [0]
    for i in range(1, 120):
        ticks.append(ticks[-1] + (1 if i % 3 else 3))  # 25 fps with holes: not CFR
    clip = make_clip(tmp_path / "vfr.mp4", pts=ticks)
    with caplog.at_level(logging.INFO, logger="stages.sources.video"):
        source, frames = read_all(clip, start=4, end=4.5)
    expected = [i for i, t in enumerate(ticks) if 100 <= t < 112.5]
    assert [f.index for f in frames] == expected
    assert [round(f.pts * 25, 6) for f in frames] == [ticks[i] for i in expected]
    assert_original_pictures(frames)
    assert source.seeked and "not constant frame rate" in caplog.text


def test_grid_and_counting_agree_on_a_cfr_file(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "c.mp4", frames=200)
    _, by_grid = read_all(clip, start=5.1, frame_step=2)
    monkeypatch.setattr(decode, "frame_grid", lambda *a: None)
    _, by_count = read_all(clip, start=5.1, frame_step=2)
    assert [f.index for f in by_grid] == [f.index for f in by_count]
    assert by_grid[0].index == 128 and len(by_grid) == 36


def test_raw_stream_without_timestamps_decodes_up_to_the_start(tiny_clip):
    clip = tiny_clip("clip.h264", frames=20)  # no pts: nothing to seek by
    source, frames = read_all(clip, start=0.5, frame_step=2)
    assert [f.index for f in frames] == [13, 15, 17, 19]
    assert not source.seeked


# --- empty ranges and bad settings ------------------------------------------------

def test_start_beyond_the_end_is_one_clear_error(tmp_path):
    clip = make_clip(tmp_path / "c.mp4")  # 4 s long
    with pytest.raises(InputError) as info:
        open_source(clip, start=4.5)
    message = str(info.value)
    assert "--start 4.5" in message and "beyond the end" in message and str(clip) in message
    assert "\n" not in message


def test_a_range_between_two_frames_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"no frame between --start 1.01 s and --end 1.02 s"):
        open_source(make_clip(tmp_path / "c.mkv"), start=1.01, end=1.02)


@pytest.mark.parametrize("kwargs, option", [
    (dict(frame_step=0), "--frame-step"), (dict(frame_step=-2), "--frame-step"),
    (dict(frame_step=1.5), "--frame-step"), (dict(frame_step=True), "--frame-step"),
    (dict(start=-1.0), "--start"), (dict(end=float("nan")), "--end"),
    (dict(end=float("inf")), "--end"), (dict(start=2.0, end=2.0), "--end"),
    (dict(start=3.0, end=1.0), "--end"),
])
def test_bad_settings_name_the_option(kwargs, option):
    with pytest.raises(InputError) as info:
        Selection(**kwargs)
    assert str(info.value).startswith(option + ": ") and "\n" not in str(info.value)


def test_bad_settings_fail_before_the_file_is_read(tmp_path):
    with pytest.raises(InputError, match="--frame-step"):
        open_source(tmp_path / "missing.mp4", frame_step=0)


def test_still_images_take_no_selection(tmp_path):
    image = tmp_path / "still.png"
    cv2.imwrite(os.fspath(image), np.full((8, 8, 3), 90, np.uint8))
    assert len(list(open_source(image))) == 1  # the defaults are fine
    for kwargs in (dict(frame_step=2), dict(start=0.0), dict(end=1.0)):
        with pytest.raises(InputError) as info:
            open_source(image, **kwargs)
        assert "still image" in str(info.value) and "\n" not in str(info.value)


# --- damage accounting under a range (issue 11) -----------------------------------

def _cut(path, fraction: float):
    cut = path.with_name("cut-" + path.name)
    cut.write_bytes(path.read_bytes()[:int(path.stat().st_size * fraction)])
    return cut


def test_a_range_before_the_cut_of_a_truncated_file_is_complete(tmp_path):
    cut = _cut(make_clip(tmp_path / "c.mp4", frames=200, first_pts=0), 0.6)
    source, frames = read_all(cut, start=1, end=2)
    assert len(frames) == 25 and source.truncated is False and source.frames_lost == 0
    source, frames = read_all(cut, start=1)  # reaches the cut: still truncated
    assert 25 < len(frames) < 175 and source.truncated is True


# --- against decoding everything ---------------------------------------------------

CASES = [dict(frame_step=s, start=a, end=b) for s, a, b in [
    (1, 0.0, None), (2, None, 0.4), (3, 0.96, 1.0), (1, 1.0, 1.04), (5, 0.5, None), (7, 2.37, 3.91),
    (2, 3.95, None), (1, 0.01, 0.05), (4, 1.99, 2.01), (3, None, None), (1, 3.3, 4.6),
]]


@pytest.mark.parametrize("suffix, open_gop", [(".mp4", False), (".mkv", False), (".webm", False),
                                              (".mp4", True), (".mkv", True)])
def test_every_selection_is_the_filtered_full_decode(tmp_path, suffix, open_gop):
    clip = make_clip(tmp_path / f"c{suffix}", gop=12, open_gop=open_gop)
    with open_source(clip) as source:
        everything = list(source)
    tb = source.info.time_base
    origin = Fraction(everything[0].pts_ticks) * tb  # the file starts at its first frame

    def expected(frame_step, start, end):
        times = [(f, Fraction(f.pts_ticks) * tb - origin) for f in everything]
        return [f for f, t in times if (start is None or t >= Fraction(repr(start)))
                and (end is None or t < Fraction(repr(end)))][::frame_step]

    for case in CASES:
        with open_source(clip, **case) as source:
            got = list(source)
        want = expected(**case)
        assert [(f.index, f.pts_ticks) for f in got] == [(f.index, f.pts_ticks) for f in want], case
        assert source.truncated is False and source.frames_lost == 0, case
        assert_original_pictures(got)


class LateSeeks:
    """A container whose first seek lands ``late`` ticks after the offset asked for,
    as a container that indexes key frames by dts can."""

    def __init__(self, container, late: int) -> None:
        self._container, self._late, self.seeks = container, late, []

    def seek(self, offset, **kwargs):
        self.seeks.append(offset)
        late = self._late if len(self.seeks) == 1 else 0
        return self._container.seek(offset + late, **kwargs)

    def __getattr__(self, name):
        return getattr(self._container, name)


def test_a_seek_that_lands_after_the_start_is_retried_further_back(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "c.mp4", frames=200, first_pts=0)
    containers = []
    real_open = decode._open_container

    def open_late(path):
        containers.append(LateSeeks(real_open(path), late=2 * 12800))  # 2 s in ticks of 1/12800
        return containers[-1]

    monkeypatch.setattr(decode, "_open_container", open_late)
    source, frames = read_all(clip, start=4.0, end=4.2)
    assert [f.index for f in frames] == [100, 101, 102, 103, 104]
    assert_original_pictures(frames)
    assert len(containers[0].seeks) == 2 and containers[0].seeks[1] < containers[0].seeks[0]
