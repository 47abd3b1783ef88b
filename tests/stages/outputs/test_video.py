"""VideoWriter: exact round trip of frames and timestamps, safe files, odd sizes."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from stages.sources.video import VideoFileSource
from stages.sources.file_source import SourceInfo
from stages.errors import OutputError
from stages.outputs.sample import frame_colour
from stages.outputs.video import VideoWriter, muxer_options, write_image


def _decode(path):
    with VideoFileSource(path) as source:
        frames = list(source)
    return source, frames


def _seconds(frames):
    return [Fraction(f.pts_ticks) * Fraction(*f.time_base) for f in frames]


def _info(width=64, height=48, rate=Fraction(25), time_base=Fraction(1, 25)):
    return SourceInfo(name="test", width=width, height=height, rate=rate,
                      time_base=time_base, frames=None, duration=None, codec="h264")


def _picture(index, width=64, height=48):
    image = np.empty((height, width, 3), np.uint8)
    image[:] = frame_colour(index)
    return image


ROUND_TRIPS = {
    "cfr-25": dict(frames=12),
    "first-pts-not-0": dict(frames=12, first_pts=7),
    "ntsc-30000/1001": dict(frames=12, fps=Fraction(30000, 1001), first_pts=5),
    "ntsc-90k-odd-start": dict(fps=Fraction(30000, 1001), time_base=Fraction(1, 90000),
                               pts=[12345 + 3003 * i for i in range(12)]),
    "vfr": dict(pts=[0, 3, 7, 8, 15, 16, 30, 31, 40, 52], time_base=Fraction(1, 100)),
    "vfr-ms-start": dict(pts=[5, 6, 9, 30, 31, 32, 33, 60, 61, 95], time_base=Fraction(1, 1000),
                         fps=Fraction(30000, 1001)),
}


@pytest.mark.parametrize("kwargs", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip_keeps_count_timestamps_and_rate(tiny_clip, tmp_path, kwargs):
    source, frames = _decode(tiny_clip(**kwargs))
    out_path = tmp_path / "out.mp4"
    with VideoWriter(out_path, source.info) as writer:
        for frame in frames:
            writer.write(frame.image, frame.pts_ticks)
    result, out_frames = _decode(out_path)
    assert len(out_frames) == len(frames) == result.info.frames
    assert _seconds(out_frames) == _seconds(frames)
    assert [f.pts for f in out_frames] == pytest.approx([f.pts for f in frames], abs=1e-9)
    assert result.info.rate == source.info.rate
    assert result.info.duration == pytest.approx(source.info.duration, abs=1e-9)
    for i, frame in enumerate(out_frames):
        np.testing.assert_allclose(frame.image.mean(axis=(0, 1)), frame_colour(i), atol=5)


def test_exact_ticks_when_time_base_is_1_over_n(tmp_path):
    info = _info(time_base=Fraction(1, 90000), rate=Fraction(30000, 1001))
    with VideoWriter(tmp_path / "out.mp4", info) as writer:
        for i in range(5):
            writer.write(_picture(i), 1000 + 3003 * i)
    _, frames = _decode(tmp_path / "out.mp4")
    assert [f.pts_ticks for f in frames] == [1000 + 3003 * i for i in range(5)]
    assert {f.time_base for f in frames} == {(1, 90000)}


def test_muxer_options_pick_a_shared_timescale():
    assert muxer_options("mp4", Fraction(1, 25)) == {
        "video_track_timescale": "12800", "movie_timescale": "12800"}
    assert muxer_options("mov", Fraction(1001, 30000))["movie_timescale"] == "30000"
    assert muxer_options("matroska", Fraction(1, 25)) == {}


def test_odd_size_is_padded_to_even(tmp_path):
    info = _info(width=63, height=47)
    with VideoWriter(tmp_path / "odd.mp4", info) as writer:
        assert writer.size == (64, 48)
        for i in range(4):
            writer.write(_picture(i, 63, 47), i)
    source, frames = _decode(tmp_path / "odd.mp4")
    assert len(frames) == 4 and (source.info.width, source.info.height) == (64, 48)
    np.testing.assert_allclose(frames[2].image[:47, :63].mean(axis=(0, 1)), frame_colour(2),
                               atol=5)


def test_final_name_appears_only_on_close(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = VideoWriter(path, _info())
    partial = writer.tmp
    assert partial.name.startswith(f".clip.mp4.partial-{os.getpid()}-")
    writer.write(_picture(0), 0)
    assert partial.exists() and not path.exists()
    writer.close()
    assert path.exists() and not partial.exists()
    writer.close()  # idempotent


def test_existing_file_is_untouched_until_close(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"previous run")
    with VideoWriter(path, _info()) as writer:
        for i in range(3):
            writer.write(_picture(i), i)
        assert path.read_bytes() == b"previous run"
    assert len(_decode(path)[1]) == 3


def test_exception_in_with_block_leaves_playable_partial_video(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, _info()) as writer:
            for i in range(10):
                if i == 4:
                    raise KeyboardInterrupt
                writer.write(_picture(i), i)
    source, frames = _decode(path)
    assert [f.pts for f in frames] == pytest.approx([0, 0.04, 0.08, 0.12])
    assert source.truncated is False


def test_no_frames_means_no_file(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"previous run")
    with pytest.raises(RuntimeError):
        with VideoWriter(path, _info()):
            raise RuntimeError("failed before the first frame")
    assert path.read_bytes() == b"previous run"
    assert os.listdir(tmp_path) == ["clip.mp4"]


def test_timestamps_that_do_not_increase_are_moved_later(tmp_path):
    with VideoWriter(tmp_path / "clip.mp4", _info()) as writer:
        for ticks in (0, 1, 1, 3):
            writer.write(_picture(0), ticks)
    assert writer.pts_adjusted == 1
    assert [f.pts_ticks for f in _decode(tmp_path / "clip.mp4")[1]] == [0, 512, 1024, 1536]


def test_missing_pts_follow_the_rate(tmp_path):
    with VideoWriter(tmp_path / "clip.mp4", _info(time_base=Fraction(1, 1000))) as writer:
        for _ in range(3):
            writer.write(_picture(0), None)
    assert [f.pts for f in _decode(tmp_path / "clip.mp4")[1]] == pytest.approx([0, .04, .08])


def test_bad_uses(tmp_path):
    with pytest.raises(OutputError, match="unsupported video extension"):
        VideoWriter(tmp_path / "clip.gif", _info())
    with pytest.raises(OutputError, match="cannot create"):
        VideoWriter(tmp_path / "no-such-dir" / "clip.mp4", _info())
    writer = VideoWriter(tmp_path / "clip.mp4", _info())
    with pytest.raises(ValueError, match="expected"):
        writer.write(np.zeros((48, 64), np.uint8), 0)
    writer.close()
    with pytest.raises(OutputError, match="after close"):
        writer.write(_picture(0), 0)


def test_write_image_is_atomic(tmp_path):
    path = tmp_path / "still.png"
    path.write_bytes(b"old")
    image = _picture(3, 9, 7)
    write_image(path, image)
    assert (cv2.imread(str(path)) == image).all()
    assert os.listdir(tmp_path) == ["still.png"]
    with pytest.raises(OutputError):
        write_image(tmp_path / "still.nope", image)
    assert os.listdir(tmp_path) == ["still.png"]


def make_clip_with_audio(path, *, frames: int = 25, fps: int = 25,
                         audio: tuple[tuple[str, int, str], ...] = (("aac", 48000, "mono"),),
                         audio_seconds: float = 1.1):
    """An H.264 clip of flat colour frames with tone audio streams: (encoder, rate, layout)."""
    with av.open(os.fspath(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        streams = []
        for codec, rate, layout in audio:
            stream = container.add_stream(codec, rate=rate)
            stream.layout = layout
            streams.append(stream)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_picture(i), format="bgr24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for stream in streams:
            _tone(container, stream, audio_seconds)
    return path


def _tone(container, stream, seconds: float) -> None:
    rate, size = stream.rate, stream.codec_context.frame_size or 1024
    channels = stream.codec_context.layout.nb_channels
    fmt = stream.codec_context.format.name
    for start in range(0, round(rate * seconds), size):
        t = np.arange(start, start + size) / rate
        wave = 0.3 * np.sin(2 * np.pi * 440 * t)
        if fmt.startswith("s16"):
            wave = (wave * 2**15).astype(np.int16)
        elif fmt.startswith("s32"):
            wave = (wave * 2**31).astype(np.int32)
        else:
            wave = wave.astype(np.float32)
        data = np.tile(wave, (channels, 1)) if fmt.endswith("p") else \
            np.tile(wave[:, None], (1, channels)).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=stream.codec_context.layout)
        frame.sample_rate, frame.pts = rate, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def audio_packets(path) -> list[list[tuple]]:
    """Per audio stream: (codec, pts in seconds, dts in seconds, duration in seconds, bytes)."""
    with av.open(os.fspath(path)) as container:
        streams = container.streams.audio
        out = {s.index: [] for s in streams}
        for packet in container.demux(*streams) if streams else ():
            if packet.size:
                tb = packet.time_base
                out[packet.stream_index].append(
                    (packet.stream.codec_context.codec.canonical_name, packet.pts * tb, packet.dts * tb,
                     packet.duration * tb, bytes(packet)))
    return list(out.values())


def _copy(src, out, *, frames=None, **kwargs):
    source, decoded = _decode(src)
    with VideoWriter(out, source.info, audio_from=src, **kwargs) as writer:
        for frame in decoded[:frames]:
            writer.write(frame.image, frame.pts_ticks)
    return source, decoded, writer


def test_audio_streams_are_copied_packet_for_packet(tmp_path):
    src = make_clip_with_audio(tmp_path / "in.mp4", audio=(("aac", 48000, "mono"),
                                                          ("libmp3lame", 44100, "stereo")))
    source, decoded, writer = _copy(src, tmp_path / "out.mp4")
    expected = audio_packets(src)
    assert [s[0][0] for s in expected] == ["aac", "mp3"] and min(map(len, expected)) > 40
    assert expected[0][0][1] < 0  # AAC priming: the first packet starts before 0
    assert audio_packets(tmp_path / "out.mp4") == expected
    assert writer.audio_packets == sum(map(len, expected))
    with av.open(os.fspath(tmp_path / "out.mp4")) as out, av.open(os.fspath(src)) as inp:
        for a, b in zip(out.streams.audio, inp.streams.audio, strict=True):
            assert (a.codec_context.codec.canonical_name, a.sample_rate, a.channels) == \
                (b.codec_context.codec.canonical_name, b.sample_rate, b.channels)
    result, frames = _decode(tmp_path / "out.mp4")
    assert _seconds(frames) == _seconds(decoded) and len(frames) == 25
    assert result.info.rate == source.info.rate


def test_audio_is_interleaved_with_the_video(tmp_path):
    src = make_clip_with_audio(tmp_path / "in.mp4", frames=50, audio_seconds=2)
    _copy(src, tmp_path / "out.mp4")
    with av.open(os.fspath(tmp_path / "out.mp4")) as container:
        order = [p.stream.type for p in container.demux() if p.size]
    video_before_audio = order.index("audio")
    assert 0 < video_before_audio < 10 and "video" in order[-10:]


def test_an_interrupted_run_keeps_the_audio_up_to_its_last_frame(tmp_path):
    src = make_clip_with_audio(tmp_path / "in.mp4")
    _copy(src, tmp_path / "out.mp4", frames=10)
    [expected] = audio_packets(src)
    [copied] = audio_packets(tmp_path / "out.mp4")
    assert copied == expected[:len(copied)]
    assert copied[-1][2] < Fraction(10, 25) <= expected[len(copied)][2]


def test_audio_the_container_cannot_hold_is_dropped_with_a_warning(tmp_path, caplog):
    src = make_clip_with_audio(tmp_path / "in.mov", audio=(("pcm_mulaw", 8000, "mono"),
                                                          ("aac", 48000, "mono")))
    _copy(src, tmp_path / "out.mp4")
    assert "cannot hold pcm_mulaw audio" in caplog.text
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(src)[1:]
    assert len(_decode(tmp_path / "out.mp4")[1]) == 25


def test_no_audio_unless_asked_and_inputs_without_audio(tmp_path, tiny_clip, caplog):
    src = make_clip_with_audio(tmp_path / "in.mp4")
    source, decoded = _decode(src)
    with VideoWriter(tmp_path / "out.mp4", source.info) as writer:
        writer.write(decoded[0].image, decoded[0].pts_ticks)
    assert audio_packets(tmp_path / "out.mp4") == []
    silent = tiny_clip(frames=3)
    _copy(silent, tmp_path / "silent.mp4")
    assert audio_packets(tmp_path / "silent.mp4") == [] and not caplog.text


def test_an_unfinished_video_is_readable_with_its_audio(tmp_path):
    """What a SIGKILL leaves: the partial mp4 is fragmented, readable up to its last fragment."""
    src = make_clip_with_audio(tmp_path / "in.mp4", frames=100, audio_seconds=4)
    source, decoded = _decode(src)
    writer = VideoWriter(tmp_path / "out.mp4", source.info, audio_from=src)
    for frame in decoded[:70]:
        writer.write(frame.image, frame.pts_ticks)
    with av.open(os.fspath(writer.tmp)) as partial:
        frames = [f.pts for f in partial.decode(video=0)]
    with av.open(os.fspath(writer.tmp)) as partial:
        audio = [p for p in partial.demux(audio=0) if p.size]
    assert 25 <= len(frames) < 70 and len(audio) > 40
    assert not (tmp_path / "out.mp4").exists()
    writer.close()
    assert len(_decode(tmp_path / "out.mp4")[1]) == 70
    assert audio_packets(tmp_path / "out.mp4")[0] == \
        audio_packets(src)[0][:len(audio_packets(tmp_path / "out.mp4")[0])]



def _noise(index, width, height):
    return np.random.default_rng(index).integers(0, 256, (height, width, 3), np.uint8)


@pytest.mark.parametrize("picture", [_picture, _noise], ids=["flat", "noise"])
def test_an_unfinished_mkv_is_readable_to_about_a_second_before_its_end(tmp_path, picture):
    """What a SIGKILL leaves of a Matroska video (a live segment, or ``-o out.mkv``):
    clusters of at most a second, each flushed as it is cut, so at 25 fps no more than
    1.5 s is lost, the encoder's lookahead included (issue 21, item 8). Small pictures
    (flat) and large ones (noise: megabytes of video) alike."""
    frames, step, size = 200, 40, (160, 120)  # 8 s at 25 fps, pts in ms
    writer = VideoWriter(tmp_path / "out.mkv", _info(*size, time_base=Fraction(1, 1000)))
    for index in range(frames):
        writer.write(picture(index, *size), index * step)
    with av.open(os.fspath(writer.tmp)) as partial:
        pts = [f.pts for f in partial.decode(video=0)]
    writer.close()
    assert pts == [i * step for i in range(len(pts))]
    assert len(pts) >= frames - 1.5 * 25, f"{len(pts)} of {frames} frames readable"
