"""A small HTTP server for loopback viewers: bounded connections and a Host check.

``BoundedHTTPServer`` serves each connection on its own thread, up to
``max_connections``; beyond them a request gets ``429 Too Many Requests``
with ``Retry-After`` and a short body (so a monitor tells "busy" from an
unhealthy ``503``), from one of a few (``REFUSERS``) short-lived threads,
or, when those are busy too, the connection is closed at once. Thread count
therefore never exceeds ``max_connections + REFUSERS`` plus the server's
own. Every open connection is known, so ``wake_all`` can end their threads
at close.

A connection has ``request_timeout`` seconds in all to send its request line
and headers (a socket timeout bounds each read only, so a client sending a
byte every few seconds would hold its slot for ever): past that the server's
own loop answers ``408`` and closes it, freeing the slot.

``parse_bind`` reads the ``[HOST:]PORT`` of ``--preview`` and ``--http``;
``allowed_hosts`` and ``split_host`` are the pieces of a DNS-rebinding guard:
the Host names a request may use for the address the server is bound to.
"""

from __future__ import annotations

import logging
import select
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer

from stages.errors import InputError
from stages.sources.credentials import mask_url

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
REFUSERS = 4  # threads at most answering 429 beyond the connection bound
REQUEST_TIMEOUT = 10.0  # seconds a connection has, in all, to send its request line and headers
_REFUSE_TIMEOUT = 1.0  # seconds a refused client has to send its request
_TIMED_OUT_BODY = b"the request took too long to come\n"
_TIMED_OUT = (b"HTTP/1.0 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
              % (len(_TIMED_OUT_BODY), _TIMED_OUT_BODY))
_WILDCARDS = ("0.0.0.0", "::", "")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_GONE = (ConnectionError, TimeoutError)  # a client went away or stopped reading: normal
TEXT = "text/plain; charset=utf-8"


class BoundedHTTPServer(HTTPServer):
    """A thread per connection, up to a bound; a 429 from a few more threads beyond it.

    No reverse DNS look-up at bind; quiet about viewers leaving. Every open
    connection is known, so ``wake_all`` can end their threads at close, and
    so is when each must have sent its request (``request_timeout``; the
    handler calls ``request_read`` once it has).
    """

    request_queue_size = 128  # listen backlog: a burst of connections is accepted, then refused

    def __init__(self, address: tuple[str, int], handler, max_connections: int,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusers = threading.BoundedSemaphore(REFUSERS)
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self._open: dict[socket.socket, threading.Thread] = {}
        self._deadlines: dict[socket.socket, float] = {}  # connections still sending their request
        self._open_lock = threading.Lock()
        self._count = 0
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        for slots, handler in ((self._slots, self.RequestHandlerClass),
                               (self._refusers, _BusyHandler)):
            if slots.acquire(blocking=False):
                self._count += 1
                thread = threading.Thread(target=self._serve, daemon=True,
                                          name=f"preview-connection-{self._count}",
                                          args=(request, client_address, handler, slots))
                limit = self.request_timeout if handler is self.RequestHandlerClass \
                    else min(self.request_timeout, _REFUSE_TIMEOUT)
                with self._open_lock:
                    self._open[request] = thread
                    self._deadlines[request] = time.monotonic() + limit
                thread.start()
                return
        log.debug("http: %s closed at once: %d connections and %d refusals under way",
                  client_address, self.max_connections, REFUSERS)
        self.shutdown_request(request)

    def _serve(self, request, client_address, handler, slots) -> None:
        try:
            handler(request, client_address, self)
        except Exception:  # noqa: BLE001 - reported by handle_error, as socketserver does
            self.handle_error(request, client_address)
        finally:
            with self._open_lock:
                self._open.pop(request, None)
                self._deadlines.pop(request, None)
            self.shutdown_request(request)
            slots.release()

    def request_read(self, connection: socket.socket) -> bool:
        """Note that ``connection`` has sent its request; False if its time ran out first
        (the server then answers 408 and closes it: the handler must not answer)."""
        with self._open_lock:
            return self._deadlines.pop(connection, None) is not None

    def service_actions(self) -> None:
        """Run by ``serve_forever`` every poll: close the connections past their deadline."""
        now = time.monotonic()
        with self._open_lock:
            late = [c for c, deadline in self._deadlines.items() if deadline <= now]
            for connection in late:
                del self._deadlines[connection]
        for connection in late:
            log.debug("http: %s sent no whole request in %g s; closed", _peer(connection),
                      self.request_timeout)
            _time_out(connection)

    def wake_all(self) -> list[threading.Thread]:
        """Shut every open connection down (its thread then ends); return those threads."""
        with self._open_lock:
            open_now = dict(self._open)
        for connection in open_now:
            wake(connection)
        return list(open_now.values())

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, _GONE):
            log.debug("http: %s went away: %s", client_address, exc)
        else:
            log.exception("http: error serving %s", client_address)


