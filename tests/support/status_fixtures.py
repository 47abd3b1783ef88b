"""Helpers of the status server tests: results, a clock, HTTP and Server-Sent Events readers."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from stages.frames import Frame, Person, Result
from tests.support.preview_fixtures import WAIT, wait_until  # noqa: F401 - shared with the status tests


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def result(index: int, *, source: str = "cam", age: float = 0.0, people: int = 1) -> Result:
    """A processed frame of ``source`` captured ``age`` seconds ago."""
    frame = Frame(source=source, index=index, pts=index / 25, image=np.zeros((4, 4, 3), np.uint8),
                  wall=time.time() - age)
    person = Person(keypoints=np.full((18, 3), 0.5, np.float32), score=0.9, track_id=7)
    return Result(frame=frame, people=(person,) * people)


def get(url: str, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    """(status, content type, body) of one request."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    try:
        conn.request(method, path)
        reply = conn.getresponse()
        return reply.status, reply.getheader("Content-Type", ""), reply.read()
    finally:
        conn.close()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """``/metrics`` read with the library's own parser: {(sample name, sorted labels): value}."""
    status, kind, body = get(url, "/metrics")
    assert status == 200 and kind.startswith("text/plain"), (status, kind)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


class EventReader:
    """A client of ``/events`` reading on its own thread (http.client); keeps every event."""

    def __init__(self, url: str, query: str = "") -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
        self.conn.request("GET", "/events" + query)
        self.sock = self.conn.sock  # the reply owns it once the headers are read
        self.reply = self.conn.getresponse()
        self.ids: list[str] = []
        self.records: list[dict] = []
        self.comments: list[str] = []
        self.ended = threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event: dict[str, str] = {}
        try:
            while line := self.reply.readline():
                text = line.decode().rstrip("\n")
                if not text:
                    if "data" in event:
                        self.ids.append(event.get("id", ""))
                        self.records.append(json.loads(event["data"]))
                    event = {}
                elif text.startswith(":"):
                    self.comments.append(text[1:].strip())
                else:
                    key, _, value = text.partition(":")
                    event[key] = value.removeprefix(" ")
        except (OSError, ValueError) as exc:
            self.error = exc
        finally:
            self.ended.set()

    def close(self) -> None:
        """Hang up (the reading thread ends)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the server ended the stream first
        self.thread.join(WAIT)
        self.reply.close()
        self.sock.close()


def stuck_client(url: str, path: str = "/events") -> socket.socket:
    """A client that asks for ``path`` and never reads (a small receive buffer)."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n\r\n".encode())
    return sock
