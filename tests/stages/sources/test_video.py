"""File sources: bad inputs, frames and timestamps, truncation, stopping."""

from __future__ import annotations

import logging
import threading
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from stages.sources.video import (ImageFileSource, SourceInfo, VideoFileSource, open_source,
                           probe_input)
from stages.errors import InputError, InputNotFoundError
from stages.outputs.sample import frame_colour

OPENERS = [probe_input, open_source, VideoFileSource, ImageFileSource]


def _one_line_error(exc_info, path) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# --- bad inputs -------------------------------------------------------------

@pytest.mark.parametrize("opener", OPENERS)
def test_missing_file(tmp_path, opener):
    path = tmp_path / "nope.mp4"
    with pytest.raises(InputNotFoundError) as exc_info:
        opener(path)
    assert isinstance(exc_info.value, FileNotFoundError)
    assert "no such file" in _one_line_error(exc_info, path)


@pytest.mark.parametrize("opener", OPENERS)
def test_directory(tmp_path, opener):
    with pytest.raises(InputError) as exc_info:
        opener(tmp_path)
    assert "directory" in _one_line_error(exc_info, tmp_path)


@pytest.mark.parametrize("opener", OPENERS)
def test_zero_byte_file(tmp_path, opener):
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(InputError) as exc_info:
        opener(path)
    assert "empty file" in _one_line_error(exc_info, path)


@pytest.mark.parametrize("opener", [probe_input, open_source, VideoFileSource])
def test_text_file_named_mp4(text_file, opener):
    path = text_file("clip.mp4")
    with pytest.raises(InputError) as exc_info:
        opener(path)
    message = _one_line_error(exc_info, path)
    assert "not a video file PyAV can read (Invalid data found" in message
    assert isinstance(exc_info.value, ValueError)


def test_text_file_named_png(text_file):
    path = text_file("photo.png")
    with pytest.raises(InputError) as exc_info:
        open_source(path)
    assert "not an image file" in _one_line_error(exc_info, path)


def test_file_without_video_stream(tmp_path):
    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    for opener in (probe_input, VideoFileSource):
        with pytest.raises(InputError) as exc_info:
            opener(path)
        assert "has no video stream (found: audio)" in _one_line_error(exc_info, path)


# --- truncated files ---------------------------------------------------------

def _cut(path, size: int):
    data = path.read_bytes()
    cut = path.with_name("cut-" + path.name)
    cut.write_bytes(data[:size])
    return cut


def test_truncated_video_decodes_what_it_can(tiny_clip, caplog):
    # Enough frames that 60% of the bytes reach well past the first frame.
    clip = tiny_clip(frames=100, faststart=True)
    cut = _cut(clip, int(clip.stat().st_size * 0.6))
    with caplog.at_level(logging.WARNING, logger="stages.sources.video"):
        with VideoFileSource(cut) as source:
            frames = list(source)
    assert 0 < source.frames_read == len(frames) < 100
    assert source.truncated is True
    assert [f.index for f in frames] == list(range(len(frames)))
    assert "truncated" in caplog.text or "decoding stopped" in caplog.text


def test_cut_before_any_frame_is_an_input_error(tiny_clip):
    clip = tiny_clip(frames=30, faststart=True)
    mdat = clip.read_bytes().index(b"mdat")
    cut = _cut(clip, mdat + 16)
    probe_input(cut)  # the header is intact...
    with pytest.raises(InputError) as exc_info:  # ...but not one frame decodes
        VideoFileSource(cut)
    assert "no decodable video frame" in _one_line_error(exc_info, cut)


def test_cut_without_index_is_an_input_error(tiny_clip):
    clip = tiny_clip(frames=30, faststart=False)  # moov at the end: cut away
    cut = _cut(clip, int(clip.stat().st_size * 0.6))
    with pytest.raises(InputError, match="not a video file PyAV can read"):
        VideoFileSource(cut)


def test_complete_video_is_not_truncated(tiny_clip):
    with VideoFileSource(tiny_clip(frames=12)) as source:
        assert len(list(source)) == 12
    assert source.truncated is False


# --- frames and timestamps ---------------------------------------------------

