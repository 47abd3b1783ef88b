"""The preview's HTTP server: bounded viewers and connections, the Host check, HEAD
(issue 11, items 12 and 13), through a real PreviewServer on 127.0.0.1."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from stages.errors import InputError
from stages.serve import server as http_server
from stages.serve.preview import PreviewServer
from stages.serve.status import StatusServer
from tests.support.preview_fixtures import (WAIT, connect, preview_threads, publish_until_seen,
                                          result, wait_until)


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


def test_viewers_beyond_the_bound_get_429_and_the_page_still_loads():
    with PreviewServer(port=0, sources=("cam",), max_viewers=2, max_connections=4) as srv:
        readers = connect(srv, 2)
        status, headers, body = request(srv, "/stream.mjpg")
        assert status == 429 and b"2 viewers at most" in body and len(body) < 100
        assert headers["Retry-After"] and srv.viewers == 2
        assert request(srv, "/")[0] == 200 and request(srv, "/stats.json")[0] == 200
        readers[0].close()
        assert wait_until(lambda: srv.viewers == 1)
        readers[1:] += connect(srv)  # a place came free
        publish_until_seen(srv, readers[1:], result(0))
        for reader in readers[1:]:
            reader.close()


def test_connections_beyond_the_bound_get_429_and_threads_stay_bounded():
    bound, attempts = 3, 100
    with PreviewServer(port=0, sources=("cam",), max_viewers=2, max_connections=bound) as srv:
        port = urlsplit(srv.url).port
        idle = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(bound)]
        assert wait_until(lambda: len(connection_threads()) == bound), connection_threads()
        status, _, body = request(srv)
        assert status == 429 and body.startswith(b"busy: 3 connections at most")
        crowd = [socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                 for _ in range(attempts)]  # connect and say nothing, like 100 stalled viewers
        most = len(connection_threads())
        assert most <= bound + http_server.REFUSERS, connection_threads()
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
    with caplog.at_level(logging.DEBUG, logger="stages.serve.preview"):
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
    assert http_server.allowed_hosts("0.0.0.0", "0.0.0.0") is None
    assert http_server.allowed_hosts("::", "::") is None
    names = http_server.allowed_hosts("127.0.0.2", "127.0.0.2")
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


@pytest.mark.parametrize("option", ["--preview", "--http"])
@pytest.mark.parametrize("text", [
    "http://dave:s3cr3t@127.0.0.1:8080/x", "dave:s3cr3t@127.0.0.1:8080", "dave:s3 cr3t@[::1:80",
    "rtsp://da ve:s3cr3t@127.0.0.1/x",
])
def test_a_bad_bind_address_names_the_option_and_masks_the_url(option, text):
    with pytest.raises(InputError) as caught:
        http_server.parse_bind(text, option)
    message = str(caught.value)
    assert message.startswith(f"{option} '") and "***@" in message
    assert "cr3t" not in message and "dave" not in message and "da ve" not in message


# -- clients that send their request a byte at a time (issue 21, item 6) ------------------------

class Trickler:
    """A client sending a request that never ends, one byte every ``interval`` s, on a thread.

    Each byte comes well within the server's per-read timeout, so only a bound on the
    whole request can end it.
    """

    REQUEST = b"GET /healthz HTTP/1.0\r\nX-Slow: " + b"x" * 1000  # no end of headers

    def __init__(self, port: int, interval: float = 0.05) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, args=(interval,), daemon=True)
        self._thread.start()

    def _trickle(self, interval: float) -> None:
        for byte in self.REQUEST:
            if self._stop.wait(interval):
                return
            try:
                self.sock.send(bytes([byte]))
            except OSError:  # the server closed the connection
                return

    def answer(self) -> bytes:
        """What the server sent before it closed the connection (waits up to WAIT per read)."""
        chunks = []
        try:
            while chunk := self.sock.recv(4096):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.sock.close()


def test_trickling_clients_get_408_at_the_request_deadline_and_healthz_comes_back():
    bound = 3
    with StatusServer(port=0, max_connections=bound, send_timeout=WAIT,
                      request_timeout=0.5) as srv:
        port = urlsplit(srv.url).port
        tricklers = [Trickler(port) for _ in range(bound + http_server.REFUSERS + 3)]
        try:
            answers = [t.answer() for t in tricklers]  # each ends: none holds a slot for ever
        finally:
            for trickler in tricklers:
                trickler.close()
        timed_out = [a for a in answers if a.startswith(b"HTTP/1.0 408 ")]
        assert len(timed_out) >= bound, answers
        assert all(a == b"" or a.startswith(b"HTTP/1.0 408 ") for a in answers), answers
        assert wait_until(lambda: status_of(srv) == (200, b"ok\n"))
        assert wait_until(lambda: not connection_threads()), connection_threads()


def test_a_full_server_answers_429_with_a_reason_never_the_503_of_unhealthy():
    bound = 3
    with StatusServer(port=0, max_connections=bound, send_timeout=WAIT) as srv:
        tricklers = [Trickler(urlsplit(srv.url).port) for _ in range(bound)]
        try:
            assert wait_until(lambda: len(connection_threads()) == bound), connection_threads()
            code, headers, body = request(srv)
            assert code == 429 and headers["Retry-After"] == "1"
            assert body == b"busy: 3 connections at most; try again\n"
        finally:
            for trickler in tricklers:
                trickler.close()
        assert wait_until(lambda: status_of(srv) == (200, b"ok\n"))


def status_of(server) -> tuple[int, bytes]:
    code, _, body = request(server)
    return code, body
