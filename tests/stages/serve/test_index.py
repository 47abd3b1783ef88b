"""The status server's index at ``/``: every endpoint linked, each link answering 200,
in the form the client asks for (``stages.serve._index``)."""

from __future__ import annotations

import http.client
import json
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from stages.serve._index import HTML, JSON, TEXT, choose
from stages.serve.preview import PreviewServer
from stages.serve.status import StatusServer
from tests.stages.serve.test_status import make_status
from tests.support.status_fixtures import WAIT, get

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


class _Links(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


def _index(url: str, accept: str | None) -> tuple[int, str, bytes, str]:
    """(status, content type, body, Vary) of ``GET /`` with ``accept``."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    try:
        conn.request("GET", "/", headers={"Accept": accept} if accept else {})
        reply = conn.getresponse()
        return reply.status, reply.getheader("Content-Type"), reply.read(), reply.getheader("Vary")
    finally:
        conn.close()


def _answer(url: str) -> int:
    """The status of ``GET url``, read without its body (``/events`` streams for ever)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.fixture
def servers():
    """A live run's status server whose index links the run's preview page."""
    with PreviewServer(port=0, sources=("cam", "door")) as preview, \
            StatusServer("127.0.0.1", 0, status=make_status(("cam", "door")),
                         preview=preview.url) as status:
        yield status, preview


def test_the_index_links_every_endpoint_and_each_answers_200(servers):
    status, preview = servers
    code, kind, body, vary = _index(status.url, BROWSER)
    assert (code, kind, vary) == (200, HTML, "Accept")
    hrefs = _Links(body.decode()).hrefs
    assert hrefs == ["/healthz", "/metrics", "/events", "/events?source=cam",
                     "/events?source=door", preview.url]
    for href in hrefs:
        assert _answer(urljoin(status.url, href)) == 200, href


def test_every_route_of_the_server_is_in_its_index(servers):
    status, _ = servers
    listed = {urlsplit(href).path for href, _ in status.endpoints() if href.startswith("/")}
    for path in ("/healthz", "/metrics", "/events", "/nothing-here"):
        answered = _answer(status.url.rstrip("/") + path) == 200
        assert answered == (path in listed), path


def test_curl_gets_one_endpoint_a_line_and_json_is_there_for_programs(servers):
    status, preview = servers
    code, kind, body, _ = _index(status.url, "*/*")  # what curl sends
    lines = body.decode().splitlines()
    assert (code, kind) == (200, TEXT) and lines[0] == "posestream status"
    assert [line.split()[0] for line in lines[1:]] == [h for h, _ in status.endpoints()]
    code, kind, body, _ = _index(status.url, None)
    assert (code, kind) == (200, TEXT)
    code, kind, body, _ = _index(status.url, "application/json")
    rows = json.loads(body)["endpoints"]
    assert (code, kind) == (200, JSON) and [r["href"] for r in rows][-1] == preview.url
    assert all(r["description"] for r in rows)
    assert get(status.url, "/", "HEAD")[::2] == (200, b"")


def test_a_server_without_a_live_run_lists_only_what_it_serves():
    with StatusServer(port=0) as srv:
        code, kind, body, _ = _index(srv.url, BROWSER)
        hrefs = _Links(body.decode()).hrefs
        assert code == 200 and hrefs == ["/healthz"]
        assert _answer(srv.url + "healthz") == 200 and _answer(srv.url + "metrics") == 404


def test_the_preview_server_keeps_its_page_at_the_root():
    with PreviewServer(port=0) as srv:
        code, kind, body = get(srv.url, "/")
        assert code == 200 and b'id="view"' in body


@pytest.mark.parametrize("accept,form", [
    (BROWSER, HTML),
    ("*/*", TEXT),
    ("", TEXT),
    ("application/json", JSON),
    ("application/json;q=0.5, text/html;q=0.4", JSON),
    ("text/plain, text/html", HTML),  # a tie: the page
    ("text/html;q=0, application/json;q=0", TEXT),  # both refused
    ("text/html;q=oops", TEXT),
])
def test_the_form_follows_the_accept_header(accept, form):
    assert choose(accept) == form
