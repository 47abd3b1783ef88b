"""The browser preview: bind parsing, endpoints, MJPEG delivery, slow viewers, shutdown."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from stages.errors import InputError
from stages.frames import Frame, Person, Result
from stages.serve.preview import PreviewServer, parse_bind
from stages.pose.draw import COLORS, LIMBS, SkeletonAnnotator
from tests.support import browser
from tests.support.preview_fixtures import (WAIT, connect, fetch, preview_threads,
                                          publish_until_seen, result, wait_until)

# -- bind parsing

@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)),
    ("0", ("127.0.0.1", 0)),
    ("0.0.0.0:8080", ("0.0.0.0", 8080)),
    ("localhost:9000", ("localhost", 9000)),
    (":8081", ("127.0.0.1", 8081)),
    ("[::1]:8080", ("::1", 8080)),
    ("[::]:65535", ("::", 65535)),
    (" 8080 ", ("127.0.0.1", 8080)),
])
def test_parse_bind_reads_port_host_port_and_bracketed_ipv6(text, expected):
    assert parse_bind(text) == expected


@pytest.mark.parametrize("text", ["", "http", "65536", "-1", "8o80", "host:", "::1:8080",
                                  "[::1]", "[::1]8080", "[]:80", "a b:80", "1.2.3.4:x"])
def test_parse_bind_rejects_garbage_in_one_line(text):
    with pytest.raises(InputError) as info:
        parse_bind(text)
    assert "--preview" in str(info.value) and "\n" not in str(info.value)


def test_a_port_in_use_is_an_input_error(server):
    port = urlsplit(server.url).port
    with pytest.raises(InputError, match="cannot listen"):
        PreviewServer("127.0.0.1", port)


def test_binds_loopback_by_default_and_reports_the_actual_port(server):
    parts = urlsplit(server.url)
    assert parts.hostname == "127.0.0.1" and parts.port > 0


# -- endpoints

def test_page_is_self_contained_and_full_screen_friendly(server):
    status, kind, body = fetch(server.url)
    page = body.decode()
    assert status == 200 and kind.startswith("text/html")
    for needle in ("/stream.mjpg", "/stats.json", "object-fit: contain", "requestFullscreen",
                   "background: #000"):
        assert needle in page
    assert "http://" not in page and "https://" not in page and "src=\"" not in page


def test_healthz_and_unknown_paths(server):
    assert fetch(server.url + "healthz")[::2] == (200, b"ok\n")
    assert fetch(server.url + "nope")[0] == 404
    assert fetch(server.url + "stream.mjpg?source=ghost")[0] == 404


def test_stats_count_frames_people_and_fps(server):
    for i in range(3):
        server.publish(result(i, people=2))
    status, kind, body = fetch(server.url + "stats.json")
    stats = json.loads(body)
    assert status == 200 and kind == "application/json"
    (cam,) = stats["sources"]
    assert cam["source"] == "cam" and cam["published"] == 3 and cam["people"] == 2
    assert cam["fps"] > 0 and cam["viewers"] == 0 and stats["viewers"] == 0


# -- the stream

def test_without_viewers_publish_encodes_nothing(server, encodes):
    for i in range(20):
        out = result(i)
        assert server.publish(out) is out
    assert encodes == []


def test_stream_delivers_the_published_pictures_encoded_once_per_frame(server, encodes):
    readers = connect(server, 2)
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 255, 255)]
    for i, colour in enumerate(colours):
        before = len(encodes)
        publish_until_seen(server, readers, result(i, colour))
        assert len(encodes) - before >= 1
    assert len(encodes) == server.statistics()["sources"][0]["published"]  # once per frame
    for reader in readers:
        assert reader.status.startswith(b"HTTP/1.0 200")
        for index, jpeg in zip(reader.indices, reader.jpegs):
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert image.shape == (480, 640, 3)
            assert np.abs(image.astype(int) - colours[index]).max() <= 8
        reader.close()


def test_wide_frames_are_scaled_down_to_max_width():
    with PreviewServer(port=0, max_width=320) as srv:
        (reader,) = connect(srv)
        publish_until_seen(srv, [reader], result(0, (10, 200, 30), size=(1280, 720)))
        image = cv2.imdecode(np.frombuffer(reader.jpegs[-1], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (180, 320, 3)
        reader.close()


def test_viewers_pick_a_source_and_default_to_the_first():
    with PreviewServer(port=0) as srv:  # sources learnt as they publish
        (first,) = connect(srv)  # before any frame: waits for the first source
        publish_until_seen(srv, [first], result(7, source="b"))
        srv.publish(result(100, source="a"))
        (of_a,) = connect(srv, query="?source=a")
        publish_until_seen(srv, [of_a], result(101, source="a"))
        publish_until_seen(srv, [first], result(8, source="b"))
        assert set(first.indices) == {7, 8} and set(of_a.indices) == {101}
        stats = srv.statistics()
        assert [s["source"] for s in stats["sources"]] == ["b", "a"]
        assert [s["viewers"] for s in stats["sources"]] == [1, 1]
        first.close()
        of_a.close()


def test_a_viewer_that_stops_reading_does_not_slow_publishing(server):
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", urlsplit(server.url).port))
    stuck.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # and never reads
    assert wait_until(lambda: server.viewers == 1)
    (normal,) = connect(server)

    rng = np.random.default_rng(0)
    base = np.full((480, 640, 3), 60, np.uint8)
    base[:160] = rng.integers(0, 256, (160, 640, 3), np.uint8)  # ~70 kB a JPEG: fills buffers
    frames = 500
    longest = [0.0]

    def publishing():
        for i in range(frames):
            start = time.perf_counter()
            server.publish(result(i, image=base))
            longest[0] = max(longest[0], time.perf_counter() - start)

    loop = threading.Thread(target=publishing, daemon=True)
    loop.start()
    loop.join(30)
    assert not loop.is_alive(), "publishing blocked"
    assert longest[0] < 1.0  # far below the 10 s send timeout of the stuck viewer
    assert wait_until(lambda: normal.indices and normal.indices[-1] == frames - 1), normal.indices[-5:]
    assert len(normal.indices) >= 10
    assert server.statistics()["sources"][0]["dropped"] > frames / 2

    start = time.monotonic()
    server.close()  # must wake the viewer still blocked in send
    assert wait_until(lambda: not preview_threads(), 3.0), preview_threads()
    assert time.monotonic() - start < 3.0
    normal.close()
    published_bytes = frames * len(normal.jpegs[-1])
    got = 0
    stuck.settimeout(1.0)
    try:
        while chunk := stuck.recv(1 << 20):
            got += len(chunk)
    except TimeoutError:
        pass
    stuck.close()
    assert got < published_bytes / 2, (got, published_bytes)  # it really was stuck


def test_many_viewers_each_get_frames_and_close_ends_their_threads(encodes):
    srv = PreviewServer(port=0, sources=("cam",)).start()
    readers = connect(srv, 8)
    for i in range(3):
        publish_until_seen(srv, readers, result(i, (i * 80, 0, 0)))
    assert all(set(r.indices) == {0, 1, 2} for r in readers)
    assert len(encodes) == srv.statistics()["sources"][0]["published"]
    assert len([n for n in preview_threads() if n.startswith("preview-viewer")]) == 8
    start = time.monotonic()
    srv.close()
    srv.close()  # idempotent
    assert time.monotonic() - start < 2.0
    assert wait_until(lambda: not preview_threads(), 2.0), preview_threads()
    assert srv.publish(result(9)).frame.index == 9  # after close: passes frames through
    for reader in readers:
        assert wait_until(lambda: not reader.thread.is_alive(), 2.0)  # saw end of stream
        reader.close()


def test_viewers_leaving_are_quiet(server, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="stages.serve.preview")
    readers = connect(server, 3)
    publish_until_seen(server, readers, result(0))
    readers[0].close(reset=True)
    readers[1].close()
    for i in range(1, 50):
        server.publish(result(i))
        if server.viewers == 1:
            break
    assert wait_until(lambda: server.viewers == 1)
    readers[2].close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Traceback" not in capfd.readouterr().err


def test_ipv6_loopback_when_available():
    try:
        srv = PreviewServer("::1", 0)
    except InputError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with srv:
        assert srv.url.startswith("http://[::1]:")
        assert fetch(srv.url + "healthz")[0] == 200


# -- a real browser

def skeleton_frame(index: int) -> tuple[Result, set[int]]:
    """A big, thick skeleton on grey; returns the result and the limbs drawn."""
    points = {0: (320, 80), 1: (320, 150), 2: (250, 150), 3: (220, 240), 4: (200, 330),
              5: (390, 150), 6: (420, 240), 7: (440, 330), 8: (280, 300), 9: (270, 400),
              10: (265, 460), 11: (360, 300), 12: (370, 400), 13: (375, 460)}
    keypoints = np.zeros((18, 3), np.float32)
    for part, (x, y) in points.items():
        keypoints[part] = (x, y, 1.0)
    person = Person(keypoints=keypoints, score=1.0)
    image = np.full((480, 640, 3), 40, np.uint8)
    SkeletonAnnotator(thickness=14, radius=8).annotate(image, [person])
    frame = Frame(source="booth", index=index, pts=index / 25, image=image)
    drawn = {i for i, (a, b) in enumerate(LIMBS) if a in points and b in points}
    return Result(frame, (person,), image=image), drawn


def test_chromium_shows_the_live_skeleton(chromium, tmp_path):
    stop = threading.Event()
    with PreviewServer(port=0, sources=("booth",)) as srv:
        def publishing():
            index = 0
            while not stop.is_set():
                srv.publish(skeleton_frame(index)[0])
                index += 1
                stop.wait(0.04)

        loop = threading.Thread(target=publishing, daemon=True)
        loop.start()
        try:
            png = browser.screenshot(srv.url, tmp_path / "preview.png", binary=chromium)
        finally:
            stop.set()
            loop.join(WAIT)
    shot = cv2.imread(str(png))
    assert shot.shape == (720, 1280, 3)
    _, drawn = skeleton_frame(0)
    near = {i: int((np.abs(shot.astype(int) - COLORS[i]).sum(axis=2) < 60).sum()) for i in drawn}
    assert sum(n >= 300 for n in near.values()) >= len(drawn) - 2, near
    assert (np.abs(shot.astype(int) - 40).sum(axis=2) < 12).sum() > 100_000  # the frame's grey
