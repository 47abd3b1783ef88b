"""A live source string parsed once: its kind, masked form, name and what FFmpeg opens."""

from __future__ import annotations

import dataclasses

import pytest

from stages.errors import InputError
from stages.sources.spec import LiveSpec, is_live, live_kind

NOT_LIVE = ("not a live source (expected rtsp://, rtsps://, http(s)://, /dev/videoN, "
            "a camera index or lavfi:)")


@pytest.mark.parametrize(("spec", "kind"), [
    ("rtsp://127.0.0.1:8554/cam1", "rtsp"),
    ("RTSP://u:p@cam/x", "rtsp"),
    ("rtsps://cam/x", "rtsp"),
    ("http://cam/video.mjpg", "http"),
    ("https://cam/index.m3u8", "http"),
    ("/dev/video0", "camera"),
    ("/dev/video12", "camera"),
    ("0", "camera"),
    ("3", "camera"),
    (" 3\n", "camera"),
    ("lavfi:testsrc2=size=320x240:rate=25", "lavfi"),
    ("clip.mp4", None),
    ("/data/videos/cam1.mp4", None),
    ("/dev/videos", None),
    ("/dev/video0/x", None),
    ("file:///tmp/x.mp4", None),
    ("", None),
])
def test_kind_and_is_live(spec, kind):
    assert live_kind(spec) == kind
    assert is_live(spec) is (kind is not None)


def test_a_password_is_masked_and_kept_out_of_the_repr():
    spec = LiveSpec.parse(" rtsp://bob:hunter2@127.0.0.1:8554/cam1?password=x&channel=2 ")
    assert spec.spec == "rtsp://bob:hunter2@127.0.0.1:8554/cam1?password=x&channel=2"
    assert spec.kind == "rtsp" and not spec.is_camera
    assert spec.masked == "rtsp://***@127.0.0.1:8554/cam1?password=***&channel=2"
    assert spec.name == "127.0.0.1_8554_cam1_channel-2"
    assert spec.url == spec.spec
    for text in (repr(spec), str(spec), spec.masked, spec.name):
        assert "hunter2" not in text and "bob" not in text
    assert spec.masked in repr(spec)


@pytest.mark.parametrize(("text", "name", "url"), [
    ("0", "video0", "/dev/video0"),
    ("12", "video12", "/dev/video12"),
    ("/dev/video3", "dev_video3", "/dev/video3"),
])
def test_a_camera_index_or_device(text, name, url):
    spec = LiveSpec.parse(text)
    assert spec.is_camera and spec.kind == "camera"
    assert (spec.spec, spec.masked, spec.name, spec.url) == (text, text, name, url)


def test_http_and_lavfi():
    http = LiveSpec.parse("https://u:pw@cam.local/video.mjpg")
    assert (http.kind, http.masked, http.name) == ("http", "https://***@cam.local/video.mjpg",
                                                   "cam.local_video.mjpg")
    lavfi = LiveSpec.parse("lavfi:testsrc2=size=64x48:rate=5")
    assert (lavfi.kind, lavfi.url, lavfi.is_camera) == ("lavfi", "testsrc2=size=64x48:rate=5", False)
    assert lavfi.name == "lavfi_testsrc2_size_64x48_rate_5"


@pytest.mark.parametrize("text", ["clip.mp4", "ftp://bob:hunter2@cam/x.mp4", "", "/dev/videos"])
def test_a_file_or_unknown_scheme_is_not_live(text):
    with pytest.raises(InputError) as err:
        LiveSpec.parse(text)
    message = str(err.value)
    assert message.endswith(NOT_LIVE) and "\n" not in message and "hunter2" not in message
    if "@" in text:
        assert message.startswith("ftp://***@cam/x.mp4: ")


@pytest.mark.parametrize(("text", "problem"), [
    ("rtsp://dave:p@ss/w0rd@127.0.0.1/x", "ambiguous URL"),
    ("rtsp://127.0.0.1:99999/cam", "port '99999'"),
    ("rtsp://[::zz]:8554/cam", "not an IPv6 address"),
    ("http://cam one/x", "white space"),
])
def test_a_malformed_url_fails_as_the_url_check_says(text, problem):
    with pytest.raises(InputError, match=problem) as err:
        LiveSpec.parse(text)
    assert "w0rd" not in str(err.value) and "\n" not in str(err.value)


def test_the_value_is_frozen_and_checks_its_kind():
    spec = LiveSpec.parse("0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.kind = "rtsp"
    with pytest.raises(ValueError, match="kind must be one of"):
        LiveSpec(spec="x", kind="file", masked="x", name="x", url="x")
    assert LiveSpec.parse("0") == spec


@pytest.mark.parametrize("text", [
    "rtsp://dave:s3cr3t @127.0.0.1/x",  # space in the password
    "rtsp://da ve:s3cr3t@127.0.0.1/x",  # space in the user
    "rtsp://dave:s3\tcr3t@127.0.0.1/x",
    "rtsp://dave:s3cr3t\n@127.0.0.1/x",
    "http://dave:s3'cr3t x@127.0.0.1:8080/v.mjpg",
    "rtsp://dave:s3cr3t@127.0.0.1:99999/x",  # bad port
    "rtsp://dave:s3cr3t@[::1/x",  # bad IPv6 bracket
    "rtsp://dave:s3%20cr3t@[::1/x",  # percent-escapes
    "rtsp://dave:s3@cr/3t@127.0.0.1/x",  # "@" and "/" in the password
])
def test_a_refused_url_never_shows_its_user_info(text):
    with pytest.raises(InputError) as err:
        LiveSpec.parse(text)
    message = str(err.value)
    assert message.startswith(("rtsp://***@", "http://***@")) and "\n" not in message
    assert "cr3t" not in message and "dave" not in message and "da ve" not in message


@pytest.mark.parametrize("text", ["rtsp://dave:s3'cr3t@127.0.0.1/x", 'rtsp://dave:s3"cr3t@[::1]/x'])
def test_a_quote_in_the_password_is_masked_too(text):
    spec = LiveSpec.parse(text)  # FFmpeg takes it; the masked form must hide it all
    assert spec.masked.startswith("rtsp://***@")
    for shown in (spec.masked, repr(spec), spec.name):
        assert "cr3t" not in shown and "dave" not in shown
