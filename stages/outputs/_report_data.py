"""What a run's report shows, read from the run's tables and summary (``stages.outputs.report``).

Each table is read once, as a stream: ``frames.csv`` into two compact arrays
per input (its times and people counts, 16 bytes a frame), ``keypoints.csv``
into counts and a confidence histogram per part, ``people.csv`` as its rows.
Per-frame series are drawn from at most ``MAX_POINTS`` points
(``people_series``) and at most ``MAX_TRACK_BARS`` tracks (``drawn_tracks``),
so a long video makes a report of the same size as a short one.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stages.errors import InputError
from stages.frames import NUM_PARTS, PART_NAMES
from stages.outputs.formats import format_path
from stages.outputs.tables import FRAME_COLUMNS, TablePaths
from stages.settings import FORMATS

MAX_POINTS = 600  # points of a per-frame series drawn: bins of consecutive frames beyond
MAX_TRACK_BARS = 40  # track bars drawn per input: the longest ones
CONFIDENCE_BINS = 40  # the histogram of a part's confidence: bins of 0.025 over [0, 1]
_CHUNK = 4096  # keypoints.csv rows parsed together


@dataclass(frozen=True, slots=True)
class Track:
    """One row of ``people.csv``."""

    id: int
    first_pts: float
    last_pts: float
    frames_seen: int
    mean_score: float


@dataclass(frozen=True, slots=True)
class Speed:
    """How an input was processed, from the run's summary (fields unknown are None)."""

    status: str
    frames: int | None = None
    seconds: float | None = None
    fps: float | None = None
    engine: dict | None = None
    error: str = ""


