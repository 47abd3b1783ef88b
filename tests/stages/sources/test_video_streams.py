"""Files with several video streams: FFmpeg's choice by default, ``video_stream`` for another."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

import run_stream
from stages.errors import InputError, UsageError
from stages.outputs.manifest import output_settings
from stages.settings import JobConfig
from stages.sources import stream_choice
from stages.sources.video import VideoFileSource, open_source, probe_input

FAKE = "tests.support.fakes:ZeroBackend"
DEFAULT = av.stream.Disposition.default


def several_streams(path: Path, streams: list[dict]) -> Path:
    """A Matroska file with one H.264 stream per entry of ``streams``.

    Each entry has ``size`` (w, h), ``frames``, ``grey`` (the level of its
    flat pictures, so a test can tell which stream was read) and optionally
    ``default`` (its disposition).
    """
    with av.open(str(path), "w") as container:
        made = []
        for spec in streams:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height = spec["size"]
            stream.pix_fmt = "yuv420p"
            stream.disposition = DEFAULT if spec.get("default") else av.stream.Disposition(0)
            made.append(stream)
        for index in range(max(spec["frames"] for spec in streams)):
            for stream, spec in zip(made, streams):
                if index < spec["frames"]:
                    w, h = spec["size"]
                    picture = np.full((h, w, 3), spec["grey"], np.uint8)
                    for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                        container.mux(packet)
        for stream in made:
            for packet in stream.encode():
                container.mux(packet)
    return path


SMALL = {"size": (64, 48), "frames": 3, "grey": 40}
LARGE = {"size": (96, 64), "frames": 5, "grey": 200}


def _grey(source) -> float:
    frame = next(iter(source))
    return float(frame.image.mean())


@pytest.mark.parametrize("order", ["small first", "large first"])
def test_the_largest_video_stream_is_read_wherever_it_is(tmp_path, order):
    streams = [SMALL, LARGE] if order == "small first" else [LARGE, SMALL]
    path = several_streams(tmp_path / "two.mkv", streams)
    with open_source(path) as source:
        assert (source.info.width, source.info.height) == LARGE["size"]
        assert source.info.frames in (None, LARGE["frames"])
        assert abs(_grey(source) - LARGE["grey"]) < 10


def test_a_default_stream_wins_over_a_slightly_larger_one(tmp_path):
    marked = {**SMALL, "default": True}
    path = several_streams(tmp_path / "two.mkv", [LARGE, marked])
    with open_source(path) as source:
        assert (source.info.width, source.info.height) == SMALL["size"]


@pytest.mark.parametrize("wanted,expected", [(0, SMALL), (1, LARGE)])
def test_video_stream_reads_the_stream_asked_for(tmp_path, wanted, expected):
    path = several_streams(tmp_path / "two.mkv", [SMALL, LARGE])
    with VideoFileSource(path, video_stream=wanted) as source:
        assert (source.info.width, source.info.height) == expected["size"]
        assert abs(_grey(source) - expected["grey"]) < 10


@pytest.mark.parametrize("opener", [open_source, VideoFileSource, probe_input])
@pytest.mark.parametrize("wanted", [2, 7])
def test_a_video_stream_the_file_lacks_is_one_line_naming_the_file(tmp_path, opener, wanted):
    path = several_streams(tmp_path / "two.mkv", [SMALL, LARGE])
    with pytest.raises(InputError) as caught:
        opener(path, video_stream=wanted)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert f"--video-stream {wanted}" in message and "2 video streams" in message


def test_one_info_line_names_the_stream_read_and_how_to_pick_another(tmp_path, caplog):
    path = several_streams(tmp_path / "two.mkv", [SMALL, LARGE])
    with caplog.at_level(logging.INFO, logger="stages.sources.stream_choice"):
        with open_source(path):
            pass
    said = [r for r in caplog.records if "video stream" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO]
    lines = [r.getMessage() for r in said]
    assert str(path) in lines[0] and "2 video streams" in lines[0]
    assert "video stream 1 (96x64" in lines[0] and "--video-stream" in lines[0]


def test_a_file_with_one_video_stream_says_nothing_of_streams(tmp_path, caplog):
    path = several_streams(tmp_path / "one.mkv", [SMALL])
    with caplog.at_level(logging.INFO, logger="stages.sources.stream_choice"):
        with open_source(path):
            pass
    assert not [r for r in caplog.records if "video stream" in r.getMessage()]


def test_video_stream_is_for_videos_not_still_images(tmp_path):
    import cv2

    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 90, np.uint8))
    with pytest.raises(InputError, match="--video-stream applies to videos"):
        open_source(image, video_stream=0)


def _fake_stream(width: int, height: int, flags=av.stream.Disposition(0)):
    return SimpleNamespace(codec_context=SimpleNamespace(width=width, height=height),
                           disposition=flags)


def test_the_choice_follows_ffmpegs_scores():
    cover = _fake_stream(3840, 2160, av.stream.Disposition.attached_pic)
    hd, uhd = _fake_stream(1920, 1080, DEFAULT), _fake_stream(3840, 2160)
    sd_default, fhd = _fake_stream(640, 480, DEFAULT), _fake_stream(1920, 1080)
    assert stream_choice.best_video_stream([cover, hd]) is hd  # cover art last
    assert stream_choice.best_video_stream([hd, uhd]) is uhd  # 8.3 M pixels beat 2.1 M + 5 M for default
    assert stream_choice.best_video_stream([fhd, sd_default]) is sd_default  # 0.3 M + 5 M beat 2.1 M
    twins = [_fake_stream(64, 48), _fake_stream(64, 48)]
    assert stream_choice.best_video_stream(twins) is twins[0]  # a tie: the first


@pytest.mark.parametrize("value,error", [(-1, InputError), ("1", UsageError), (1.0, UsageError)])
def test_a_bad_video_stream_setting_is_one_line(value, error):
    with pytest.raises(error, match="--video-stream") as caught:
        JobConfig(video_stream=value)
    assert "\n" not in str(caught.value)


def test_a_batch_manifest_records_the_stream_asked_for():
    assert "video_stream" not in output_settings(JobConfig())  # older manifests stay complete
    assert output_settings(JobConfig(video_stream=1))["video_stream"] == 1


@pytest.mark.parametrize("extra,frames", [([], LARGE["frames"]), (["--video-stream", "0"],
                                                                  SMALL["frames"])])
def test_the_command_line_reads_the_stream_chosen(tmp_path, capsys, extra, frames):
    path = several_streams(tmp_path / "two.mkv", [SMALL, LARGE])
    summary = tmp_path / "summary.json"
    code = run_stream.main([str(path), "-o", str(tmp_path / "out"), "--backend", FAKE,
                            "--resolution", "64x48", "--no-video", "--summary-json",
                            str(summary), *extra])
    assert code == 0, capsys.readouterr().err
    assert json.loads(summary.read_text())["frames_read"] == frames


def test_a_batch_reads_the_stream_asked_for_in_each_video(tmp_path, capsys):
    for name in ("a.mkv", "b.mkv"):
        several_streams(tmp_path / name, [SMALL, LARGE])
    code = run_stream.main([str(tmp_path / "*.mkv"), "-o", str(tmp_path / "out"), "--backend",
                            FAKE, "--resolution", "64x48", "--no-video", "--video-stream", "0"])
    assert code == 0, capsys.readouterr().err
    logs = sorted((tmp_path / "out").rglob("*.jsonl"))
    assert len(logs) == 2
    assert [len(p.read_text().splitlines()) for p in logs] == [SMALL["frames"]] * 2
