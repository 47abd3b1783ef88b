"""PieceVideo and join_pieces: a video encoded in pieces plays as one, with exact timestamps."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import pytest

from stages.errors import OutputError
from stages.outputs.pieces import PieceVideo, join_pieces
from stages.outputs.video import VideoWriter
from tests.stages.outputs.test_video import (ROUND_TRIPS, _decode, _seconds, audio_packets,
                                             make_clip_with_audio)


def _in_pieces(frames, folder, info, cuts, **kwargs) -> PieceVideo:
    """``frames`` written into a PieceVideo, cut before every index in ``cuts``."""
    folder.mkdir(exist_ok=True)
    video = PieceVideo(folder, info, **kwargs)
    for i, frame in enumerate(frames):
        if i in cuts:
            video.cut()
        video.write(frame.image, frame.pts_ticks)
    video.cut()
    return video


def _joined(video: PieceVideo, path, info, **kwargs):
    staged = video.join(path, source_info=info, **kwargs)
    os.replace(staged.tmp, staged.path)
    return path


@pytest.mark.parametrize("kwargs", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_joined_pieces_keep_every_frame_timestamp_and_the_rate(tiny_clip, tmp_path, kwargs):
    source, frames = _decode(tiny_clip(**kwargs))
    video = _in_pieces(frames, tmp_path / "work", source.info, cuts={3, 4, 8})
    assert [p.frames for p in video.pieces] == [3, 1, 4, len(frames) - 8]
    assert [p.name for p in video.pieces] == [f"piece-00000{n}.mp4.partial" for n in (1, 2, 3, 4)]
    joined, out = _decode(_joined(video, tmp_path / "out.mp4", source.info))
    assert len(out) == len(frames) == joined.info.frames
    assert _seconds(out) == _seconds(frames)
    with VideoWriter(tmp_path / "whole.mp4", source.info) as writer:  # as one encoder writes it
        for frame in frames:
            writer.write(frame.image, frame.pts_ticks)
    whole, _ = _decode(tmp_path / "whole.mp4")
    assert joined.info.rate == whole.info.rate == source.info.rate
    assert joined.info.duration == pytest.approx(whole.info.duration, abs=1e-9)
    with av.open(os.fspath(tmp_path / "out.mp4")) as container:  # each piece starts with a key frame
        keys = [p.is_keyframe for p in container.demux(video=0) if p.size]
    assert [i for i, key in enumerate(keys) if key][:4] == [0, 3, 4, 8]


def test_the_input_audio_is_copied_once_around_the_joined_pieces(tmp_path):
    src = make_clip_with_audio(tmp_path / "in.mp4", frames=50, audio_seconds=2)
    source, frames = _decode(src)
    video = _in_pieces(frames, tmp_path / "work", source.info, cuts={20, 40})
    _joined(video, tmp_path / "out.mp4", source.info, audio_from=src)
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(src)
    assert _seconds(_decode(tmp_path / "out.mp4")[1]) == _seconds(frames)


def test_a_discarded_piece_leaves_the_committed_ones(tmp_path, tiny_clip):
    source, frames = _decode(tiny_clip(frames=10))
    video = _in_pieces(frames[:5], tmp_path / "work", source.info, cuts=set())
    for frame in frames[5:8]:
        video.write(frame.image, frame.pts_ticks)
    video.discard()
    assert sorted(os.listdir(tmp_path / "work")) == ["piece-000001.mp4.partial"]
    resumed = PieceVideo(tmp_path / "work", source.info, pieces=video.pieces)
    for frame in frames[5:]:
        resumed.write(frame.image, frame.pts_ticks)
    resumed.cut()
    _, out = _decode(_joined(resumed, tmp_path / "out.mp4", source.info))
    assert _seconds(out) == _seconds(frames)


def test_pieces_whose_stream_headers_differ_are_not_joined(tmp_path, tiny_clip):
    source, frames = _decode(tiny_clip(frames=6))
    first = _in_pieces(frames[:3], tmp_path / "a", source.info, cuts=set())
    other = _in_pieces(frames[3:], tmp_path / "b", source.info, cuts=set(), preset="ultrafast")
    files = [tmp_path / "a" / first.pieces[0].name, tmp_path / "b" / other.pieces[0].name]
    with pytest.raises(OutputError, match="stream header differs"):
        join_pieces(files, first.pieces + other.pieces, tmp_path / "out.mp4", source.info)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no join left behind


def test_an_ntsc_start_keeps_its_exact_first_pts(tmp_path, tiny_clip):
    source, frames = _decode(tiny_clip(fps=Fraction(30000, 1001), time_base=Fraction(1, 90000),
                                       pts=[12345 + 3003 * i for i in range(9)]))
    video = _in_pieces(frames, tmp_path / "work", source.info, cuts={4})
    _, out = _decode(_joined(video, tmp_path / "out.mp4", source.info))
    assert _seconds(out)[0] == Fraction(12345, 90000)