@dataclass(slots=True)
class SourceData:
    """One input of the tables: its frames, people, parts and tracks."""

    source: str
    pts: array = field(default_factory=lambda: array("d"))
    people: array = field(default_factory=lambda: array("q"))
    width: int | None = None
    height: int | None = None
    person_frames: int = 0  # keypoints.csv rows
    without_id: int = 0  # of which have no track id (--no-track)
    found: np.ndarray = field(default_factory=lambda: np.zeros(NUM_PARTS, np.int64))
    confidence_sum: np.ndarray = field(default_factory=lambda: np.zeros(NUM_PARTS))
    histogram: np.ndarray = field(
        default_factory=lambda: np.zeros((NUM_PARTS, CONFIDENCE_BINS), np.int64))
    tracks: list[Track] = field(default_factory=list)
    speed: Speed | None = None

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def step(self) -> float:
        """The usual time from one frame to the next (0 for a single frame)."""
        if len(self.pts) < 2:
            return 0.0
        return float(np.median(np.diff(np.frombuffer(self.pts, np.float64))))

    @property
    def duration(self) -> float:
        """Seconds of video the frames cover: first to last, plus one frame's time."""
        if not self.pts:
            return 0.0
        return max(self.pts[-1] - self.pts[0], 0.0) + self.step

    @property
    def mean_people(self) -> float:
        return sum(self.people) / len(self.people) if self.people else 0.0

    def part_rates(self) -> np.ndarray:
        """The share, 0 to 1, of this input's person-frames in which each part was found."""
        return self.found / self.person_frames if self.person_frames else np.zeros(NUM_PARTS)

    def part_confidence(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per part, the mean confidence when found and its 10th and 90th percentiles
        (to a bin of the histogram); NaN for a part never found."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.found > 0, self.confidence_sum / np.maximum(self.found, 1), np.nan)
        return mean, _quantile(self.histogram, 0.1), _quantile(self.histogram, 0.9)


@dataclass(slots=True)
class ReportData:
    """Everything a report shows.

    Attributes:
        folder: The run's output folder.
        sources: The inputs of the tables, in the run's order.
        others: Inputs in the summary but not in the tables (interrupted, failed, ...).
        totals: The batch's totals from its summary, or None.
        batch: A batch run (its summary says so, or the tables have several inputs).
        notes: What the report could not use, one sentence each.
    """

    folder: Path
    sources: list[SourceData]
    others: dict[str, Speed] = field(default_factory=dict)
    totals: dict | None = None
    batch: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Series:
    """A per-frame series as drawn: ``t`` seconds and the mean, lowest and highest
    value of the ``per_point`` consecutive frames each point stands for."""

    t: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    per_point: int


def find_tables(outdir: str | os.PathLike) -> TablePaths | None:
    """The tables of the run in ``outdir``, or None when it has none.

    Named as the run named them (``stages.outputs.file_set.run_file_path``): the
    plain name unless the keypoint output of an input at the root took it; the
    inputs at the root are known by their ``.jsonl`` logs, which every run that
    writes tables has.
    """
    outdir = Path(outdir)
    stems = [p.name[:-len(".jsonl")] for p in outdir.glob("*.jsonl")]
    taken = {format_path(fmt, outdir, stem).name for stem in stems for fmt in FORMATS}

    def named(stem: str, alternative: str) -> Path:
        names = itertools.chain([stem, alternative],
                                (f"{alternative}-{n}" for n in itertools.count(1)))
        return outdir / next(n + ".csv" for n in names if n + ".csv" not in taken)

    keypoints = named("keypoints", "keypoints.table")
    paths = TablePaths(keypoints=keypoints, frames=named("frames", "frames.table"),
                       people=named("people", "people.table"),
                       parquet=keypoints.with_suffix(".parquet"),
                       schema=outdir / "keypoints.schema.json")
    if not all(p.is_file() for p in (paths.keypoints, paths.frames, paths.people)):
        return None
    return paths


def read_report_data(tables: TablePaths, summary: dict | None = None) -> ReportData:
    """Read the tables (and the summary, when given) of one run.

    Args:
        tables: The run's tables.
        summary: A batch's ``batch-summary.json``, or a file run's ``--summary-json``.

    Raises:
        InputError: A table cannot be read, or is not one of ours.
    """
    sources: dict[str, SourceData] = {}
    _read_frames(tables.frames, sources)
    _read_keypoints(tables.keypoints, sources)
    _read_people(tables.people, sources)
    data = ReportData(tables.frames.parent, list(sources.values()), batch=len(sources) > 1)
    if summary is not None:
        _add_summary(data, summary)
    return data


def people_series(data: SourceData, max_points: int = MAX_POINTS) -> Series:
    """The people per frame of ``data`` in at most ``max_points`` points."""
    t = np.frombuffer(data.pts, np.float64)
    people = np.frombuffer(data.people, np.int64)
    per_point = max(1, math.ceil(len(t) / max_points))
    if per_point == 1:
        values = people.astype(np.float64)
        return Series(t.copy(), values, values, values, 1)
    starts = np.arange(0, len(t), per_point)
    counts = np.diff(np.append(starts, len(t)))
    return Series(np.add.reduceat(t, starts) / counts,
                  np.add.reduceat(people, starts) / counts,
                  np.minimum.reduceat(people, starts).astype(np.float64),
                  np.maximum.reduceat(people, starts).astype(np.float64), per_point)


def drawn_tracks(tracks: list[Track], cap: int = MAX_TRACK_BARS) -> tuple[list[Track], int]:
    """The tracks to draw, in the order they were first seen, and how many are left out:
    the ``cap`` seen in the most frames (on a tie, the earlier)."""
    chosen = sorted(tracks, key=lambda k: (-k.frames_seen, k.first_pts, k.id))[:cap]
    return sorted(chosen, key=lambda k: (k.first_pts, k.id)), len(tracks) - len(chosen)


def _rows(path: Path, columns: Iterable[str]) -> Iterator[list[str]]:
    """The header of one of the run's tables (checked to have ``columns``), then its rows."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            if not set(columns) <= set(header):
                raise InputError(f"{path}: not a table of a posestream run (its header differs)")
            yield header
            yield from reader
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable table ({exc})") from exc


def _read_frames(path: Path, sources: dict[str, SourceData]) -> None:
    rows = _rows(path, FRAME_COLUMNS)
    if next(rows) != list(FRAME_COLUMNS):
        raise InputError(f"{path}: not a table of a posestream run (its header differs)")
    current = None
    for number, row in enumerate(rows, 2):
        try:
            if current is None or current.source != row[0]:
                current = sources.setdefault(row[0], SourceData(row[0]))
            current.pts.append(float(row[2]))
            current.people.append(int(row[5]))
            if current.width is None and row[3] and row[4]:
                current.width, current.height = int(row[3]), int(row[4])
        except (IndexError, ValueError) as exc:
            raise InputError(f"{path}:{number}: not a row of frames.csv ({exc})") from exc


def _read_keypoints(path: Path, sources: dict[str, SourceData]) -> None:
    rows = _rows(path, ("source", "id", *(f"{name}_c" for name in PART_NAMES)))
    header = next(rows)
    id_column = header.index("id")
    parts = [header.index(f"{name}_c") for name in PART_NAMES]
    chunk: list[list[str]] = []
    current = None
    for row in rows:
        if current is None or current.source != row[0] or len(chunk) >= _CHUNK:
            _add_parts(path, current, chunk)
            current = sources.setdefault(row[0], SourceData(row[0]))
        try:
            chunk.append([row[i] for i in parts])
            current.without_id += not row[id_column]
        except IndexError as exc:
            raise InputError(f"{path}: a row of {len(row)} columns, not {len(header)}") from exc
    _add_parts(path, current, chunk)


def _add_parts(path: Path, data: SourceData | None, chunk: list[list[str]]) -> None:
    """Count a chunk of one input's rows (part confidences as text) into ``data``; empty it."""
    if not chunk:
        return
    try:
        c = np.array(chunk, dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path}: a part confidence that is not a number ({exc})") from exc
    chunk.clear()
    found = c > 0
    data.person_frames += len(c)
    data.found += found.sum(axis=0)
    data.confidence_sum += np.where(found, c, 0.0).sum(axis=0)
    bins = np.minimum((c * CONFIDENCE_BINS).astype(np.int64), CONFIDENCE_BINS - 1)
    cells = (np.arange(NUM_PARTS) * CONFIDENCE_BINS + bins)[found]
    data.histogram += np.bincount(cells, minlength=NUM_PARTS * CONFIDENCE_BINS).reshape(
        NUM_PARTS, CONFIDENCE_BINS)


def _read_people(path: Path, sources: dict[str, SourceData]) -> None:
    names = ("source", "id", "first_pts", "last_pts", "frames_seen", "mean_score")
    rows = _rows(path, names)
    header = next(rows)
    at = {name: header.index(name) for name in names}
    for number, row in enumerate(rows, 2):
        try:
            track = Track(int(row[at["id"]]), float(row[at["first_pts"]]),
                          float(row[at["last_pts"]]), int(row[at["frames_seen"]]),
                          float(row[at["mean_score"]]))
        except (IndexError, ValueError) as exc:
            raise InputError(f"{path}:{number}: not a row of people.csv ({exc})") from exc
        sources.setdefault(row[at["source"]], SourceData(row[at["source"]])).tracks.append(track)


def _add_summary(data: ReportData, summary: dict) -> None:
    """Give each input its speed from ``summary``, unless the summary is of other inputs."""
    speeds, totals = _speeds(summary)
    if speeds is None:
        data.notes.append("The summary is not one of a file or batch run: no processing speed.")
        return
    missing = [s.source for s in data.sources if s.source not in speeds]
    if missing:
        data.notes.append(f"The summary does not list {len(missing)} of the tables' inputs "
                          "(it is of another run): no processing speed.")
        return
    for source in data.sources:
        source.speed = speeds.pop(source.source)
    data.others = speeds
    data.totals = totals
    data.batch = data.batch or totals is not None


def _speeds(summary: dict) -> tuple[dict[str, Speed] | None, dict | None]:
    """The speed of each input a summary lists, and a batch's totals."""
    if isinstance(summary.get("files"), list):
        speeds = {}
        for row in summary["files"]:
            if isinstance(row, dict) and isinstance(row.get("input"), str):
                speeds[row["input"]] = Speed(str(row.get("status", "")), row.get("frames"),
                                             row.get("seconds"), row.get("fps"),
                                             row.get("engine"), str(row.get("error") or ""))
        totals = summary.get("totals")
        return speeds, totals if isinstance(totals, dict) else None
    if isinstance(summary.get("input"), str) and "frames_written" in summary:
        return {summary["input"]: Speed(str(summary.get("state", "")), summary["frames_written"],
                                        summary.get("seconds"), summary.get("fps"),
                                        summary.get("engine"))}, None
    return None, None


def _quantile(histogram: np.ndarray, q: float) -> np.ndarray:
    """Per row of ``histogram``, the centre of the bin where the share ``q`` of it is reached."""
    total = histogram.sum(axis=1)
    cumulative = np.cumsum(histogram, axis=1)
    index = (cumulative < (q * total)[:, None]).sum(axis=1)
    centres = (np.minimum(index, CONFIDENCE_BINS - 1) + 0.5) / CONFIDENCE_BINS
    return np.where(total > 0, centres, np.nan)
