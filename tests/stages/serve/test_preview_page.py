"""The preview page's latency figure and kiosk mode: the server side, then a real browser."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from stages.serve import preview as preview_module
from stages.frames import Frame, Person, Result
from stages.publish.feed import LiveFeed
from stages.serve.preview import LATENCY_WINDOW, PreviewServer, _SourceStats
from stages.serve._preview_page import PAGE
from stages.pose.draw import SkeletonAnnotator
from stages.serve.status import LiveStatus
from tests.support.devtools import DevTools, DevToolsError
from tests.support.preview_fixtures import WAIT, connect, fetch, publish_until_seen, result

ROOT = Path(__file__).resolve().parents[3]
SIZE = (1280, 720)


# -- the server side: capture times in the stream, latency and clock in /stats.json

def test_each_part_carries_its_capture_time(server):
    (reader,) = connect(server)
    publish_until_seen(server, [reader], result(0, wall=1764700000.123456))
    assert reader.headers[-1]["x-capture-time"] == "1764700000.123456"
    publish_until_seen(server, [reader], result(1))  # no capture time known: no header
    assert "x-capture-time" not in reader.headers[-1]
    reader.close()


def test_stats_give_the_server_clock_and_capture_to_sent_latency(server):
    stats = json.loads(fetch(server.url + "stats.json")[2])
    assert stats["sources"][0]["sent_latency_ms"] is None  # nothing sent yet
    (reader,) = connect(server)
    for i in range(3):
        publish_until_seen(server, [reader], result(i, wall=time.time() - 0.25))
    before = time.time()
    stats = json.loads(fetch(server.url + "stats.json")[2])
    after = time.time()
    assert before - 0.001 <= stats["time"] <= after + 0.001
    assert stats["clock"] == "decode"  # no live status: a run of files
    latency = stats["sources"][0]["sent_latency_ms"]
    assert 250 <= latency <= 250 + 1000 * WAIT
    reader.close()


def test_a_live_run_says_its_times_are_capture_times():
    status = LiveStatus(monitors={}, snapshot=dict, feed=LiveFeed())
    with PreviewServer(port=0, status=status) as srv:
        assert json.loads(fetch(srv.url + "stats.json")[2])["clock"] == "capture"


def test_the_sent_latency_is_the_median_of_the_last_window():
    stats = _SourceStats("cam")
    stats.sent.extend([(0.0, 9.0), (0.0, 9.0), (0.0, 9.0)])  # older than the window
    stats.sent.extend([(100.0, 0.3), (100.5, 0.1), (101.0, 0.2)])
    assert stats.sent_latency(100.0 + LATENCY_WINDOW) == 0.2
    assert stats.sent_latency(102.0 + LATENCY_WINDOW) is None


def test_page_has_kiosk_overlay_and_latency_parts():
    for needle in ("kiosk", "requestFullscreen", "localStorage", "X-Capture-Time", "getReader",
                   'id="latency"', "overlay", "cursor: none"):
        assert needle.lower() in PAGE.lower(), needle


# -- a real browser

class _Dom(HTMLParser):
    """The text and attributes of the elements of a dumped DOM, by id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.text: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs) -> None:
        attributes = dict(attrs)
        ident = "body" if tag == "body" else attributes.get("id")
        if ident:
            self.attrs[ident] = attributes
            self.text[ident] = ""
        if tag not in ("img", "meta", "br", "input"):
            self._open.append(ident)

    def handle_endtag(self, tag) -> None:
        if self._open and tag not in ("img", "meta", "br", "input"):
            self._open.pop()

    def handle_data(self, data) -> None:
        for ident in self._open:
            if ident:
                self.text[ident] += data