def test_frames_and_info(tiny_clip):
    clip = tiny_clip(frames=10, size=(64, 48))
    with open_source(clip) as source:
        assert isinstance(source, VideoFileSource)
        frames = list(source)
    info = source.info
    assert isinstance(info, SourceInfo)
    assert (info.width, info.height, info.rate, info.frames) == (64, 48, Fraction(25), 10)
    assert info.codec == "h264" and info.duration == pytest.approx(0.4)
    assert info.name == str(clip)
    assert [f.index for f in frames] == list(range(10))
    for i, frame in enumerate(frames):
        assert frame.source == str(clip)
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        assert Fraction(frame.pts_ticks) * Fraction(*frame.time_base) == Fraction(i, 25)
        assert frame.pts == pytest.approx(i / 25, abs=1e-9)
        assert frame.wall > 0
        np.testing.assert_allclose(frame.image.mean(axis=(0, 1)), frame_colour(i), atol=4)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(first_pts=7), [Fraction(7 + i, 25) for i in range(5)]),
    (dict(fps=Fraction(30000, 1001), first_pts=3), [Fraction(1001 * (3 + i), 30000)
                                                   for i in range(5)]),
    (dict(pts=[0, 3, 7, 8, 40], time_base=Fraction(1, 100)),
     [Fraction(p, 100) for p in (0, 3, 7, 8, 40)]),
])
def test_timestamps_are_exact(tiny_clip, kwargs, expected):
    with VideoFileSource(tiny_clip(frames=5, **kwargs)) as source:
        got = [Fraction(f.pts_ticks) * Fraction(*f.time_base) for f in source]
    assert got == expected


def test_missing_pts_are_derived_from_durations(tiny_clip):
    clip = tiny_clip("clip.h264", frames=6)  # raw H.264: frames carry no pts
    with VideoFileSource(clip) as source:
        ticks = [f.pts_ticks for f in source]
    steps = {b - a for a, b in zip(ticks, ticks[1:])}
    assert ticks[0] == 0 and len(ticks) == 6 and len(steps) == 1
    assert float(steps.pop() * source.info.time_base) == pytest.approx(1 / 25)


def test_odd_sized_video(tiny_clip):
    with VideoFileSource(tiny_clip(size=(63, 47), frames=3)) as source:
        shapes = {f.image.shape for f in source}
    assert shapes == {(47, 63, 3)}


# --- images --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["photo.png", "photo.jpg", "photo.bmp", "photo.tiff"])
def test_image_source(tmp_path, name):
    path = tmp_path / name
    image = np.zeros((30, 41, 3), np.uint8)
    image[:, :20] = (200, 100, 50)
    assert cv2.imwrite(str(path), image)
    with open_source(path) as source:
        assert isinstance(source, ImageFileSource)
        frames = list(source)
    assert len(frames) == 1 and source.frames_read == 1
    frame = frames[0]
    assert (frame.index, frame.pts, frame.pts_ticks, frame.time_base) == (0, 0.0, 0, (1, 1))
    assert frame.image.shape == (30, 41, 3)
    np.testing.assert_allclose(frame.image[5, 5], (200, 100, 50), atol=6)
    assert (source.info.width, source.info.height, source.info.rate) == (41, 30, 1)


def test_grey_image_becomes_bgr(tmp_path):
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.full((8, 9), 77, np.uint8))
    with ImageFileSource(path) as source:
        (frame,) = source
    assert frame.image.shape == (8, 9, 3) and (frame.image == 77).all()


def test_image_without_extension_is_found_by_content(tmp_path):
    path = tmp_path / "snapshot"
    ok, data = cv2.imencode(".png", np.full((6, 8, 3), 9, np.uint8))
    path.write_bytes(data.tobytes())
    with open_source(path) as source:
        assert isinstance(source, ImageFileSource)
        assert len(list(source)) == 1


# --- stopping --------------------------------------------------------------------

def test_context_exit_stops_iteration(tiny_clip):
    with VideoFileSource(tiny_clip(frames=5)) as source:
        next(source)
    assert source.closed
    assert list(source) == []
    source.close()  # idempotent


def test_close_from_another_thread_between_frames(tiny_clip):
    source = VideoFileSource(tiny_clip(frames=10))
    next(source)
    closer = threading.Thread(target=source.close)
    closer.start()
    closer.join()
    assert list(source) == []
    assert source.frames_read == 1 and source.truncated is False


def test_close_from_another_thread_while_decoding(tiny_clip):
    source = VideoFileSource(tiny_clip(frames=10))
    convert = source._to_frame

    def to_frame_then_close(*picture):
        frame = convert(*picture)
        if frame.index == 2:  # the iterating thread is inside __next__ now
            closer = threading.Thread(target=source.close)
            closer.start()
            closer.join()
        return frame

    source._to_frame = to_frame_then_close
    frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2]
    assert source.closed and source.truncated is False
