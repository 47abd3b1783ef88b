"""A live stream whose codec changes mid-stream (issue 21, item 15): H.264, then MPEG-2, then
H.264 again, in one MPEG-TS over HTTP from a server on 127.0.0.1 that the test starts."""

from __future__ import annotations

import io
import logging
from fractions import Fraction

import av
import numpy as np
import pytest

from stages.errors import InputError
from stages.recording.raw import RawRecorder
from stages.recording.segments import SegmentNamer
from stages.sources.stream import LiveSource
from tests.support.file_server import serve_folder

SIZE = (160, 120)
PART_FRAMES = 25
PARTS = (("libx264", 30), ("mpeg2video", 110), ("libx264", 190))  # codec, first grey level
CODECS = ["h264", "mpeg2video", "h264"]


def _part(codec: str, grey: int, first: int, tables_version: int) -> bytes:
    """One encoder's MPEG-TS (PID 0x100): ``PART_FRAMES`` flat grey pictures from ``grey``
    up, a key frame every 5, timed on from frame ``first``."""
    out = io.BytesIO()
    with av.open(out, "w", format="mpegts",
                 options={"tables_version": str(tables_version)}) as container:
        stream = container.add_stream(codec, rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        if codec == "libx264":
            stream.options = {"g": "5", "preset": "ultrafast"}
        else:
            stream.gop_size = 5
        for number in range(PART_FRAMES):
            frame = av.VideoFrame.from_ndarray(
                np.full((SIZE[1], SIZE[0], 3), grey + number, np.uint8), format="bgr24")
            frame.pts, frame.time_base = first + number, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


@pytest.fixture(params=[(0, 1, 2), (0, 0, 0)], ids=["new-pmt-version", "restarted-encoder"])
def changing_stream(request, tmp_path):
    """The three parts' TS bytes one after the other, served once over HTTP; yields the URL."""
    data = b"".join(_part(codec, grey, PART_FRAMES * number, version) for number, (
        (codec, grey), version) in enumerate(zip(PARTS, request.param)))
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "stream.ts").write_bytes(data)
    with serve_folder(tmp_path / "www") as base:
        yield f"{base}/stream.ts"


def _part_of(image: np.ndarray) -> int | None:
    """Which part a flat grey picture comes from, or None for any other picture."""
    if image.std() > 4:
        return None
    level = image.mean()
    for number, (_, grey) in enumerate(PARTS):
        if grey - 4 <= level <= grey + PART_FRAMES + 4:
            return number
    return None


def _one_connection(url: str, recorder: RawRecorder) -> list:
    """Every frame of the stream's first connection (the source gives up when it ends)."""
    frames = []
    source = LiveSource(url, name="cam", stall_timeout=5.0, max_retries=0, packets=recorder)
    with source, pytest.raises(InputError, match="gave up"):
        for frame in source:
            frames.append(frame)
    return frames


def _decode_all(path) -> tuple[str, int, list[np.ndarray]]:
    """(codec, packets, pictures) of a recorded segment, decoded with its own codec."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        pictures = []
        for packet in [*packets, None]:
            pictures += [f.to_ndarray(format="bgr24") for f in stream.decode(packet)]
        return stream.codec_context.name, len(packets), pictures


def test_every_part_of_a_stream_whose_codec_changes_is_processed_and_recorded_apart(
        changing_stream, tmp_path, caplog):
    recorder = RawRecorder(SegmentNamer(tmp_path / "cam", "cam"), segment_seconds=600)
    with caplog.at_level(logging.INFO, logger="stages.sources.stream"), recorder:
        frames = _one_connection(changing_stream, recorder)
    parts = [_part_of(frame.image) for frame in frames]
    counts = [parts.count(number) for number in range(len(PARTS))]
    # the demuxer's parser (still cutting H.264) mixes up a part's last picture with the next
    # part's start; the last part's pictures start at its first key frame that the parser cut
    assert counts[0] >= PART_FRAMES - 1 and counts[1] >= PART_FRAMES - 1, counts
    assert counts[2] >= PART_FRAMES - 5 and None not in parts, (counts, parts)
    assert parts == sorted(parts)  # in order: nothing of a part after the next one
    changes = [r.getMessage() for r in caplog.records if "codec changed" in r.getMessage()]
    assert changes == ["cam: codec changed from h264 to mpeg2video",
                       "cam: codec changed from mpeg2video to h264"], changes
    assert [p.suffix for p in recorder.finished] == [".mkv"] * 3, recorder.finished
    for number, path in enumerate(recorder.finished):
        codec, packets, pictures = _decode_all(path)
        assert codec == CODECS[number]
        assert len(pictures) >= PART_FRAMES - 5 and packets >= len(pictures), (path, packets)
        assert {_part_of(picture) for picture in pictures} == {number}, path