def skeleton(index: int, size=(640, 480), wall: float = 0.0) -> Result:
    """A big skeleton on grey, captured at ``wall``."""
    w, h = size
    points = {0: (0.5, 0.17), 1: (0.5, 0.31), 2: (0.39, 0.31), 3: (0.34, 0.5), 4: (0.31, 0.69),
              5: (0.61, 0.31), 6: (0.66, 0.5), 7: (0.69, 0.69), 8: (0.44, 0.62), 9: (0.42, 0.83),
              10: (0.41, 0.96), 11: (0.56, 0.62), 12: (0.58, 0.83), 13: (0.59, 0.96)}
    keypoints = np.zeros((18, 3), np.float32)
    for part, (x, y) in points.items():
        keypoints[part] = (x * w, y * h, 1.0)
    person = Person(keypoints=keypoints, score=1.0)
    image = np.full((h, w, 3), 40, np.uint8)
    SkeletonAnnotator(thickness=14, radius=8).annotate(image, [person])
    frame = Frame(source="booth", index=index, pts=index / 25, image=image, wall=wall)
    return Result(frame, (person,), image=image)


@dataclass
class Booth:
    """A preview publishing frames captured ``age`` seconds before, by a clock
    ``skew`` seconds ahead of this machine's."""

    url: str
    age: float = 0.0
    skew: float = 0.0


@pytest.fixture
def booth(request):
    """A preview of a live run (of files, given the parameter False) publishing a
    skeleton at about 25 FPS."""
    live = getattr(request, "param", True)
    status = LiveStatus(monitors={}, snapshot=dict, feed=LiveFeed()) if live else None
    stop = threading.Event()
    with PreviewServer(port=0, sources=("booth",), status=status) as srv:
        booth = Booth(srv.url)

        def publishing():
            index = 0
            while not stop.is_set():
                srv.publish(skeleton(index, wall=time.time() + booth.skew - booth.age))
                index += 1
                stop.wait(0.04)

        loop = threading.Thread(target=publishing, daemon=True)
        loop.start()
        try:
            yield booth
        finally:
            stop.set()
            loop.join(WAIT)


LATENCY = "document.getElementById('latency').textContent.trim()"
NUMBER = f"/^\\d+$/.test({LATENCY}) && {LATENCY}"  # the latency figure once it is a number


def check_kiosk_dom(html: str) -> int:
    """Assert the kiosk page's state in its DOM; return the latency figure (ms)."""
    dom = _Dom(html)
    assert "kiosk" in dom.attrs["body"]["class"].split()
    assert "hidden" in dom.attrs["controls"], dom.attrs["controls"]
    latency = dom.text["latency"].strip()
    assert re.fullmatch(r"\d+", latency), f"latency shows {latency!r}"
    assert dom.text["latency-unit"].strip() == "ms latency"
    assert dom.text["people"].strip() == "1" and float(dom.text["fps"]) > 0
    assert dom.attrs["view"]["src"].startswith("blob:")  # drawn part by part from the stream
    return int(latency)


