"""Browser preview of the annotated stream: a small HTTP server sending MJPEG.

``PreviewServer.publish`` is a pipeline step (``Result -> Result``). Each
published frame is JPEG-encoded once, and only while someone watches; the
bytes go to every viewer through its own one-slot drop-oldest channel, so a
slow or stuck viewer loses frames while the pipeline never waits. Each viewer
is served on its own thread, which a socket timeout ends when the viewer
stops reading.

Endpoints: ``/`` the page (``/?source=NAME`` picks a source, default the
first; ``stages.serve._preview_page`` has its other options, kiosk mode among them),
``/stream.mjpg?source=NAME`` the multipart JPEG stream, ``/stats.json``
figures per source; GET and HEAD.

Latency: each part of the stream carries its frame's capture time
(``X-Capture-Time``, Unix seconds of ``Frame.wall``; a file's frames carry
their decode time, having no capture clock), so the page can measure capture
to display itself. ``/stats.json`` gives the server's clock (``time``), for
the page to estimate the offset between the two clocks, and the p50 of
capture to written-to-a-viewer's-socket over the last ``LATENCY_WINDOW``
seconds (``sent_latency_ms``), the figure a page without stream access shows. It is a status server too
(``stages.serve.status``: ``/healthz``, and ``/metrics`` and ``/events`` of
a live run), so ``--preview`` implies ``--http``.

Bounds: at most ``max_viewers`` streams and ``max_connections`` connections
at once (each has a thread); beyond them a request gets ``429`` (see
``stages.serve.server.BoundedHTTPServer`` for how threads stay bounded).

Host check (DNS rebinding): a page on another site that resolves its own
name to 127.0.0.1 could read the stream, so a request whose ``Host`` header
names anything but the server's own names (127.0.0.1, localhost, [::1], the
bound address, this machine's host name), or another port, gets ``421`` and
one warning per distinct Host. Bound to a wildcard address (0.0.0.0, ::),
which the user must ask for explicitly, any Host is accepted.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus

import cv2
import numpy as np

from pipeline import Cancelled, Channel, EndOfStream, Policy
from stages.frames import Result
from stages.serve.server import DEFAULT_HOST, REQUEST_TIMEOUT, TEXT, hung_up, parse_bind, wake
from stages.serve._preview_page import PAGE
from stages.serve.status import LiveStatus, StatusHandler, StatusServer

__all__ = ["PreviewServer", "parse_bind", "DEFAULT_HOST"]

log = logging.getLogger(__name__)

BOUNDARY = "frame"
MAX_VIEWERS = 16  # streams at once
MAX_CONNECTIONS = 32  # connections at once: the viewers, their pages' stats polls, others
_HANGUP_CHECK = 1.0  # seconds between checks that an idle viewer is still there
FPS_WINDOW = 3.0  # seconds of publish times behind the FPS figure
LATENCY_WINDOW = 5.0  # seconds of sent parts behind the latency figure


@dataclass(slots=True)
class _SourceStats:
    """Running figures of one published source."""

    name: str
    published: int = 0
    people: int = 0
    dropped: int = 0  # frames some viewer was too slow to take
    times: deque = field(default_factory=lambda: deque(maxlen=1024))
    sent: deque = field(default_factory=lambda: deque(maxlen=1024))  # (monotonic, seconds)

    def fps(self, now: float) -> float:
        """Frames per second over the last ``FPS_WINDOW`` seconds; falls to 0 when idle."""
        recent = [t for t in self.times if t >= now - FPS_WINDOW]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(now - recent[0], 1e-6)

    def sent_latency(self, now: float) -> float | None:
        """Median capture-to-sent seconds over the last ``LATENCY_WINDOW`` seconds; None if none."""
        recent = sorted(seconds for t, seconds in self.sent if t >= now - LATENCY_WINDOW)
        return recent[(len(recent) - 1) // 2] if recent else None


@dataclass(frozen=True, slots=True)
class _Part:
    """One multipart part of a source's stream, as a viewer's channel carries it."""

    source: str
    wall: float  # the frame's capture time (time.time()), 0 when unknown
    data: bytes


@dataclass(eq=False, slots=True)
class _Viewer:
    """One connected stream viewer: its channel and its socket (to wake a stuck send)."""

    channel: Channel
    connection: socket.socket
    thread: threading.Thread


class PreviewServer(StatusServer):
    """Serves the live annotated stream to browsers, and the status routes; a context manager.

    Args:
        host: Address to bind; 127.0.0.1 unless told otherwise.
        port: TCP port; 0 picks a free one (see ``url``).
        sources: Source names known up front, in page order; others are
            added as they publish.
        quality: JPEG quality, 1-100.
        max_width: Frames wider than this are scaled down before encoding
            (None: never).
        send_timeout: Seconds a viewer's socket may block before that viewer
            is dropped (also the longest wait for one read of its request).
        request_timeout: Seconds a connection has, in all, to send its
            request line and headers; past them it gets 408 and is closed.
        max_viewers: Streams served at once; one more gets 429.
        max_connections: Connections served at once (at least
            ``max_viewers``); one more gets 429.
        status: The live run's parts, for ``/healthz``, ``/metrics`` and
            ``/events`` (None: a run of files).

    Raises:
        InputError: The address cannot be bound (in use, unknown host...).
    """

    label = "preview"

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, *, sources: tuple[str, ...] = (),
                 quality: int = 80, max_width: int | None = 1280,
                 send_timeout: float = 10.0, request_timeout: float = REQUEST_TIMEOUT,
                 max_viewers: int = MAX_VIEWERS, max_connections: int = MAX_CONNECTIONS,
                 status: LiveStatus | None = None) -> None:
        if not 1 <= max_viewers <= max_connections:
            raise ValueError(f"need 1 <= max_viewers <= max_connections, got {max_viewers} "
                             f"and {max_connections}")
        self.quality = quality
        self.max_width = max_width
        self.max_viewers = max_viewers
        self._stats: dict[str, _SourceStats] = {name: _SourceStats(name) for name in sources}
        self._viewers: dict[str | None, set[_Viewer]] = {}  # None: the first source, once known
        super().__init__(host, port, status=status, send_timeout=send_timeout,
                         request_timeout=request_timeout, max_connections=max_connections,
                         option="--preview")

    @property
    def viewers(self) -> int:
        """Stream viewers connected now."""
        with self._lock:
            return sum(len(v) for v in self._viewers.values())

    def publish(self, result: Result) -> Result:
        """Pipeline step: count ``result`` and send its picture to the viewers; never blocks."""
        name = result.frame.source
        with self._lock:
            stats = self._register(name)
            stats.published += 1
            stats.people = len(result.people)
            stats.times.append(time.monotonic())
            viewers = tuple(self._viewers.get(name, ()))
        if viewers:
            image = result.image if result.image is not None else result.frame.image
            part = _Part(name, result.frame.wall, self._part(self.encode(image), result))
            for viewer in viewers:
                try:
                    viewer.channel.put(part)
                except (Cancelled, EndOfStream):
                    pass  # that viewer is leaving
        return result

    def encode(self, image: np.ndarray) -> bytes:
        """JPEG bytes of ``image`` (BGR), scaled down to ``max_width``."""
        height, width = image.shape[:2]
        if self.max_width and width > self.max_width:
            size = (self.max_width, max(1, round(height * self.max_width / width)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
        return data.tobytes()

    def statistics(self) -> dict:
        """What ``/stats.json`` serves: figures per source, in page order, and the clocks.

        ``time`` is this machine's ``time.time()``, for the page's clock
        offset; ``clock`` says what the capture times are: ``capture`` for a
        live run, ``decode`` for files.
        """
        now = time.monotonic()
        with self._lock:
            sources = [{"source": s.name, "fps": round(s.fps(now), 2), "people": s.people,
                        "published": s.published, "dropped": s.dropped,
                        "viewers": len(self._viewers.get(s.name, ())),
                        "sent_latency_ms": _ms(s.sent_latency(now))}
                       for s in self._stats.values()]
            waiting = len(self._viewers.get(None, ()))
        return {"sources": sources, "viewers": sum(s["viewers"] for s in sources) + waiting,
                "clock": "capture" if self.status is not None else "decode",
                "time": round(time.time(), 4)}

    def _end_streams(self) -> list[threading.Thread]:
        """Cancel every viewer's stream and every ``/events`` stream; return their threads."""
        with self._lock:
            viewers = [v for group in self._viewers.values() for v in group]
        for viewer in viewers:
            viewer.channel.cancel()
            wake(viewer.connection)
        return super()._end_streams() + [v.thread for v in viewers]

    # -- used by the request handler
    def _source_known(self, name: str) -> bool:
        with self._lock:
            return name in self._stats

    def _subscribe_viewer(self, name: str | None, connection: socket.socket) -> _Viewer | None | bool:
        """A new viewer of ``name`` (None: the first source); None once closed, False when full."""
        with self._lock:
            if self._closed:
                return None
            if sum(len(v) for v in self._viewers.values()) >= self.max_viewers:
                return False
            if name is None and self._stats:
                name = next(iter(self._stats))
            channel = Channel(1, policy=Policy.DROP_OLDEST, name=f"preview viewer of {name}",
                              on_drop=lambda _: self._dropped(name))
            viewer = _Viewer(channel, connection, threading.current_thread())
            self._viewers.setdefault(name, set()).add(viewer)
        return viewer

    def _unsubscribe_viewer(self, viewer: _Viewer) -> None:
        with self._lock:
            for group in self._viewers.values():
                group.discard(viewer)
        viewer.channel.cancel()

    def _register(self, name: str) -> _SourceStats:
        """The stats of ``name``, made on its first frame; call with the lock held."""
        stats = self._stats.get(name)
        if stats is None:
            stats = self._stats[name] = _SourceStats(name)
        if None in self._viewers and next(iter(self._stats)) == name:
            self._viewers.setdefault(name, set()).update(self._viewers.pop(None))
        return stats

    def _sent(self, part: _Part) -> None:
        """Count ``part`` as written to a viewer's socket now (for the latency figure)."""
        if part.wall <= 0:
            return
        seconds = time.time() - part.wall
        with self._lock:
            if part.source in self._stats:
                self._stats[part.source].sent.append((time.monotonic(), seconds))

    def _dropped(self, name: str | None) -> None:
        with self._lock:
            if name is None:
                name = next(iter(self._stats), None)
            if name in self._stats:
                self._stats[name].dropped += 1

    @staticmethod
    def _part(jpeg: bytes, result: Result) -> bytes:
        captured = f"X-Capture-Time: {result.frame.wall:.6f}\r\n" if result.frame.wall > 0 else ""
        head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                f"X-Frame-Index: {result.frame.index}\r\n{captured}\r\n")
        return head.encode("ascii") + jpeg + b"\r\n"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class _Handler(StatusHandler):
    """Serves one request; a stream request holds its thread until the viewer leaves."""

    owner: PreviewServer  # set on the subclass made per server

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        source = query.get("source", [None])[0] or None
        if path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.encode())
        elif path == "/stream.mjpg":
            self._stream(source)
        elif path == "/stats.json":
            body = json.dumps(self.owner.statistics()).encode()
            self._send(HTTPStatus.OK, "application/json", body)
        else:
            super()._route(path, query)

    def _stream(self, source: str | None) -> None:
        if source is not None and not self.owner._source_known(source):
            self._send(HTTPStatus.NOT_FOUND, TEXT, f"no source {source!r}\n".encode())
            return
        if self.command == "HEAD":
            self._stream_headers()
            return
        viewer = self.owner._subscribe_viewer(source, self.connection)
        if viewer is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, TEXT, b"closing\n")
            return
        if viewer is False:
            self._send(HTTPStatus.TOO_MANY_REQUESTS, TEXT,
                       f"busy: {self.owner.max_viewers} viewers at most; try again\n".encode(),
                       (("Retry-After", "5"),))
            return
        threading.current_thread().name = f"preview-viewer-{self.client_address[1]}"
        try:
            self._stream_headers()
            self._send_parts(viewer.channel)
        except (Cancelled, OSError) as exc:
            log.debug("preview: viewer %s left: %s", self.client_address, type(exc).__name__)
        finally:
            self.owner._unsubscribe_viewer(viewer)
            self.close_connection = True

    def _send_parts(self, channel: Channel) -> None:
        """Send the viewer's parts until the stream ends or the viewer hangs up.

        While no frame comes (a source is down) the socket is checked every
        ``_HANGUP_CHECK`` seconds, so a viewer that left frees its place.
        """
        while True:
            try:
                part = channel.get(timeout=_HANGUP_CHECK)
            except EndOfStream:
                return
            except TimeoutError:
                if hung_up(self.connection):
                    return
                continue
            self.wfile.write(part.data)
            self.owner._sent(part)

    def _stream_headers(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("Pragma", "no-cache")
        self.end_headers()


PreviewServer.handler = _Handler
