"""Sample and test clips: what they contain, and that they are deterministic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from stages.sources.video import VideoFileSource
from stages.outputs.sample import frame_colour, make_sample_clip, sample_frames


def _decode(path):
    with VideoFileSource(path) as source:
        return source.info, list(source)


def test_sample_clip(tmp_path):
    path = make_sample_clip(tmp_path / "sample.mp4", seconds=0.4, size=(320, 180))
    info, frames = _decode(path)
    assert (info.width, info.height, info.rate, info.codec) == (320, 180, Fraction(25), "h264")
    assert len(frames) == info.frames == 10
    assert [f.pts for f in frames] == [i / 25 for i in range(10)]
    assert path.read_bytes()[4:8] == b"ftyp" and b"moov" in path.read_bytes()[:4096]
    assert not np.array_equal(frames[0].image, frames[5].image)  # the photos drift


def test_sample_frames_show_both_photos_in_colour_and_grey():
    first = next(sample_frames(1, (320, 180)))
    left, right = first[:, :160], first[:, 160:]
    assert left.std() > 30 and right.std() > 30  # photos, not background
    assert np.abs(left[..., 2].astype(int) - left[..., 0]).mean() > 10  # astronaut: colour
    grey = first[20:160, 170:300]  # inside the cameraman at 166..310 x 18..162
    assert np.abs(grey[..., 2].astype(int) - grey[..., 0]).max() < 3  # cameraman: grey


def test_sample_is_deterministic(tmp_path):
    a = make_sample_clip(tmp_path / "a.mp4", seconds=0.2, size=(160, 96))
    b = make_sample_clip(tmp_path / "b.mp4", seconds=0.2, size=(160, 96))
    frames_a, frames_b = _decode(a)[1], _decode(b)[1]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(frames_a, frames_b))
    assert len(frames_a) == len(frames_b) == 5


def test_test_clip_frames_and_timestamps(tiny_clip):
    info, frames = _decode(tiny_clip(pts=[2, 5, 6, 20], time_base=Fraction(1, 50)))
    assert [Fraction(f.pts_ticks) * Fraction(*f.time_base) for f in frames] == [
        Fraction(p, 50) for p in (2, 5, 6, 20)]
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(frame.image.mean(axis=(0, 1)), frame_colour(i), atol=4)


def test_test_clip_other_codec_and_container(tiny_clip):
    info, frames = _decode(tiny_clip("clip.mkv", codec="mpeg4", frames=4, size=(32, 16)))
    assert (info.codec, info.width, info.height, len(frames)) == ("mpeg4", 32, 16, 4)
