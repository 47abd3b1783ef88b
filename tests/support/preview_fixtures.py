"""Helpers and fixtures of the preview server tests: published results, MJPEG readers."""

from __future__ import annotations

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

from stages.serve import preview as preview_module
from stages.frames import Frame, Person, Result
from stages.serve.preview import PreviewServer
from tests.support import browser
WAIT = 10.0  # bound on every poll (and request)


def wait_until(predicate, timeout: float = WAIT) -> bool:
    """Poll ``predicate`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while not (ok := predicate()) and time.monotonic() < deadline:
        time.sleep(0.005)
    return ok


def result(index: int, colour=(0, 0, 0), *, source: str = "cam", size=(640, 480),
           people: int = 0, image: np.ndarray | None = None, wall: float = 0.0) -> Result:
    if image is None:
        image = np.empty((size[1], size[0], 3), np.uint8)
        image[:] = colour
    frame = Frame(source=source, index=index, pts=index / 25, image=image, wall=wall)
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
        self.headers: list[dict[str, str]] = []  # each part's, names in lower case
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
                self.headers.append(headers)
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


@pytest.fixture(scope="session")
def chromium() -> str:
    """The headless Chromium binary, installed with apt-get when missing (else the test skips)."""
    path = browser.chromium_path()
    if path is None:
        pytest.skip("headless Chromium unavailable and apt-get could not install it: "
                    + "; ".join(browser.install_log))
    return path


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
