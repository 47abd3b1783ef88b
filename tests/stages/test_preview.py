"""The browser preview: bind parsing, endpoints, MJPEG delivery, slow viewers, shutdown."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from stages import preview as preview_module
from stages.errors import InputError
from stages.frames import Frame, Person, Result
from stages.preview import PreviewServer, parse_bind
from stages.render import COLORS, LIMBS, SkeletonAnnotator
from tests import browser

WAIT = 5.0  # bound on every poll


def wait_until(predicate, timeout: float = WAIT) -> bool:
    """Poll ``predicate`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while not (ok := predicate()) and time.monotonic() < deadline:
        time.sleep(0.005)
    return ok


def result(index: int, colour=(0, 0, 0), *, source: str = "cam", size=(640, 480),
           people: int = 0, image: np.ndarray | None = None) -> Result:
    if image is None:
        image = np.empty((size[1], size[0], 3), np.uint8)
        image[:] = colour
    frame = Frame(source=source, index=index, pts=index / 25, image=image)
    person = Person(keypoints=np.zeros((18, 3), np.float32), score=1.0)
    return Result(frame, (person,) * people, image=image)


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


class MjpegReader:
    """A viewer of ``/stream.mjpg`` reading on its own thread; keeps indices and the last JPEG."""

    def __init__(self, url: str, query: str = "") -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=WAIT)
        self.sock.sendall(f"GET /stream.mjpg{query} HTTP/1.0\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        self.indices: list[int] = []
        self.jpegs: list[bytes] = []
        self.status = b""
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            self.status = self.file.readline()
            while self.file.readline().strip():
                pass  # response headers
            while line := self.file.readline():
                if line.strip() != b"--frame":
                    continue
                headers = {}
                while line := self.file.readline().strip():
                    key, _, value = line.decode().partition(":")
                    headers[key.lower()] = value.strip()
                self.jpegs.append(self.file.read(int(headers["content-length"])))
                self.indices.append(int(headers["x-frame-index"]))
        except (OSError, ValueError) as exc:
            self.error = exc

    def close(self, *, reset: bool = False) -> None:
        if reset:  # leave abruptly: the server sees a connection reset
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(WAIT)


def preview_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("preview-")]


@pytest.fixture
def server():
    with PreviewServer(port=0, sources=("cam",)) as srv:
        yield srv


@pytest.fixture
def encodes(monkeypatch):
    """Counts JPEG encodings done by the preview."""
    calls = []
    real = cv2.imencode

    def counting(ext, image, params=()):
        calls.append(image.shape)
        return real(ext, image, params)

    monkeypatch.setattr(preview_module.cv2, "imencode", counting)
    return calls


def connect(server: PreviewServer, n: int = 1, query: str = "") -> list[MjpegReader]:
    before = server.viewers
    readers = [MjpegReader(server.url, query) for _ in range(n)]
    assert wait_until(lambda: server.viewers == before + n), server.statistics()
    return readers


def publish_until_seen(server: PreviewServer, readers, res: Result) -> None:
    """Publish ``res`` again until every reader has its frame (bounded)."""
    def seen():
        return all(r.indices and r.indices[-1] == res.frame.index for r in readers)

    deadline = time.monotonic() + WAIT
    while not seen() and time.monotonic() < deadline:
        server.publish(res)
        wait_until(seen, 0.05)
    assert seen(), [r.indices[-3:] for r in readers]


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
    caplog.set_level(logging.DEBUG, logger="stages.preview")
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

@pytest.fixture(scope="session")
def chromium() -> str:
    path = browser.chromium_path()
    if path is None:
        pytest.skip("headless Chromium unavailable and apt-get could not install it: "
                    + "; ".join(browser.install_log))
    return path


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


# -- bounds on viewers and connections (issue 11, item 12)

def request(server: PreviewServer, path: str = "/healthz", *, method: str = "GET",
            host: str | None = None) -> tuple[int, dict, bytes]:
    """One request with http.client; ``host`` replaces the Host header it would send."""
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(server.url).port, timeout=WAIT)
    try:
        conn.request(method, path, headers={"Host": host} if host is not None else {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def connection_threads() -> list[str]:
    return [n for n in preview_threads() if n.startswith(("preview-connection", "preview-viewer"))]


def test_viewers_beyond_the_bound_get_503_and_the_page_still_loads():
    with PreviewServer(port=0, sources=("cam",), max_viewers=2, max_connections=4) as srv:
        readers = connect(srv, 2)
        status, headers, body = request(srv, "/stream.mjpg")
        assert status == 503 and b"2 viewers at most" in body and len(body) < 100
        assert headers["Retry-After"] and srv.viewers == 2
        assert request(srv, "/")[0] == 200 and request(srv, "/stats.json")[0] == 200
        readers[0].close()
        assert wait_until(lambda: srv.viewers == 1)
        readers[1:] += connect(srv)  # a place came free
        publish_until_seen(srv, readers[1:], result(0))
        for reader in readers[1:]:
            reader.close()


def test_connections_beyond_the_bound_get_503_and_threads_stay_bounded():
    bound, attempts = 3, 100
    with PreviewServer(port=0, sources=("cam",), max_viewers=2, max_connections=bound) as srv:
        port = urlsplit(srv.url).port
        idle = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(bound)]
        assert wait_until(lambda: len(connection_threads()) == bound), connection_threads()
        status, _, body = request(srv)
        assert status == 503 and body.startswith(b"busy: 3 connections at most")
        crowd = [socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                 for _ in range(attempts)]  # connect and say nothing, like 100 stalled viewers
        most = len(connection_threads())
        assert most <= bound + preview_module._REFUSERS, connection_threads()
        for sock in crowd + idle:
            sock.close()
        assert wait_until(lambda: request(srv)[0] == 200)  # slots come back when clients go
        assert wait_until(lambda: not connection_threads()), connection_threads()


def test_close_ends_idle_connections_at_once():
    srv = PreviewServer(port=0, max_viewers=2, max_connections=4, send_timeout=30).start()
    port = urlsplit(srv.url).port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(3)]
    assert wait_until(lambda: len(connection_threads()) == 3)
    started = time.monotonic()
    srv.close()
    assert not connection_threads() and time.monotonic() - started < 2.0
    for sock in idle:
        sock.close()


# -- Host header check and HEAD (issue 11, item 13)

@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost.:{port}",
                                  "[::1]:{port}", "127.0.0.1", "localhost"])
def test_own_host_names_are_served(server, host):
    port = urlsplit(server.url).port
    assert request(server, "/", host=host.format(port=port))[0] == 200


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1:1",
                                  "localhost:{port}0", "127.0.0.1.evil.example:{port}",
                                  "[::2]:{port}", "", "localhost:x"])
def test_foreign_host_names_get_421_and_one_log_line(server, caplog, host):
    port = urlsplit(server.url).port
    header = host.format(port=port)
    with caplog.at_level(logging.DEBUG, logger="stages.preview"):
        for path in ("/", "/stream.mjpg", "/stats.json", "/healthz", "/stream.mjpg"):
            status, _, body = request(server, path, host=header)
            assert status == 421 and b"own host names" in body, (path, status)
    assert server.viewers == 0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and repr(header) in warnings[0].getMessage()


def test_a_request_without_host_is_served(server):
    (reader,) = connect(server)  # MjpegReader speaks HTTP/1.0 without a Host header
    publish_until_seen(server, [reader], result(0))
    reader.close()


def test_explicit_bind_address_is_allowed_and_a_wildcard_allows_any_name():
    assert preview_module._allowed_hosts("0.0.0.0", "0.0.0.0") is None
    assert preview_module._allowed_hosts("::", "::") is None
    names = preview_module._allowed_hosts("127.0.0.2", "127.0.0.2")
    assert {"127.0.0.1", "localhost", "::1", "127.0.0.2"} <= names and "evil.example" not in names
    with PreviewServer("127.0.0.2", 0) as srv:
        port = urlsplit(srv.url).port
        conn = http.client.HTTPConnection("127.0.0.2", port, timeout=WAIT)
        conn.request("GET", "/healthz")  # Host: 127.0.0.2:port
        assert conn.getresponse().status == 200
        conn.close()


@pytest.mark.parametrize("path", ["/", "/healthz", "/stats.json", "/nope"])
def test_head_answers_the_headers_of_get(server, path):
    get_status, get_headers, get_body = request(server, path)
    status, headers, body = request(server, path, method="HEAD")
    assert status == get_status != 501 and body == b""
    assert headers["Content-Type"] == get_headers["Content-Type"]
    if path != "/stats.json":  # its figures may change between the two requests
        assert int(headers["Content-Length"]) == len(get_body)


def test_head_of_the_stream_subscribes_no_viewer(server):
    status, headers, body = request(server, "/stream.mjpg", method="HEAD")
    assert status == 200 and body == b""
    assert headers["Content-Type"].startswith("multipart/x-mixed-replace")
    assert server.viewers == 0 and server.statistics()["viewers"] == 0
