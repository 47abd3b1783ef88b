"""Camera settings (--camera-size/-fps/-format) reach FFmpeg's v4l2 input; --mirror flips.

There is no camera here: what reaches FFmpeg is read off a spy in place of
``av.open``, and FFmpeg's own refusals come from real opens of a missing
device and of a file that is no device.
"""

from __future__ import annotations

import av
import numpy as np
import pytest

import run_stream
from stages.api import results
from stages.settings import check_camera
from stages.sources.camera import camera_options, open_camera, parse_camera_size
from stages.errors import InputError, UsageError
from stages.settings import JobConfig
from stages.sources.spec import LiveSpec
from stages.sources.stream import LiveSource, _open_args
from stages.jobs.live import LiveJob

# left half white, right half black: which side is which tells whether a picture was flipped
from stages.settings import LiveConfig

# left half white, right half black: which side is which tells whether a picture was flipped
HALVES = "lavfi:color=c=black:s=64x48:r=10,drawbox=x=0:y=0:w=32:h=48:c=white:t=fill"


class SpyOpen:
    """Stands in for ``av.open``: notes each call and fails it, as a missing camera does."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, url, format=None, options=None, timeout=None, **_):
        self.calls.append({"url": url, "format": format, "options": dict(options or {})})
        raise av.error.FileNotFoundError(2, "No such file or directory", url)


@pytest.fixture
def spy(monkeypatch) -> SpyOpen:
    spy = SpyOpen()
    monkeypatch.setattr(av, "open", spy)
    return spy


def _one_pass(source: LiveSource) -> InputError:
    """Run ``source`` (max_retries=0) until it gives up; its error."""
    with pytest.raises(InputError) as caught:
        list(source)
    return caught.value


def test_settings_become_ffmpeg_v4l2_options():
    assert camera_options(size=(1280, 720), fps=30, format="MJPEG") == {
        "video_size": "1280x720", "framerate": "30", "input_format": "mjpeg"}
    assert camera_options(format="yuyv") == {"input_format": "yuyv422"}  # v4l2's name, FFmpeg's
    assert camera_options(format="h264", fps=29.97) == {"input_format": "h264",
                                                        "framerate": "29.97"}
    assert camera_options() == {}
    assert parse_camera_size(" 640X480 ") == (640, 480)


@pytest.mark.parametrize("call,named", [
    (lambda: parse_camera_size("12"), "--camera-size '12': expected WxH"),
    (lambda: parse_camera_size("0x480"), "--camera-size 0x480: each side"),
    (lambda: check_camera(fps=0), "--camera-fps 0"),
    (lambda: check_camera(fps=float("nan")), "--camera-fps nan"),
    (lambda: check_camera(format="bogus"), "--camera-format 'bogus': FFmpeg knows no such"),
    (lambda: check_camera(format="aac"), "--camera-format 'aac'"),  # a decoder, not of video
])
def test_a_malformed_setting_is_one_line_at_start(call, named):
    with pytest.raises(InputError) as caught:
        call()
    assert str(caught.value).startswith(named) and "\n" not in str(caught.value)


def test_the_options_reach_ffmpeg_for_a_device_and_an_index(spy):
    options = camera_options(size=(1280, 720), fps=30, format="mjpeg")
    for spec, url in (("/dev/video3", "/dev/video3"), ("2", "/dev/video2")):
        _one_pass(LiveSource(spec, camera=options, max_retries=0))
        assert spy.calls[-1] == {"url": url, "format": "v4l2", "options": options}


def test_a_live_run_passes_them_to_its_cameras_only(spy, tmp_path):
    live = LiveConfig(camera_size=(640, 480), camera_format="yuyv", max_retries=0)
    job = LiveJob([("/dev/video5", "cam"), ("rtsp://127.0.0.1:9/x", "door")], tmp_path,
                  JobConfig(), live)
    cam, door = job._sources
    assert cam.camera == {"video_size": "640x480", "input_format": "yuyv422"}
    assert door.camera == {}
    _one_pass(cam)
    assert spy.calls[-1]["options"] == cam.camera and spy.calls[-1]["format"] == "v4l2"
    assert _open_args(LiveSpec.parse("rtsp://127.0.0.1:9/x"), "tcp", 5.0,
                      {"video_size": "1x1"})[2].keys() == {
        "rtsp_transport", "timeout", "probesize", "analyzeduration"}


def test_the_api_passes_them_too(spy):
    live = LiveConfig(camera_fps=15, mirror=True, max_retries=0)
    with pytest.raises(InputError):
        next(results("/dev/video7", config=JobConfig(backend="tests.support.fakes:ZeroBackend"),
                     live=live))
    assert spy.calls[-1] == {"url": "/dev/video7", "format": "v4l2",
                             "options": {"framerate": "15"}}


@pytest.mark.parametrize("spec", ["rtsp://127.0.0.1:9/x", "http://127.0.0.1:9/x.mjpg",
                                  "lavfi:testsrc2=size=64x48:rate=5"])
def test_settings_for_a_source_that_is_no_camera_are_a_usage_error(spec, tmp_path):
    with pytest.raises(UsageError, match="--camera-size is for cameras"):
        LiveSource(spec, camera={"video_size": "640x480"})
    with pytest.raises(UsageError, match="--camera-fps is for cameras"):
        LiveJob([(spec, None)], tmp_path, JobConfig(), LiveConfig(camera_fps=30))


def test_a_missing_camera_gives_ffmpegs_reason_in_one_line():
    error = str(_one_pass(LiveSource("/dev/video99", camera={"input_format": "mjpeg"},
                                     max_retries=0)))
    assert "\n" not in error
    assert "No such file or directory ([video4linux2,v4l2] Cannot open video device " \
           "/dev/video99" in error, error


def test_a_refusal_carries_the_line_ffmpeg_logged(tmp_path):
    not_a_device = tmp_path / "video0"
    not_a_device.write_bytes(b"\0" * 64)
    level = av.logging.get_level()
    with pytest.raises(OSError) as caught:
        open_camera(str(not_a_device), {"input_format": "mjpeg"}, 2.0)
    assert "[video4linux2,v4l2] ioctl(VIDIOC_QUERYCAP)" in caught.value.strerror
    assert av.logging.get_level() == level  # FFmpeg's logging is on for the open only


@pytest.mark.parametrize("argv,code,named", [
    (["rtsp://127.0.0.1:9/x", "--camera-size", "640x480"], 2, "--camera-size is for cameras"),
    (["/dev/video0", "--camera-format", "bogus"], 1, "--camera-format 'bogus'"),
    (["/dev/video0", "--camera-size", "640"], 1, "--camera-size '640'"),
    (["/dev/video0", "--camera-fps", "-5"], 1, "--camera-fps -5"),
    (["/dev/video0", "--mirror", "--record", "raw"], 2, "--mirror flips what is processed"),
])
def test_the_command_line_says_it_in_one_line(argv, code, named, tmp_path, capsys):
    assert run_stream.main(argv + ["-o", str(tmp_path), "--backend", "tests.support.fakes:ZeroBackend"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"posestream: error: {named}"), err


def _first_frame(mirror: bool) -> np.ndarray:
    with LiveSource(HALVES, mirror=mirror) as source:
        return next(iter(source)).image


def test_mirror_flips_the_picture_handed_to_the_pipeline():
    plain, mirrored = _first_frame(False), _first_frame(True)
    assert plain[:, :32].mean() > 200 and plain[:, 32:].mean() < 50
    assert np.array_equal(mirrored, plain[:, ::-1])


class BrightSideBackend:
    """Maps with one standing person on the brighter half of the network input."""

    name = "bright-side"

    def __init__(self, config) -> None:
        self.config = config

    def infer(self, batch: np.ndarray) -> np.ndarray:
        from tests.support.people_maps import people_maps, person_joints

        n, h, w, _ = batch.shape
        left = batch[0, :, : w // 2].mean() > batch[0, :, w // 2:].mean()
        neck_x = w / 8 * (0.25 if left else 0.75) + 0.3  # off the map's pixel centres
        maps = people_maps(h // 8, w // 8, [person_joints(neck_x, 9.2)])
        return np.repeat(maps[None], n, axis=0)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("mirror", [False, True])
def test_keypoints_come_from_the_mirrored_picture(mirror):
    config = JobConfig(backend=f"{__name__}:BrightSideBackend")
    stream = results(HALVES, config=config, live=LiveConfig(mirror=mirror))
    try:
        result = next(r for r in stream if r.people)
    finally:
        stream.close()
    neck_x = result.people[0].keypoints[1, 0]
    width = result.frame.image.shape[1]
    assert (neck_x > width / 2) == mirror, neck_x  # the white half, where the person is, moved
