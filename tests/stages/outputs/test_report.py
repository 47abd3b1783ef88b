"""The report of a run, from small tables: what it shows, what it leaves out, and that it
is one safe, self-contained page."""

from __future__ import annotations

import base64
import csv
import errno
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.errors import InputError, OutputError
from stages.frames import PART_NAMES
from stages.outputs import atomic
from stages.outputs.formats import csv_columns
from stages.outputs._report_data import (MAX_POINTS, SourceData, Speed, Track, drawn_tracks,
                                         people_series)
from stages.outputs.report import (MAX_TRACK_BARS, REPORT_NAME, ReportData, build_report,
                                   find_tables, read_report_data, write_report)
from stages.outputs.tables import FRAME_COLUMNS, PEOPLE_COLUMNS, TablePaths, write_tables
from tests.stages.outputs.test_formats import _results
from tests.stages.outputs.test_tables import _input, _tracked_twice

PNG = b"\x89PNG\r\n\x1a\n"
ENGINE = {"backend": "openvino", "precision": "f32", "devices": ["CPU", "CPU"],
          "model": "mobilenet_thin", "resolution": "432x368"}


class Page(HTMLParser):
    """What a test reads of a report: its tags, headings, pictures and text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.headings: list[tuple[str, str]] = []
        self.images: list[dict] = []
        self.links: list[str] = []
        self.meta: list[dict] = []
        self.text = ""
        self._heading: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attributes = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self._heading = tag
            self.headings.append((tag, ""))
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "a":
            self.links.append(attributes.get("href"))
        elif tag == "meta":
            self.meta.append(attributes)

    def handle_endtag(self, tag):
        if tag == self._heading:
            self._heading = None

    def handle_data(self, data):
        self.text += data
        if self._heading:
            kind, text = self.headings[-1]
            self.headings[-1] = (kind, text + data)

    def h2(self) -> list[str]:
        return [text for kind, text in self.headings if kind == "h2"]

    def pngs(self) -> list[bytes]:
        """The pictures, each checked to be a PNG of the size its tag gives."""
        found = []
        for img in self.images:
            head, _, data = img["src"].partition(",")
            assert head == "data:image/png;base64"
            png = base64.b64decode(data, validate=True)
            assert png.startswith(PNG)
            width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
            assert (width, height) == (int(img["width"]), int(img["height"])) and width > 100
            found.append(png)
        return found


def _tables(folder: Path, inputs) -> TablePaths:
    out = folder / "out"
    out.mkdir(exist_ok=True)
    paths = TablePaths.of(out)
    write_tables(paths, inputs, parquet=False)
    return paths


def _batch_summary(**statuses) -> dict:
    rows = [{"input": name, "status": status, "frames": 9 if status == "done" else 0,
             "mean_people": 1.0, "fps": 20.0, "people": 9, "seconds": 0.45, "truncated": False,
             "frames_lost": 0, "error": "decoder gave up" if status == "failed" else "",
             "outputs": [], "engine": ENGINE} for name, status in statuses.items()]
    totals = {"files": len(rows), "done": 0, "skipped": 0, "failed": 0, "interrupted": 0,
              "pending": 0, "frames": sum(r["frames"] for r in rows), "seconds": 0.9, "fps": 16.7}
    for r in rows:
        totals[r["status"]] += 1
    return {"files": rows, "totals": totals}


@pytest.fixture
def tables(tmp_path) -> TablePaths:
    """Two inputs: ``a`` (two tracks over 12 frames, 3 of them not processed) and ``b``."""
    return _tables(tmp_path, [_input(tmp_path, "a", _tracked_twice()),
                              _input(tmp_path, "b", _results(True))])


def test_a_batch_report_has_the_totals_then_each_input_with_its_three_pictures(tables):
    path = write_report(tables.frames.parent, tables=tables,
                        summary=_batch_summary(a="done", b="done", c="failed"))
    assert path == tables.frames.parent / REPORT_NAME
    page = Page(path.read_text(encoding="utf-8"))
    assert page.h2() == ["Totals", "a", "b"]
    assert [text for kind, text in page.headings if kind == "h3"] == ["People over time", "Tracks",
                                                                     "Parts"] * 2
    assert len(page.pngs()) == 6
    assert page.links == ["#input-1", "#input-2"]
    totals = page.text[page.text.index("Totals"):page.text.index("People over time")]
    for figure in ("3 (2 done, 1 failed)", "15", "4 tracks", "16.7 FPS over 0.9 s"):
        assert figure in totals, figure
    assert "not in the tables: it did not finish in this run (decoder gave up)" in totals
    assert "processed at 20.0 FPS, 9 frames in 0.45 s" in page.text
    assert "openvino f32 on CPU (2 workers), mobilenet_thin at 432x368" in page.text


def test_the_report_reads_the_numbers_of_the_tables(tables):
    data = read_report_data(tables)
    a, b = data.sources
    assert (a.source, a.frames, b.frames) == ("a", 9, 6) and data.batch
    assert list(a.people) == [2, 1, 0, 2, 0, 1, 1, 0, 1]  # frames 0-5, then 9-11
    assert (a.width, a.height) == (640, 480)
    assert a.step == pytest.approx(0.04) and a.duration == pytest.approx(11 / 25 + 0.04)
    assert [(k.id, k.frames_seen) for k in a.tracks] == [(1, 4), (2, 4)]
    rows = pd.read_csv(tables.keypoints)
    mine = rows[rows["source"] == "a"]
    assert a.person_frames == len(mine) == 8 and a.without_id == 0
    c = mine[[f"{name}_c" for name in PART_NAMES]].to_numpy()
    assert list(a.found) == list((c > 0).sum(axis=0))
    assert np.allclose(a.part_rates(), (c > 0).mean(axis=0))
    mean, low, high = a.part_confidence()
    found = np.where(c > 0, c, np.nan)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):  # parts never found
        assert np.allclose(mean, np.nanmean(found, axis=0), equal_nan=True)
    known = ~np.isnan(mean)
    assert (low[known] <= mean[known] + 0.025).all() and (mean[known] <= high[known] + 0.025).all()
    assert np.isnan(low[~known]).all() and known.sum() == 16  # _person leaves two parts out


def test_a_long_series_is_drawn_from_bins_of_frames_with_their_mean_lowest_and_highest():
    source = SourceData("long")
    counts = np.arange(10_000) % 5  # 0, 1, 2, 3, 4, 0, ...
    source.pts.extend(np.arange(10_000) / 25)
    source.people.extend(counts.tolist())
    series = people_series(source)
    assert series.per_point == 17 and len(series.t) == len(series.mean) == 589 <= MAX_POINTS
    assert series.t[0] == pytest.approx(8 / 25)
    assert series.mean[0] == pytest.approx(counts[:17].mean())
    assert (series.low[0], series.high[0]) == (0, 4)
    last = counts[588 * 17:]  # the last bin has what is left
    assert series.mean[-1] == pytest.approx(last.mean()) and series.high[-1] == last.max()
    short = SourceData("short")
    short.pts.extend([0.0, 0.04, 0.08])
    short.people.extend([1, 3, 2])
    series = people_series(short)
    assert series.per_point == 1 and list(series.mean) == [1, 3, 2] == list(series.high)


def test_a_long_video_makes_a_report_of_a_bounded_size(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    frames = 90_000  # an hour at 25 FPS
    with open(out / "frames.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FRAME_COLUMNS)
        writer.writerows(("cam.mp4", i, i / 25, 640, 480, (i // 250) % 4) for i in range(frames))
    (out / "keypoints.csv").write_text(",".join(csv_columns()) + "\n")
    (out / "people.csv").write_text(",".join(PEOPLE_COLUMNS) + "\n")
    page = Page(write_report(out).read_text())
    assert "90,000 frames, 1:00:00.0 of video, 640×480" in page.text
    assert "each point stands for 150 frames" in page.text
    assert len(page.pngs()) == 1  # nobody in the keypoints table: no parts, no tracks
    assert "Nobody was found: no tracks." in page.text
    assert (out / REPORT_NAME).stat().st_size < 100_000


def test_at_most_the_longest_tracks_are_drawn_and_the_page_says_how_many_are_left_out():
    tracks = [Track(i, i * 0.5, i * 0.5 + (i % 7), 1 + (i % 7) * 10, 1.0) for i in range(100)]
    drawn, left = drawn_tracks(tracks)
    assert len(drawn) == MAX_TRACK_BARS == 40 and left == 60
    assert min(k.frames_seen for k in drawn) >= max(k.frames_seen for k in tracks
                                                    if k not in drawn)
    assert [k.first_pts for k in drawn] == sorted(k.first_pts for k in drawn)
    source = SourceData("crowd.mp4", tracks=tracks)
    source.pts.extend(np.arange(0, 60, 0.04))
    source.people.extend([3] * len(source.pts))
    page = Page(build_report(ReportData(Path("out"), [source])))
    assert "(100 tracks); the 40 seen in the most frames are drawn, 60 shorter ones are left out" \
        in page.text
    assert len(page.pngs()) == 2  # people over time and tracks (no keypoints rows: no parts)


def test_names_and_texts_from_the_tables_and_the_summary_are_escaped(tmp_path):
    name = '<script>alert("x")</script><img src="http://example.com/a.png">&.mp4'
    tables = _tables(tmp_path, [_input(tmp_path, "clip", _results(True))])
    for table in (tables.keypoints, tables.frames, tables.people):
        table.write_text(table.read_text().replace("clip", name.replace('"', '""').join('""')))
    summary = _batch_summary(**{name: "done", "<b>lost</b>.mp4": "failed"})
    text = write_report(tables.frames.parent, summary=summary).read_text()
    page = Page(text)
    assert "script" not in page.tags and "b" not in page.tags
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)
    assert len(page.images) == 3
    assert page.h2() == ["Totals", name]
    assert "<b>lost</b>.mp4" in page.text and "&lt;b&gt;lost&lt;/b&gt;.mp4" in text


def test_the_page_asks_for_nothing_beyond_itself(tables):
    text = build_report(read_report_data(tables))
    page = Page(text)
    assert {"link", "script", "iframe", "object", "embed"}.isdisjoint(page.tags)
    csp = [m["content"] for m in page.meta if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'"]
    assert "http:" not in text and "https:" not in text and "url(" not in text


def test_without_track_ids_the_report_says_there_is_no_timeline(tmp_path):
    tables = _tables(tmp_path, [_input(tmp_path, "u", _results(False))])
    page = Page(write_report(tables.frames.parent).read_text())
    assert "The people have no track ids (a run with --no-track): no timeline." in page.text
    assert len(page.pngs()) == 2


def test_a_file_runs_summary_gives_its_speed_and_without_one_it_is_not_recorded(tmp_path):
    tables = _tables(tmp_path, [_input(tmp_path, "walk.mp4", _results(True))])
    summary = {"input": "walk.mp4", "state": "done", "frames_read": 6, "frames_written": 6,
               "seconds": 0.12, "fps": 50.0, "engine": ENGINE, "stages": []}
    page = Page(build_report(read_report_data(tables, summary)))
    assert page.h2() == ["walk.mp4"]  # one file: no totals
    assert "Done: processed at 50.0 FPS, 6 frames in 0.12 s (2.00× real time)" in page.text
    page = Page(build_report(read_report_data(tables)))
    assert "Processing speed: not recorded (no summary of the run was given)." in page.text
    other = dict(summary, input="another.mp4")
    page = Page(build_report(read_report_data(tables, other)))
    assert "The summary does not list 1 of the tables' inputs (it is of another run)" in page.text
    assert "processed at" not in page.text


def test_a_skipped_input_shows_the_speed_it_was_processed_at_then(tables):
    summary = _batch_summary(a="skipped", b="done")
    page = Page(build_report(read_report_data(tables, summary)))
    assert "Skipped: processed at 20.0 FPS, 0 frames in 0.45 s" in page.text
    assert "complete from an earlier run (its figures are from then)" in page.text


def test_the_report_replaces_the_previous_one_whole_and_a_failure_keeps_it(tables, monkeypatch):
    out = tables.frames.parent
    first = write_report(out).read_bytes()
    assert write_report(out).read_bytes() == first  # the same tables: the same page
    replace_file = os.replace

    def full_disk(src, dst):
        if Path(dst).name == REPORT_NAME:
            raise OSError(errno.ENOSPC, "No space left on device")
        replace_file(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    with pytest.raises(OutputError, match="No space left"):
        write_report(out, summary=_batch_summary(a="done", b="done"))
    monkeypatch.undo()
    assert (out / REPORT_NAME).read_bytes() == first
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no partial left


def test_a_folder_without_tables_has_no_report(tmp_path):
    with pytest.raises(InputError, match="no tables"):
        write_report(tmp_path)
    (tmp_path / "frames.csv").write_text("not,our,table\n")
    (tmp_path / "keypoints.csv").write_text("x\n")
    (tmp_path / "people.csv").write_text("y\n")
    with pytest.raises(InputError, match="frames.csv: not a table of a posestream run"):
        write_report(tmp_path)
    assert not (tmp_path / REPORT_NAME).exists()


def test_the_tables_are_found_under_the_names_the_run_gave_them(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("keypoints.csv", "frames.csv", "people.csv"):
        (out / name).write_text("")
    assert find_tables(out).keypoints == out / "keypoints.csv"
    (out / "keypoints.jsonl").write_text("")  # an input keypoints.mp4 took keypoints.csv
    assert find_tables(out) is None
    (out / "keypoints.table.csv").write_text("")
    found = find_tables(out)
    assert (found.keypoints, found.frames, found.people) == (
        out / "keypoints.table.csv", out / "frames.csv", out / "people.csv")


def test_an_input_not_in_the_summary_is_in_the_totals_row_of_the_tables(tables):
    summary = _batch_summary(a="done", b="done", c="interrupted")
    data = read_report_data(tables, summary)
    assert data.others == {"c": Speed("interrupted", 0, 0.45, 20.0, ENGINE, "")}
    assert [s.speed.status for s in data.sources] == ["done", "done"]