def check_kiosk_shot(png: Path) -> None:
    """Assert a kiosk screenshot: the picture full height, the overlay, no controls."""
    shot = cv2.imread(str(png))
    assert shot.shape == (SIZE[1], SIZE[0], 3)
    grey = np.abs(shot.astype(int) - 40).sum(axis=2) < 12
    rows = np.flatnonzero(grey.any(axis=1))
    assert rows[0] <= 2 and rows[-1] >= SIZE[1] - 3  # the picture fills the window's height
    hud = shot[: SIZE[1] // 8, : SIZE[0] // 2]
    assert (hud.min(axis=2) > 200).sum() > 500  # the overlay's white figures
    controls = shot[: SIZE[1] // 8, SIZE[0] * 3 // 4:]
    assert (np.abs(controls.astype(int) - 34).sum(axis=2) < 6).sum() < 200  # no buttons (#222)


def test_chromium_kiosk_page_shows_latency_and_no_controls(chromium, booth, tmp_path):
    with DevTools(chromium, size=SIZE) as page:
        page.open(booth.url + "?kiosk=1")
        page.wait_for(NUMBER)
        check_kiosk_shot(page.screenshot(tmp_path / "kiosk.png"))
        check_kiosk_dom(page.evaluate("document.documentElement.outerHTML"))
        assert page.evaluate("getComputedStyle(document.getElementById('controls')).display") == "none"
        assert page.evaluate("document.fullscreenElement") is None
        page.click(SIZE[0] / 2, SIZE[1] / 2)  # the first gesture anywhere: full screen
        page.wait_for("document.fullscreenElement === document.documentElement")
        page.wait_for("document.body.classList.contains('idle')", timeout=10)
        assert page.evaluate("getComputedStyle(document.getElementById('view')).cursor") == "none"
        page.move(10, 10)
        assert page.evaluate("getComputedStyle(document.getElementById('view')).cursor") != "none"


def test_the_page_corrects_for_the_server_clock(chromium, booth, monkeypatch):
    class AnHourAhead:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def time() -> float:
            return time.time() + 3600

    monkeypatch.setattr(preview_module, "time", AnHourAhead)
    booth.skew, booth.age = 3600, 0.5
    with DevTools(chromium, size=SIZE) as page:
        page.open(booth.url)
        latency = int(page.wait_for(NUMBER))
    # half a second, give or take the offset's error (half a poll's round trip); not an hour
    assert 250 <= latency <= 500 + 1000 * WAIT


def test_overlay_corners_cycle_and_are_remembered(chromium, booth, tmp_path):
    corner = "document.body.dataset.overlay"
    with DevTools(chromium, size=SIZE) as page:
        page.open(booth.url + "?kiosk=1")
        page.wait_for(NUMBER)
        assert page.evaluate(corner) == "tl"
        box = page.evaluate("JSON.stringify(document.getElementById('hud').getBoundingClientRect())")
        box = json.loads(box)
        page.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert page.evaluate(corner) == "tr"
        page.key("o")
        assert page.evaluate(corner) == "br"
        shot = cv2.imread(str(page.screenshot(tmp_path / "br.png")))
        white = shot.min(axis=2) > 200
        assert white[SIZE[1] * 7 // 8:, SIZE[0] // 2:].sum() > 500 and white[: SIZE[1] // 8].sum() < 50
        page.open(booth.url + "?kiosk=1")  # remembered
        page.wait_for(f"{corner} === 'br'")
        page.open(booth.url + "?overlay=off")  # the address wins
        page.wait_for(f"{corner} === 'off'")
        assert page.evaluate("getComputedStyle(document.getElementById('hud')).display") == "none"
        assert page.evaluate("getComputedStyle(document.getElementById('controls')).display") != "none"


def test_plain_img_fallback_shows_the_servers_figure(chromium, booth):
    with DevTools(chromium, size=SIZE) as page:
        page.open(booth.url + "?img=1")
        page.wait_for(NUMBER)
        assert page.evaluate("document.getElementById('view').src").split("/", 3)[3].startswith(
            "stream.mjpg")
        assert "to sent" in page.evaluate("document.getElementById('latency-box').title")


@pytest.mark.parametrize("booth", [False], indirect=True)
def test_for_files_the_figure_runs_from_decode(chromium, booth):
    with DevTools(chromium, size=SIZE) as page:
        page.open(booth.url)
        page.wait_for(NUMBER)
        assert page.evaluate("document.getElementById('latency-unit').textContent") == (
            "ms processing")
        assert page.evaluate("document.getElementById('latency-box').title").startswith(
            "decode to display")


@pytest.mark.slow
def test_chromium_kiosk_page_of_a_live_run(chromium, tmp_path):
    """``--preview`` of a live lavfi source through the pipeline: the kiosk URL it prints."""
    cmd = [sys.executable, str(ROOT / "run_stream.py"), "lavfi:testsrc2=size=640x480:rate=10",
           "-o", str(tmp_path / "out"), "--backend", "tests.support.fakes:OnePersonBackend",
           "--preview", "127.0.0.1:0", "--record", "none"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        kiosk = None
        for _ in range(50):
            match = re.search(r"kiosk: (http://127\.0\.0\.1:\d+/\?kiosk=1)", proc.stderr.readline())
            if match:
                kiosk = match.group(1)
                break
        assert kiosk, "no kiosk URL printed"
        with DevTools(chromium, size=SIZE) as page:
            page.open(kiosk)
            latency = int(page.wait_for(NUMBER, timeout=60))
            png = page.screenshot(tmp_path / "live-kiosk.png")
            html = page.evaluate("document.documentElement.outerHTML")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert cv2.imread(str(png)).shape == (SIZE[1], SIZE[0], 3)
    dom = _Dom(html)
    # the figure is live: the page snapshot, taken after the screenshot, may show a newer one
    assert latency >= 0 and "hidden" in dom.attrs["controls"]
    assert re.fullmatch(r"\d+", dom.text["latency"].strip()), dom.text["latency"]


# -- before the first frame: a placeholder, never a broken picture

SHOWN = """JSON.stringify({
  waiting: getComputedStyle(document.getElementById('waiting')).display !== 'none'
           && document.getElementById('waiting').getBoundingClientRect().height > 0,
  text: document.getElementById('waiting-text').textContent,
  view: getComputedStyle(document.getElementById('view')).display !== 'none'
        && document.getElementById('view').getBoundingClientRect().width > 0})"""
POLLED = "document.getElementById('fps')?.textContent.trim() === '0.0'"  # a /stats.json poll came


def _navigate(page: DevTools, url: str) -> None:
    """Go to ``url`` and wait for the page's first poll, not for its load event (an
    ``<img>`` of a stream without frames holds that back)."""
    page.call("Page.navigate", session=True, url=url)
    deadline = time.monotonic() + 20
    while True:
        try:
            if page.evaluate(POLLED):
                return
        except DevToolsError:  # between two documents
            pass
        assert time.monotonic() < deadline, f"{url}: no poll of /stats.json in 20 s"
        time.sleep(0.1)


def test_page_has_a_placeholder_and_hides_the_picture_until_a_frame():
    assert 'id="waiting"' in PAGE and "Waiting for the camera" in PAGE
    assert re.search(r'<img id="view"[^>]* hidden>', PAGE)  # no broken image before any frame
    assert "pictureShown(true)" in PAGE and "pictureShown(false)" in PAGE


@pytest.mark.parametrize("query,live,text", [("", True, "Waiting for the camera"),
                                             ("?img=1", True, "Waiting for the camera"),
                                             ("?kiosk=1", False, "Waiting for the first frame")],
                         ids=["live", "img-fallback", "files"])
def test_chromium_shows_the_placeholder_until_the_first_frame(chromium, tmp_path, query, live, text):
    status = LiveStatus(monitors={}, snapshot=dict, feed=LiveFeed()) if live else None
    frames = threading.Event()
    stop = threading.Event()
    with PreviewServer(port=0, sources=("booth",), status=status) as srv:
        def publishing():
            index = 0
            frames.wait()
            while not stop.is_set():
                srv.publish(skeleton(index, wall=time.time()))
                index += 1
                stop.wait(0.04)

        loop = threading.Thread(target=publishing, daemon=True)
        loop.start()
        try:
            with DevTools(chromium, size=SIZE) as page:
                _navigate(page, srv.url + query)
                assert json.loads(page.evaluate(SHOWN)) == {"waiting": True, "text": text,
                                                            "view": False}
                shot = cv2.imread(str(page.screenshot(tmp_path / "waiting.png")))
                middle = shot[SIZE[1] * 2 // 5: SIZE[1] * 3 // 5, SIZE[0] // 4: SIZE[0] * 3 // 4]
                assert (middle.min(axis=2) > 150).sum() > 300  # the words, painted
                frames.set()
                shown = json.loads(page.wait_for(
                    f"(s => JSON.parse(s).view && s)({SHOWN})"))
                assert shown["waiting"] is False
                shot = cv2.imread(str(page.screenshot(tmp_path / "shown.png")))
                grey = np.abs(shot.astype(int) - 40).sum(axis=2) < 12
                assert grey.mean() > 0.3  # the picture itself now fills the window
        finally:
            stop.set()
            frames.set()
            loop.join(WAIT)
