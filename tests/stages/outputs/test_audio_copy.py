"""Audio under --start/--end: only the audio that plays with the frames written."""

from __future__ import annotations

import av

import run_stream
from tests.stages.outputs.test_video import audio_packets, make_clip_with_audio

FAKE = ["--backend", "tests.support.fakes:ZeroBackend", "--resolution", "64x48"]


def video_span(path) -> tuple[float, float]:
    """(first frame's time, last frame's end) of the video stream, in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None)
        step = 1 / float(stream.average_rate)
    return times[0], times[-1] + step


def test_a_time_range_copies_the_audio_of_that_range_only(tmp_path):
    src = make_clip_with_audio(tmp_path / "in.mp4", frames=75, audio_seconds=3.0)
    assert run_stream.main([str(src), "-o", str(tmp_path / "out"), *FAKE,
                            "--start", "1", "--end", "2"]) == 0
    out = tmp_path / "out" / "in.mp4"
    first, end = video_span(out)
    assert (first, end) == (1.0, 2.0)
    packets = audio_packets(out)[0]
    source = audio_packets(src)[0]
    assert packets, "the range's audio is kept"
    # every packet overlaps the video's span, none is missing inside it, bytes unchanged
    assert all(pts + duration > first and pts < end for _, pts, _, duration, _ in packets)
    inside = [p for p in source if p[1] + p[3] > first and p[1] < end]
    assert [p[4] for p in packets] == [p[4] for p in inside]


def test_a_whole_run_still_copies_all_the_audio(tmp_path):
    src = make_clip_with_audio(tmp_path / "in.mp4", frames=75, audio_seconds=3.0)
    assert run_stream.main([str(src), "-o", str(tmp_path / "out"), *FAKE, "--frame-step", "5"]) == 0
    assert [p[4] for p in audio_packets(tmp_path / "out" / "in.mp4")[0]] == \
        [p[4] for p in audio_packets(src)[0]]