class QuietHandler(BaseHTTPRequestHandler):
    """Request-handler basics shared by the server's handlers."""

    server_version = "posestream-preview"

    def parse_request(self) -> bool:
        """Read the headers; answer nothing if the request came too late (see the server)."""
        ok = super().parse_request()
        if not self.server.request_read(self.connection):
            self.close_connection = True
            return False
        return ok

    def _send(self, status: HTTPStatus, content_type: str, body: bytes,
              headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store")
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.debug("http: %s %s", self.address_string(), format % args)


class _BusyHandler(QuietHandler):
    """Answers any request with 429: the server already serves all the connections it may."""

    timeout = _REFUSE_TIMEOUT

    def handle_one_request(self) -> None:
        self.close_connection = True
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except TimeoutError:
            return
        if not self.raw_requestline or not self.parse_request():
            return
        limit = self.server.max_connections
        self._send(HTTPStatus.TOO_MANY_REQUESTS, TEXT,
                   f"busy: {limit} connections at most; try again\n".encode(),
                   (("Retry-After", "1"), ("Connection", "close")))


def parse_bind(text: str, option: str = "--preview") -> tuple[str, int]:
    """Read ``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; the host defaults to 127.0.0.1.

    Args:
        text: What the user gave.
        option: The option it came with, named in the error.

    Raises:
        InputError: Not one of those forms, or the port is not in 0..65535
            (0 picks a free port).
    """
    spec = text.strip()
    host, port = DEFAULT_HOST, spec
    if spec.startswith("["):
        inside, bracket, rest = spec[1:].partition("]")
        if not bracket or not inside or not rest.startswith(":"):
            raise _bind_error(text, option)
        host, port = inside, rest[1:]
    elif ":" in spec:
        host, _, port = spec.rpartition(":")
        if ":" in host:  # a bare IPv6 address: ambiguous without brackets
            raise _bind_error(text, option)
        host = host or DEFAULT_HOST
    if not port.isdigit() or int(port) > 65535 or any(c.isspace() for c in host):
        raise _bind_error(text, option)
    return host, int(port)


def _bind_error(text: str, option: str) -> InputError:
    return InputError(f"{option} {mask_url(text)!r}: expected PORT, HOST:PORT or [IPv6]:PORT "
                      "with PORT in 0-65535")


def allowed_hosts(requested: str, bound: str) -> frozenset[str] | None:
    """Host names a request may use: loopback names, the bound address, this machine's name.

    None (any) when bound to a wildcard address: the user chose to serve
    every network, under names this server cannot know.
    """
    if requested in _WILDCARDS or bound in _WILDCARDS:
        return None
    names = {*_LOOPBACK_NAMES, requested, bound, socket.gethostname()}
    return frozenset(split_host(name)[0] for name in names if name)


def split_host(header: str) -> tuple[str, int | None]:
    """(name, port or None) of a Host header: lower case, no brackets, no final dot."""
    text = header.strip().lower()
    port = None
    if text.startswith("["):
        name, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        name, _, port_text = text.partition(":")
    else:
        name, port_text = text, None
    if port_text is not None:
        port = int(port_text) if port_text.isdigit() else -1  # -1 matches no port
    return name.rstrip("."), port


def hung_up(connection: socket.socket) -> bool:
    """Whether the peer closed or reset ``connection`` (never blocks)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and not connection.recv(1, socket.MSG_PEEK)
    except (OSError, ValueError):
        return True


def _time_out(connection: socket.socket) -> None:
    """Answer 408 without blocking (a client that reads nothing loses it), then close."""
    try:
        connection.setblocking(False)  # the server's own thread must never wait on a client
        connection.send(_TIMED_OUT)
    except OSError:
        pass  # gone, or not reading: closing is the answer
    wake(connection)


def _peer(connection: socket.socket) -> str:
    try:
        return hostport(*connection.getpeername()[:2])
    except OSError:
        return "a client"


def wake(connection: socket.socket) -> None:
    """Make a send blocked on a viewer that stopped reading fail now."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
