"""A run's report: ``OUT/report.html``, one self-contained page to look at.

File and batch runs of the command line end by writing it in the output root,
after the tables (``stages.outputs.tables``), from the tables and the run's
summary alone, so it can be made again from an output folder:
``posestream-report OUT`` (``stages.cli.report``). It holds:

- for a batch, the totals first: files (by status), frames, hours of video,
  tracks and people per frame, processing speed; then a row per input;
- per input: people per frame over time, a timeline of the tracks (a bar per
  track id from first to last seen), how often each part was found and its
  confidence when found, and the processing speed (from the summary).

The page needs nothing beside it: the pictures are PNGs drawn with matplotlib
(``stages.outputs._report_plots``) inside the page as ``data:`` URIs, the style
is inline, there is no script, and its Content-Security-Policy lets it load
nothing else. Every name and text from the tables or the summary is escaped.
It is bounded for long videos and big batches: a series is drawn from at most
``MAX_POINTS`` points, at most ``MAX_TRACK_BARS`` tracks per input and the
plots of at most ``MAX_INPUTS_DRAWN`` inputs (the page says what it left out).
The file is written under a temporary name and put in place whole.
"""

from __future__ import annotations

import base64
import html
import logging
import os
from pathlib import Path

from stages.errors import InputError, OutputError
from stages.outputs import _report_plots as plots
from stages.outputs._report_data import (MAX_POINTS, MAX_TRACK_BARS, ReportData, SourceData,
                                         Speed, drawn_tracks, find_tables, people_series,
                                         read_report_data)
from stages.outputs.atomic import commit, partial_path, remove_quietly
from stages.outputs.tables import TablePaths

__all__ = ["MAX_INPUTS_DRAWN", "MAX_POINTS", "MAX_TRACK_BARS", "REPORT_NAME", "build_report",
           "find_tables", "read_report_data", "write_report"]

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
MAX_INPUTS_DRAWN = 50  # inputs whose plots a report draws; the others have their row
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232a;
       margin: 0 auto; padding: 1.5em 1.2em 3em; max-width: 920px; background: #fafbfc; }
h1 { font-size: 1.6em; margin: 0 0 .2em; } h2 { font-size: 1.25em; margin: 1.8em 0 .4em;
     overflow-wrap: anywhere; border-bottom: 1px solid #d8dde3; padding-bottom: .2em; }
h3 { font-size: 1em; margin: 1.2em 0 .3em; }
.meta, figcaption, .note { color: #56606b; font-size: .9em; }
dl.totals { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr));
            gap: .6em; margin: .8em 0; }
dl.totals div { background: #fff; border: 1px solid #d8dde3; border-radius: 6px;
                padding: .5em .7em; }
