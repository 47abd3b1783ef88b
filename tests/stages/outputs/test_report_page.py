"""The report in a real browser (headless Chromium): it renders, every picture is there,
and the page asks for nothing beyond itself."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from stages.outputs.report import write_report
from tests.stages.outputs.test_report import _batch_summary, _tables
from tests.stages.outputs.test_tables import _input, _results, _tracked_twice
from tests.support.devtools import DevTools

WIDTH = 1280
IMAGES = """JSON.stringify([...document.images].map(i => ({
  complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
  shown: i.getBoundingClientRect().width, declared: [i.width, i.height]})))"""
BLUE = (180, 111, 31)  # the plots' bars and lines (#1f6fb4), BGR


def open_report(chromium: str, path: Path, png: Path) -> tuple[list[dict], list[str], np.ndarray]:
    """Open ``path`` in Chromium; return its pictures' state, the URLs it asked for, and a
    screenshot of the whole page (also written to ``png``)."""
    with DevTools(chromium, size=(WIDTH, 900)) as page:
        page.call("Network.enable", session=True)
        page.open(path.as_uri())
        images = json.loads(page.evaluate(IMAGES))
        height = int(page.evaluate("document.documentElement.scrollHeight"))
        page.call("Emulation.setDeviceMetricsOverride", session=True, width=WIDTH, height=height,
                  deviceScaleFactor=1, mobile=False)
        page.screenshot(png)
        requests = list(page.requests)
    return images, requests, cv2.imread(str(png))


def check_page(path: Path, images: list[dict], requests: list[str], shot: np.ndarray,
               pictures: int) -> None:
    """Assert what any report shows in Chromium: ``pictures`` pictures, all loaded at their
    natural size, nothing asked for but the page (and its own data: URIs), the plots painted."""
    assert len(images) == pictures
    for image in images:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
        assert [image["width"], image["height"]] == image["declared"] and image["shown"] > 100
    assert path.as_uri() in requests
    outside = [url for url in requests if url != path.as_uri() and not url.startswith("data:")]
    assert outside == []
    blue = (np.abs(shot.astype(int) - BLUE).sum(axis=2) < 30).sum()
    assert blue > 2000 * pictures // 3, blue  # the bars and lines of the plots, painted


def test_chromium_shows_a_batch_report_with_every_picture(chromium, tmp_path):
    tables = _tables(tmp_path, [_input(tmp_path, "a", _tracked_twice()),
                                _input(tmp_path, "b", _results(True))])
    path = write_report(tables.frames.parent, summary=_batch_summary(a="done", b="done"))
    images, requests, shot = open_report(chromium, path, tmp_path / "report.png")
    check_page(path, images, requests, shot, pictures=6)
    assert shot.shape[0] > 1500  # the whole page: totals, then two inputs of three pictures
