"""Credentials never reach logs, errors or file names."""

from __future__ import annotations

import logging

import pytest

from stages.sources.credentials import CredentialFilter, display_name, mask_credentials, mask_url


@pytest.mark.parametrize(("url", "masked"), [
    ("rtsp://admin:hunter2@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
    ("rtsps://admin:hunter2@cam.example.com/live", "rtsps://***@cam.example.com/live"),
    ("http://u:p@127.0.0.1:8080/video.mjpg", "http://***@127.0.0.1:8080/video.mjpg"),
    ("https://u:p@cam.example.com:8443/hls/x.m3u8", "https://***@cam.example.com:8443/hls/x.m3u8"),
    ("rtsp://admin@10.0.0.5/stream1", "rtsp://***@10.0.0.5/stream1"),
    ("rtsp://admin:@10.0.0.5/stream1", "rtsp://***@10.0.0.5/stream1"),
    ("RTSP://Admin:PW@Host/x", "RTSP://***@Host/x"),
    # percent-encoded special characters in the password
    ("rtsp://bob:s3cr%3At%40x%2F%23@127.0.0.1:8554/cam1", "rtsp://***@127.0.0.1:8554/cam1"),
    # an unencoded "@" in the password is masked whole
    ("rtsp://bob:p@ss@127.0.0.1/cam1", "rtsp://***@127.0.0.1/cam1"),
    # unencoded "/", "?", "#" and ":" in the password: the user info runs to the last "@"
    ("rtsp://dave:p@ss/w0rd@host/x", "rtsp://***@host/x"),
    ("rtsp://dave:a/b?c#d:e@127.0.0.1:8554/cam1", "rtsp://***@127.0.0.1:8554/cam1"),
    ("rtsp://dave:p@ss/w0rd@[::1]:8554/x", "rtsp://***@[::1]:8554/x"),
    # so an "@" in a path is masked as user info would be: too much, never too little
    ("rtsp://127.0.0.1:8554/people@work/cam", "rtsp://***@work/cam"),
    ("rtsp://127.0.0.1:8554/people%40work/cam", "rtsp://127.0.0.1:8554/people%40work/cam"),
    ("rtsp://[::1]:8554/cam", "rtsp://[::1]:8554/cam"),
    ("rtsp://u:p@[::1]:8554/cam", "rtsp://***@[::1]:8554/cam"),
    ("rtsp://10.0.0.5:554/stream1", "rtsp://10.0.0.5:554/stream1"),
    ("rtsp://10.0.0.5/s?channel=1&password=hunter2&subtype=0",
     "rtsp://10.0.0.5/s?channel=1&password=***&subtype=0"),
    ("http://10.0.0.5/snap?user=admin&pwd=hunter2", "http://10.0.0.5/snap?user=***&pwd=***"),
    ("http://10.0.0.5/x?token=abc.def", "http://10.0.0.5/x?token=***"),
    ("http://10.0.0.5/x?usr=bob&pw=hunter2&pin=1234&key=k&codec=h264",
     "http://10.0.0.5/x?usr=***&pw=***&pin=***&key=***&codec=h264"),
    ("/dev/video0", "/dev/video0"),
    ("lavfi:testsrc2=size=320x240:rate=25", "lavfi:testsrc2=size=320x240:rate=25"),
    ("", ""),
])
def test_mask_credentials_url_shapes(url, masked):
    assert mask_credentials(url) == masked


def test_mask_credentials_inside_messages():
    message = ("[Errno 825242872] Server returned 401 Unauthorized (authorization failed): "
               "'rtsp://bob:s3cr%3At%40x@127.0.0.1:8554/cam1'; also tried "
               "\"rtsps://alice:pw@cam2/live\" and (http://carol@cam3/x)")
    masked = mask_credentials(message)
    for secret in ("bob", "s3cr", "alice", ":pw", "carol"):
        assert secret not in masked
    assert "'rtsp://***@127.0.0.1:8554/cam1'" in masked
    assert '"rtsps://***@cam2/live"' in masked
    assert "(http://***@cam3/x)" in masked
    assert masked.startswith("[Errno 825242872] Server returned 401")


def test_mask_credentials_leaves_plain_text_alone():
    text = "mail bob@example.com about rtsp://cam1/stream at 10:30"
    assert mask_credentials(text) == text


def test_mask_credentials_is_idempotent():
    once = mask_credentials("rtsp://a:b@h/x?password=y")
    assert mask_credentials(once) == once


@pytest.mark.parametrize(("spec", "name"), [
    ("rtsp://u:p@127.0.0.1:8554/cam1", "127.0.0.1_8554_cam1"),
    ("rtsp://127.0.0.1:8554/cam1", "127.0.0.1_8554_cam1"),
    ("rtsps://admin:x@Cam.Example.com/live/main", "cam.example.com_live_main"),
    ("http://10.0.0.5:8080/video.mjpg", "10.0.0.5_8080_video.mjpg"),
    ("https://u:p@cam/hls/index.m3u8", "cam_hls_index.m3u8"),
    ("rtsp://10.0.0.5/Streaming/Channels/101", "10.0.0.5_Streaming_Channels_101"),
    ("rtsp://u:p%40ss@10.0.0.5/a%20b", "10.0.0.5_a_b"),
    ("rtsp://u:p@ss@10.0.0.5/people%40work", "10.0.0.5_people_work"),
    ("rtsp://dave:p@ss/w0rd@host/x", "host_x"),
    ("rtsp://dave:p@ss/w0rd@[::1]:8554/x", "--1_8554_x"),
    ("rtsp://10.0.0.5/s?channel=1&password=hunter2&subtype=0",
     "10.0.0.5_s_channel-1_subtype-0"),
    # only stream selectors of the query: any other parameter may be a secret
    ("rtsp://10.0.0.5/cam/realmonitor?channel=2&subtype=0&pw=hunter2&lang=en",
     "10.0.0.5_cam_realmonitor_channel-2_subtype-0"),
    ("http://10.0.0.5/video.cgi?resolution=640x480&mysecretkey=hunter2",
     "10.0.0.5_video.cgi_resolution-640x480"),
    ("/dev/video0", "dev_video0"),
    ("lavfi:testsrc2=size=320x240:rate=25", "lavfi_testsrc2_size_320x240_rate_25"),
    ("rtsp://", "source"),
])
def test_display_name(spec, name):
    assert display_name(spec) == name


def test_display_name_has_no_secret_and_is_a_file_name():
    for spec in ("rtsp://admin:hunter2@10.0.0.5:554/a/../b?c=d e",
                 "rtsp://admin:hunter2@[fe80::1]:554/x", "http://u:hunter2@h/?auth=hunter2"):
        name = display_name(spec)
        assert "hunter2" not in name and "admin" not in name
        assert name and "/" not in name and " " not in name and name not in (".", "..")


def test_display_name_long_urls_stay_distinct():
    a = display_name("rtsp://h/" + "x" * 300 + "/1")
    b = display_name("rtsp://h/" + "x" * 300 + "/2")
    assert a != b and len(a) <= 100 and len(b) <= 100


def test_credential_filter_masks_records(caplog):
    logger = logging.getLogger("test_credentials.filter")
    handler_filter = CredentialFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("opening %s", "rtsp://bob:hunter2@cam/x")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert "hunter2" not in caplog.text
    assert "rtsp://***@cam/x" in caplog.text


# -- a URL whose user info is itself what is wrong (issue 21, item 5) ------------------------------

SECRET = "s3cr3t"


@pytest.mark.parametrize(("url", "masked"), [
    ("rtsp://dave:s3cr3t @127.0.0.1/x", "rtsp://***@127.0.0.1/x"),  # space in the password
    ("rtsp://da ve:s3cr3t@127.0.0.1/x", "rtsp://***@127.0.0.1/x"),  # space in the user
    ("rtsp://dave:s3cr3t\t@127.0.0.1/x", "rtsp://***@127.0.0.1/x"),
    ("rtsp://dave:s3\ncr3t@127.0.0.1/x", "rtsp://***@127.0.0.1/x"),
    ("rtsp://dave:s3'cr3t@127.0.0.1/x", "rtsp://***@127.0.0.1/x"),  # a quote
    ('rtsp://dave:s3"cr3t @127.0.0.1/x', "rtsp://***@127.0.0.1/x"),
    ("rtsp://dave:s3cr3t@127.0.0.1:99999/x", "rtsp://***@127.0.0.1:99999/x"),  # bad port
    ("rtsp://dave:s3cr3t@[::1/x", "rtsp://***@[::1/x"),  # bad IPv6 bracket
    ("rtsp://dave:s3%20cr3t%40@127.0.0.1/x", "rtsp://***@127.0.0.1/x"),  # percent-escapes
    ("rtsp://dave:s3@cr/3t@127.0.0.1/x", "rtsp://***@127.0.0.1/x"),  # "@" and "/"
    ("mqtt://dave:s3cr3t @[::1/prefix", "mqtt://***@[::1/prefix"),
    ("dave:s3cr3t@127.0.0.1:8080", "***@127.0.0.1:8080"),  # no scheme
    ("rtsp:/dave:s3cr3t@127.0.0.1/x", "rtsp:/***@127.0.0.1/x"),  # one "/" too few
    ("rtsp://127.0.0.1/x?password=s3 cr3t&channel=1", "rtsp://127.0.0.1/x?password=***&channel=1"),
    ("rtsp://127.0.0.1:8554/cam1", "rtsp://127.0.0.1:8554/cam1"),
])
def test_mask_url_masks_the_user_info_whatever_is_wrong_with_the_url(url, masked):
    assert mask_url(url) == masked
    for part in ("s3", "cr3t", "dave", "da ve"):
        assert part not in masked


@pytest.mark.parametrize("url", [
    "rtsp://dave:s3cr3t @127.0.0.1/x", "rtsp://da ve:s3cr3t@127.0.0.1/x",
    "rtsp://dave:s3'cr3t@127.0.0.1/x", 'rtsp://dave:s3cr3t"x@[::1]/x',
    "rtsp:/dave:s3cr3t@127.0.0.1/x", "http://dave:s3 cr3t@127.0.0.1:8080/a b/c.mjpg",
])
def test_mask_credentials_finds_such_urls_inside_messages_and_log_records(url, caplog):
    message = f"error: '{url}': white space or a control character in the URL"
    masked = mask_credentials(message)
    assert "cr3t" not in masked and "dave" not in masked
    assert masked.startswith("error: '") and "***@" in masked
    handler_filter = CredentialFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="test_credentials.space"):
            logging.getLogger("test_credentials.space").info("opening %s failed", url)
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert "cr3t" not in caplog.text and "***@" in caplog.text


@pytest.mark.parametrize("text", [
    "rtsp://127.0.0.1:8554/cam1: error in [tcp @ 0x55d0c8]",
    "mail bob@example.com about rtsp://cam1/stream at 10:30",
    "rtsp://cam1/x and rtsp://cam2/y failed",
])
def test_mask_credentials_does_not_eat_text_after_a_url_without_user_info(text):
    assert mask_credentials(text) == text
