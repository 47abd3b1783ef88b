"""The status server of ``--http`` (and of ``--preview``, which adds its page to it).

Endpoints, GET and HEAD:

- ``/``: an index of the endpoints below, with links (``stages.serve._index``;
  the preview server serves its page there instead).
- ``/healthz``: ``200`` with ``{"ok": true, "sources": {...}}`` while every
  live source that has not been given up delivered a frame within its
  stall timeout; otherwise ``503`` with ``"ok": false`` and a ``reason``
  naming the sources (also when every source was given up). Runs of files
  (a preview without live sources) answer ``200 ok``. With ``--mqtt`` the
  body also has ``mqtt``: the broker connection (``MqttPublisher.status``),
  with a ``reason`` when it is not connected; it does not change the code
  (the sources are what is healthy or not).
- ``/metrics``: the Prometheus text format (``stages.serve.metrics``).
- ``/events``: Server-Sent Events, one per processed frame
  (``stages.serve.events``); ``?source=NAME`` for one source.

Bounds: ``max_connections`` connections at once, ``max_events`` of them
``/events`` streams; beyond either a request gets ``429 Too Many Requests``
with ``Retry-After`` (never ``503``, which means unhealthy), and a
connection has ``request_timeout`` seconds in all to send its request
(``408`` after). Host check as ``stages.serve.server`` describes (``421``
for another host name).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, quote, urlsplit

from pipeline import Cancelled
from stages.errors import InputError
from stages.serve.events import EventClient, send_events
from stages.serve.server import (DEFAULT_HOST, REQUEST_TIMEOUT, TEXT, BoundedHTTPServer,
                                QuietHandler, allowed_hosts, hostport, split_host, wake)
from stages.sources.credentials import mask_url
from stages.publish.feed import LiveFeed
from stages.publish.monitor import GIVEN_UP, SourceMonitor

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32  # connections at once: streams, scrapes, health checks
MAX_EVENT_CLIENTS = 8  # /events streams at once
_MAX_WARNED_HOSTS = 64
JSON = "application/json"


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveStatus:
    """What the status server reads of a live run (``LiveJob``'s parts).

    Attributes:
        monitors: One ``SourceMonitor`` per source, by name.
        snapshot: The run's figures (``LiveJob.snapshot``).
        feed: The record feed that ``/events`` subscribes to.
        mqtt: The MQTT broker connection's state now (``MqttPublisher.status``),
            or None without ``--mqtt``.
    """

    monitors: Mapping[str, SourceMonitor]
    snapshot: Callable[[], dict]
    feed: LiveFeed
    mqtt: Callable[[], dict] | None = None

    @classmethod
    def of(cls, job) -> LiveStatus:
        """The status of a ``LiveJob``."""
        publisher = getattr(job, "mqtt", None)
        return cls(monitors=job.monitors, snapshot=job.snapshot, feed=job.feed,
                   mqtt=publisher.status if publisher is not None else None)


def health(monitors: Mapping[str, SourceMonitor],
           mqtt: dict | None = None) -> tuple[bool, dict]:
    """(ok, the ``/healthz`` body) of these sources (see the module docstring).

    Args:
        monitors: The sources' monitors, by name.
        mqtt: The broker connection's state (``MqttPublisher.status``), shown
            in the body as ``mqtt``; it never changes ``ok``.
    """
    sources, failing = {}, []
    for name, monitor in monitors.items():
        ok, reason = monitor.healthy()
        stalled = monitor.stalled_for()
        sources[name] = {"state": monitor.state, "ok": ok,
                         "seconds_since_frame": None if stalled is None else round(stalled, 1)}
        if not ok:
            sources[name]["reason"] = reason
            failing.append(f"{name}: {reason}")
        if monitor.last_error:  # credentials already masked by the source
            sources[name]["last_error"] = monitor.last_error
    body: dict = {"ok": not failing, "sources": sources}
    if monitors and all(m.state == GIVEN_UP for m in monitors.values()):
        body["ok"] = False
        failing.append("every source was given up")
    if failing:
        body["reason"] = "; ".join(failing)
    if mqtt is not None:
        body["mqtt"] = mqtt_detail(mqtt)
    return body["ok"], body


def mqtt_detail(status: dict) -> dict:
    """The broker's state for ``/healthz``: ``ok`` while connected, else a ``reason``."""
    state = status["state"]
    detail = {**status, "ok": state == "connected"}
    if state != "connected":
        why = {"no answer": f"the broker has not answered for "
                            f"{status['seconds_without_answer'] or 0:.0f} s",
               "down": "the broker cannot be reached; retrying"}.get(state, state)
        detail["reason"] = f"{why}; {status['unacknowledged']} messages wait"
    return detail


class StatusServer:
    """Serves ``/``, ``/healthz``, ``/metrics`` and ``/events`` on a thread; a context manager.

    Args:
        host: Address to bind; 127.0.0.1 unless told otherwise.
        port: TCP port; 0 picks a free one (see ``url``).
        status: The live run's parts; None for runs of files (``/healthz``
            answers ok, ``/metrics`` and ``/events`` 404).
        send_timeout: Seconds a client's socket may block before that client
            is dropped (also the longest wait for one read of its request).
        request_timeout: Seconds a connection has, in all, to send its
            request line and headers; past them it gets 408 and is closed.
        max_connections: Connections served at once; one more gets 429.
        max_events: ``/events`` streams at once; one more gets 429.
        option: The command-line option, named in errors.
        preview: The address of the run's preview page, linked from the index
            (None: no preview).

    Raises:
        InputError: The address cannot be bound (in use, unknown host...).
    """

    label = "status"
    handler: type[StatusHandler]  # set below: the request handler of this kind of server

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, *, status: LiveStatus | None = None,
                 send_timeout: float = 10.0, request_timeout: float = REQUEST_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS, max_events: int = MAX_EVENT_CLIENTS,
                 option: str = "--http", preview: str | None = None) -> None:
        self.status = status
        self.preview = preview
        self.max_events = max_events
        self._lock = threading.Lock()
        self._closed = False
        self._warned_hosts: set[str] = set()
        self._clients: dict[EventClient, tuple[socket.socket, threading.Thread]] = {}
        self._events_dropped = 0  # by clients that left
        handler = type("_BoundHandler", (self.handler,), {"owner": self, "timeout": send_timeout})
        try:
            self._httpd = BoundedHTTPServer((host, port), handler, max_connections,
                                            request_timeout)
        except OSError as exc:
            raise InputError(f"{option} {mask_url(hostport(host, port))}: cannot listen: "
                             f"{exc.strerror or exc}") from exc
        self._hosts = allowed_hosts(host, self._httpd.server_address[0])
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"{self.label}-http", daemon=True)

    @property
    def url(self) -> str:
        """The server's address, with the actual port (a wildcard host shows as loopback)."""
        host, port = self._httpd.server_address[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        return f"http://{hostport(host, port)}/"

    @property
    def event_clients(self) -> int:
        """``/events`` clients connected now."""
        with self._lock:
            return len(self._clients)

    def endpoints(self) -> list[tuple[str, str]]:
        """(address, what it serves) of every endpoint, as the index at ``/`` lists them."""
        found = [("/healthz", "health: 200 while every live source delivers frames, "
                              "else 503 and why (JSON)")]
        if self.status is not None:
            found += [("/metrics", "the run's figures in the Prometheus text format"),
                      ("/events", "Server-Sent Events: each processed frame's keypoints")]
            found += [(f"/events?source={quote(name, safe='')}", f"the events of {name} only")
                      for name in self.status.monitors]
        if self.preview is not None:
            found.append((self.preview, "the preview page: the annotated stream in a browser"))
        return found

    def events_figures(self) -> tuple[int, int]:
        """(``/events`` clients now, records dropped for slow clients so far)."""
        with self._lock:
            return len(self._clients), self._events_dropped + sum(c.dropped for c in self._clients)

    def start(self):
        """Start serving on a daemon thread; idempotent."""
        with self._lock:
            if not self._thread.is_alive() and not self._closed:
                self._thread.start()
                log.debug("%s at %s", self.label, self.url)  # the CLI prints it
        return self

    def close(self) -> None:
        """Stop serving and end every client's thread promptly; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        streams = self._end_streams()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        threads = self._httpd.wake_all()  # idle connections waiting for a request
        deadline = time.monotonic() + 2.0
        for thread in {*threads, *streams}:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            log.warning("%s: %d connection thread(s) still running at close", self.label, len(stuck))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- used by the request handler
    def _end_streams(self) -> list[threading.Thread]:
        """Cancel every long-lived response; return the threads serving them."""
        with self._lock:
            clients = list(self._clients.items())
        for client, (connection, _) in clients:
            client.cancel()
            wake(connection)
        return [thread for _, (_, thread) in clients]

    def _host_allowed(self, header: str | None) -> bool:
        """Whether a request's ``Host`` header names this server (None: no header, allowed)."""
        if header is None or self._hosts is None:
            return True
        name, port = split_host(header)
        return name in self._hosts and port in (None, self._httpd.server_address[1])

    def _warn_host(self, header: str, client: str) -> None:
        """One warning per distinct rejected Host (then debug), so a flood cannot fill logs."""
        with self._lock:
            first = header not in self._warned_hosts
            if first and len(self._warned_hosts) < _MAX_WARNED_HOSTS:
                self._warned_hosts.add(header)
        level = logging.WARNING if first else logging.DEBUG
        log.log(level, "%s: refused a request from %s for Host %r (not this server's "
                "name; DNS rebinding?)", self.label, client, header[:100])

    def _subscribe(self, source: str | None, connection) -> EventClient | None | bool:
        """A new ``/events`` client; None once closed, False when full."""
        with self._lock:
            if self._closed:
                return None
            if len(self._clients) >= self.max_events:
                return False
            client = EventClient(self.status.feed.published, source)
            self._clients[client] = (connection, threading.current_thread())
        self.status.feed.subscribe(client)
        return client

    def _unsubscribe(self, client: EventClient) -> None:
        self.status.feed.unsubscribe(client)
        client.cancel()
        with self._lock:
            if self._clients.pop(client, None) is not None:
                self._events_dropped += client.dropped


class StatusHandler(QuietHandler):
    """Serves one request of a status server; ``/events`` holds its thread while it streams."""

    owner: StatusServer  # set on the subclass made per server

    def do_GET(self) -> None:
        if self._host_ok():
            self._route(urlsplit(self.path).path, parse_qs(urlsplit(self.path).query))

    do_HEAD = do_GET  # headers only; a HEAD of /events subscribes no client

    def _host_ok(self) -> bool:
        header = self.headers.get("Host")
        if self.owner._host_allowed(header):
            return True
        self.owner._warn_host(header, self.address_string())
        self._send(HTTPStatus.MISDIRECTED_REQUEST, TEXT,
                   b"this server answers to its own host names only\n")
        return False

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        status = self.owner.status
        if path == "/":
            from stages.serve._index import render

            self._send(HTTPStatus.OK, *render(self.owner.endpoints(), self.headers.get("Accept")),
                       (("Vary", "Accept"),))
        elif path == "/healthz":
            self._healthz(status)
        elif path == "/metrics" and status is not None:
            self._metrics(status)
        elif path == "/events" and status is not None:
            self._events(status, query.get("source", [None])[0] or None)
        else:
            self._send(HTTPStatus.NOT_FOUND, TEXT, b"not found\n")

    def _healthz(self, status: LiveStatus | None) -> None:
        if status is None:
            self._send(HTTPStatus.OK, TEXT, b"ok\n")
            return
        ok, body = health(status.monitors, status.mqtt() if status.mqtt is not None else None)
        self._send(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, JSON,
                   json.dumps(body).encode() + b"\n")

    def _metrics(self, status: LiveStatus) -> None:
        from stages.serve.metrics import CONTENT_TYPE, LiveCollector, exposition

        collector = LiveCollector(status.monitors, status.snapshot, self.owner.events_figures)
        self._send(HTTPStatus.OK, CONTENT_TYPE, exposition(collector))

    def _events(self, status: LiveStatus, source: str | None) -> None:
        if source is not None and source not in status.monitors:
            self._send(HTTPStatus.NOT_FOUND, TEXT, f"no source {source!r}\n".encode())
            return
        if self.command == "HEAD":
            self._event_headers()
            return
        client = self.owner._subscribe(source, self.connection)
        if client is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, TEXT, b"closing\n")
            return
        if client is False:
            self._send(HTTPStatus.TOO_MANY_REQUESTS, TEXT,
                       f"busy: {self.owner.max_events} event streams at most; try again\n".encode(),
                       (("Retry-After", "5"),))
            return
        threading.current_thread().name = f"{self.owner.label}-events-{self.client_address[1]}"
        try:
            self._event_headers()
            send_events(self.wfile, self.connection, client)
        except (OSError, Cancelled) as exc:  # gone, stuck past the timeout, or closing
            log.debug("%s: events client %s left: %s", self.owner.label, self.client_address,
                      type(exc).__name__)
        finally:
            self.owner._unsubscribe(client)
            self.close_connection = True

    def _event_headers(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("X-Accel-Buffering", "no")  # nginx: pass each event on at once
        self.end_headers()


StatusServer.handler = StatusHandler