dl.totals dt { color: #56606b; font-size: .85em; } dl.totals dd { margin: 0; font-size: 1.15em; }
table { border-collapse: collapse; width: 100%; font-size: .9em; background: #fff; }
th, td { border: 1px solid #d8dde3; padding: .3em .5em; text-align: right; }
th:first-child, td:first-child { text-align: left; overflow-wrap: anywhere; }
figure { margin: .6em 0 1em; } figure img { max-width: 100%; height: auto;
         border: 1px solid #d8dde3; background: #fff; }
.facts { margin: .2em 0; }
"""


def write_report(outdir: str | os.PathLike, *, tables: TablePaths | None = None,
                 summary: dict | None = None) -> Path:
    """Write ``outdir/report.html`` from the run's tables (and summary) and put it in place.

    Args:
        outdir: The run's output folder.
        tables: Its tables; default: those found in ``outdir`` (``find_tables``).
        summary: The run's summary (``batch-summary.json``, or a file run's
            ``--summary-json``) for the processing speed; without it the
            report says the speed is not known.

    Returns:
        The report's path.

    Raises:
        InputError: ``outdir`` has no tables, or one cannot be read.
        OutputError: The report cannot be written (the previous one stays).
        ImportError: matplotlib is not installed.
    """
    outdir = Path(outdir)
    tables = tables or find_tables(outdir)
    if tables is None:
        raise InputError(f"{outdir}: no tables (keypoints.csv, frames.csv, people.csv) to "
                         "report on: a file or batch run with the .jsonl logs writes them")
    data = read_report_data(tables, summary)
    page = build_report(data)
    path = outdir / REPORT_NAME
    tmp = partial_path(path)
    try:
        tmp.write_text(page, encoding="utf-8")
        commit(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    log.info("%s: %d inputs, %d bytes", path, len(data.sources), len(page))
    return path


def build_report(data: ReportData) -> str:
    """The report's page (see the module docstring) as text."""
    title = f"posestream report: {data.folder.name or data.folder}"
    body = [f"<h1>posestream report</h1>\n<p class=\"meta\">{_e(data.folder)}</p>"]
    body += [f'<p class="note">{_e(note)}</p>' for note in data.notes]
    if data.batch:
        body.append(_totals(data))
    for number, source in enumerate(data.sources[:MAX_INPUTS_DRAWN], 1):
        body.append(_input_section(number, source))
    left = len(data.sources) - MAX_INPUTS_DRAWN
    if left > 0:
        body.append(f'<p class="note">The plots of {left} more inputs are left out to keep the '
                    f"report small (at most {MAX_INPUTS_DRAWN}); their figures are in the table "
                    "of totals and in the tables beside this page.</p>")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _totals(data: ReportData) -> str:
    """The batch's totals: a few figures, then a row per input."""
    sources = data.sources
    frames = sum(s.frames for s in sources)
    video = sum(s.duration for s in sources)
    people = sum(sum(s.people) for s in sources)
    tracks = sum(len(s.tracks) for s in sources)
    files = _files_figure(data)
    figures = [("files", files), ("frames", f"{frames:,}"),
               ("hours of video", f"{video / 3600:.3f} h ({_clock(video)})"),
               ("people", f"{tracks:,} tracks; {people / frames if frames else 0:.2f} per frame"),
               ("processing speed", _batch_speed(data, video))]
    cells = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in figures)
    head = "".join(f"<th>{h}</th>" for h in ("input", "status", "frames", "video", "tracks",
                                             "people/frame", "FPS", "× real time"))
    rows = [_overview_row(n, s) for n, s in enumerate(sources, 1)]
    rows += [f"<tr><td>{_e(name)}</td><td>{_e(speed.status)}</td>"
             f'<td colspan="6">{_e(_not_in_tables(speed))}</td></tr>'
             for name, speed in data.others.items()]
    return (f'<section id="totals">\n<h2>Totals</h2>\n<dl class="totals">{cells}</dl>\n'
            f"<table>\n<tr>{head}</tr>\n" + "\n".join(rows) + "\n</table>\n</section>")


def _files_figure(data: ReportData) -> str:
    totals = data.totals or {}
    files = totals.get("files", len(data.sources) + len(data.others))
    counts = [f"{totals[s]} {s}" for s in ("done", "skipped", "failed", "interrupted", "pending")
              if isinstance(totals.get(s), int) and totals[s]]
    return f"{files}" + (f" ({', '.join(counts)})" if counts else "")


def _batch_speed(data: ReportData, video: float) -> str:
    totals = data.totals
    if not totals or not isinstance(totals.get("seconds"), (int, float)):
        return "not recorded"
    ran = sum(s.duration for s in data.sources if s.speed and s.speed.status != "skipped")
    line = f"{totals.get('fps') or 0:.1f} FPS over {totals['seconds']:.1f} s"
    if totals["seconds"] > 0 and ran:
        line += f" ({ran / totals['seconds']:.2f}× real time)"
    return line


def _overview_row(number: int, source: SourceData) -> str:
    speed = source.speed
    name = _e(source.source)
    if number <= MAX_INPUTS_DRAWN:
        name = f'<a href="#input-{number}">{name}</a>'
    fps = _figure(speed.fps, 1) if speed else "-"
    cells = [speed.status if speed else "-", f"{source.frames:,}", _clock(source.duration),
             f"{len(source.tracks):,}", f"{source.mean_people:.2f}", fps,
             _figure(_real_time(source), 2)]
    return f"<tr><td>{name}</td>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"


def _input_section(number: int, source: SourceData) -> str:
    """One input: its facts, speed and three pictures."""
    size = f"{source.width}×{source.height}" if source.width else "size not recorded"
    facts = (f"{source.frames:,} frames, {_clock(source.duration)} of video, {size}; "
             f"{len(source.tracks):,} tracks; {source.mean_people:.2f} people per frame on "
             f"average, at most {max(source.people, default=0)}")
    parts = [f'<section class="input" id="input-{number}">\n<h2>{_e(source.source)}</h2>',
             f'<p class="facts">{_e(facts)}</p>',
             f'<p class="facts">{_e(_speed_line(source))}</p>',
             _people_figure(source), _tracks_figure(source), _parts_figure(source), "</section>"]
    return "\n".join(p for p in parts if p)


def _people_figure(source: SourceData) -> str:
    if not source.frames:
        return ""
    series = people_series(source)
    png = plots.people_png(series.t, series.mean, series.low, series.high,
                           (source.pts[0], source.pts[-1]), series.per_point > 1)
    caption = "People in each frame over the video's time"
    if series.per_point > 1:
        caption += (f"; each point stands for {series.per_point} frames: the line is their "
                    "mean, the band their lowest to highest count")
    return _picture("People over time", png, caption)


def _tracks_figure(source: SourceData) -> str:
    if not source.tracks:
        why = ("The people have no track ids (a run with --no-track): no timeline."
               if source.without_id else "Nobody was found: no tracks.")
        return f'<h3>Tracks</h3>\n<p class="note">{_e(why)}</p>'
    drawn, left = drawn_tracks(source.tracks)
    png = plots.tracks_png(drawn, (source.pts[0], source.pts[-1]) if source.pts else (0, 0),
                           source.step)
    caption = f"Each track from first to last seen ({len(source.tracks):,} tracks)"
    if left:
        caption += (f"; the {len(drawn)} seen in the most frames are drawn, {left:,} shorter "
                    "ones are left out")
    return _picture("Tracks", png, caption)


def _parts_figure(source: SourceData) -> str:
    if not source.person_frames:
        return ""
    mean, low, high = source.part_confidence()
    png = plots.parts_png(source.part_rates(), mean, low, high)
    caption = (f"How often each part was found in the {source.person_frames:,} person-frames, "
               "and its confidence when found (dot: mean; line: 10th to 90th percentile)")
    return _picture("Parts", png, caption)


def _picture(title: str, png: bytes, caption: str) -> str:
    width, height = plots.png_size(png)
    data = base64.b64encode(png).decode("ascii")
    return (f"<h3>{_e(title)}</h3>\n<figure><img src=\"data:image/png;base64,{data}\" "
            f'width="{width}" height="{height}" alt="{_e(title)}">'
            f"<figcaption>{_e(caption)}.</figcaption></figure>")


def _speed_line(source: SourceData) -> str:
    speed = source.speed
    if speed is None:
        return "Processing speed: not recorded (no summary of the run was given)."
    if speed.seconds is None or speed.fps is None:
        return f"{speed.status.capitalize()}; processing speed not recorded."
    frames = f"{speed.frames:,}" if isinstance(speed.frames, int) else "its"
    line = (f"{speed.status.capitalize()}: processed at {speed.fps:.1f} FPS, "
            f"{frames} frames in {speed.seconds:.2f} s")
    if (real := _real_time(source)) is not None:
        line += f" ({real:.2f}× real time)"
    if speed.status == "skipped":
        line += ", complete from an earlier run (its figures are from then)"
    if isinstance(speed.engine, dict):
        line += f"; engine: {_engine(speed.engine)}"
    return line + "."


def _real_time(source: SourceData) -> float | None:
    """Seconds of video processed per second of processing."""
    speed = source.speed
    if speed is None or not speed.seconds or not source.duration:
        return None
    return source.duration / speed.seconds


def _engine(engine: dict) -> str:
    devices = engine.get("devices") or []
    workers = f"{len(devices)} worker{'s' if len(devices) != 1 else ''}"
    where = ", ".join(dict.fromkeys(map(str, devices))) or "?"
    return (f"{engine.get('backend', '?')} {engine.get('precision') or ''} on {where} "
            f"({workers}), {engine.get('model', '?')} at {engine.get('resolution', '?')}")


def _not_in_tables(speed: Speed) -> str:
    text = "not in the tables: it did not finish in this run"
    return text + (f" ({speed.error})" if speed.error else "")


def _figure(value: float | None, places: int) -> str:
    return "-" if value is None else f"{value:.{places}f}"


def _clock(seconds: float) -> str:
    """``h:mm:ss.s``."""
    tenths = round(seconds * 10)
    return f"{tenths // 36000}:{tenths // 600 % 60:02d}:{tenths % 600 / 10:04.1f}"


def _e(value: object) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape(os.fspath(value) if isinstance(value, Path) else str(value), quote=True)
