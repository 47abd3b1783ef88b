"""A run's tables: the keypoints, frames and people of all its inputs, one table each.

File and batch runs of the command line end by writing, in the output root,
three CSV tables built from the JSON Lines logs (``stages.outputs.keypoint_log``)
of the inputs that finished: ``done``, or ``skipped`` as complete by an earlier
run. An input interrupted, failed or not reached has no row, also when the
run ends by a stop signal. The tables are computed from the logs alone, so
they can be made again from an output folder after the fact
(``write_tables``). ``pandas.read_csv`` reads each as it is: a header, no
index column, numbers as numbers.

``keypoints.csv``
    A row per person per frame, inputs in the run's order; the columns of
    the per-input CSV (``stages.outputs.formats``, ``csv``)::

        source, frame, pts, width, height, id, score, nose_x, nose_y, nose_c, ...

    so its rows are those of the inputs' ``<stem>.csv`` one after another
    (``source``: the input's path relative to the batch root, or the path as
    given in a file run), whether or not that format was asked for.
    ``keypoints.parquet`` holds the same table where pyarrow is importable
    (the ``parquet`` extra), with typed columns: ``source`` string, ``frame``,
    ``width``, ``height`` and ``id`` int64 (``id`` null without tracking), the
    others float64 (null for a part not found). Logs written before records
    had a frame size leave ``width`` and ``height`` empty.

``frames.csv``
    A row per processed frame, people in it or not, so frames with nobody
    show::

        source, frame, pts, width, height, people

``people.csv``
    A row per track per input, in id order::

        source, id, first_frame, last_frame, first_pts, last_pts, duration,
        frames_seen, mean_score, nose_found, neck_found, ... l_ear_found

    ``duration`` is ``last_pts - first_pts`` in seconds (0 for a person seen
    in one frame); ``frames_seen`` counts the frames the person is in (fewer
    than the span when the tracker kept the id over frames the person was
    missed in, ``stages.pose.tracking``); ``mean_score`` is the mean of the
    person's ``score`` (tf-pose's, about 0.3 to 2, as in the JSON Lines);
    ``<part>_found`` is the share, 0 to 1, of those frames in which the part
    was found. Without tracking (``--no-track``) people have no id: nothing
    says that someone in one frame is someone in the next, and a row per
    per-frame position would count positions as persons. So ``people.csv``
    then has its header alone for those inputs.

``keypoints.schema.json``
    What a JSON Lines line holds, the 18 part names in keypoint order
    included (``stages.outputs.keypoint_log.log_schema``).

Names: a table whose name an input at the run's root takes for an output of
its own (an input ``keypoints.mp4``, whose CSV is ``keypoints.csv``) is named
``keypoints.table.csv`` instead (``stages.outputs.file_set.run_file_path``).
The files are written under temporary names and put in place together
(``stages.outputs.atomic.commit_set``); an input's log is read once, as a
stream, and only its own tracks are held in memory.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stages.errors import InputError, OutputError
from stages.frames import NUM_PARTS, PART_NAMES
from stages.outputs.atomic import Staged, commit_set, partial_path, remove_quietly
from stages.outputs.formats import csv_columns, csv_rows
from stages.outputs.keypoint_log import iter_keypoint_log, log_schema

log = logging.getLogger(__name__)

FRAME_COLUMNS = ("source", "frame", "pts", "width", "height", "people")
PEOPLE_COLUMNS = ("source", "id", "first_frame", "last_frame", "first_pts", "last_pts",
                  "duration", "frames_seen", "mean_score",
                  *(f"{name}_found" for name in PART_NAMES))
_INTEGERS = ("frame", "width", "height", "id")  # the other keypoints columns are floats


@dataclass(frozen=True, slots=True)
class TableInput:
    """One finished input of a run.

    Attributes:
        source: Its name in the tables (as its per-input CSV names it).
        log: Its JSON Lines log.
    """

    source: str
    log: Path


@dataclass(frozen=True, slots=True)
class TablePaths:
    """Where a run's tables go (see the module docstring)."""

    keypoints: Path
    frames: Path
    people: Path
    parquet: Path
    schema: Path

    @classmethod
    def of(cls, outdir: str | os.PathLike, items: Iterable = ()) -> TablePaths:
        """The tables of a run into ``outdir`` over ``items``
        (``stages.sources.inputs.BatchItem``), clear of the inputs' own outputs."""
        from stages.outputs.file_set import run_file_path

        items = list(items)
        keypoints = run_file_path(Path(outdir), items, "keypoints", ".csv", "keypoints.table")
        return cls(keypoints=keypoints,
                   frames=run_file_path(Path(outdir), items, "frames", ".csv", "frames.table"),
                   people=run_file_path(Path(outdir), items, "people", ".csv", "people.table"),
                   parquet=keypoints.with_suffix(".parquet"),
                   schema=Path(outdir) / "keypoints.schema.json")


@dataclass(slots=True)
class TableCounts:
    """What the tables hold: inputs, ``frames`` (frames.csv rows), ``rows``
    (keypoints.csv rows), ``people`` (people.csv rows), and whether
    ``keypoints.parquet`` was written."""

    inputs: int = 0
    frames: int = 0
    rows: int = 0
    people: int = 0
    parquet: bool = False


def table_inputs(items: Sequence, reports: dict) -> list[TableInput]:
    """The finished inputs of a batch that have a JSON Lines log, in batch order.

    Args:
        items: ``stages.sources.inputs.BatchItem``s, in batch order.
        reports: By item key, ``stages.jobs.batch.FileReport``s or their ``as_dict()``.
    """
    from stages.outputs.file_set import finished_outputs

    inputs = []
    for item in items:
        outputs = finished_outputs(reports.get(item.key)) or ()
        logs = [p for p in outputs if p.name.endswith(".jsonl")]
        if logs:
            inputs.append(TableInput(item.key, logs[0]))
    return inputs


def parquet_available() -> bool:
    """Whether pyarrow can be imported (``keypoints.parquet`` is written then)."""
    return importlib.util.find_spec("pyarrow") is not None


def write_tables(paths: TablePaths, inputs: Iterable[TableInput], *,
                 parquet: bool | None = None) -> TableCounts:
    """Write the tables of ``inputs`` and put them in place together.

    An input whose log cannot be read back whole is left out of every table
    with a warning; the others are written.

    Args:
        paths: Where they go (``TablePaths.of``).
        inputs: The finished inputs, in order (``table_inputs``).
        parquet: Write ``keypoints.parquet`` too; default: when pyarrow is
            importable.

    Returns:
        What the tables hold.

    Raises:
        OutputError: A table cannot be written (the previous tables stay).
    """
    parquet = parquet_available() if parquet is None else parquet
    counts = TableCounts(parquet=parquet)
    csvs: list[_CsvFile] = []
    staged: list[Staged] = []
    try:
        for path, columns in ((paths.keypoints, csv_columns()), (paths.frames, FRAME_COLUMNS),
                              (paths.people, PEOPLE_COLUMNS)):
            csvs.append(_CsvFile(path, columns))
        for table_input in inputs:
            _add_input(csvs, table_input, counts)
        staged = [table.finish() for table in csvs]
        if parquet:
            staged.append(_parquet(staged[0].tmp, paths.parquet))
        staged.append(_text_file(paths.schema, json.dumps(log_schema(), indent=1) + "\n"))
        commit_set(staged)
    except BaseException as exc:
        for table in csvs:
            table.discard()
        for item in staged:
            remove_quietly(item.tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"{paths.keypoints.parent}: cannot write the tables "
                              f"({exc.strerror or exc})") from exc
        raise
    log.info("%s: %d inputs, %d frames, %d rows, %d people", paths.keypoints, counts.inputs,
             counts.frames, counts.rows, counts.people)
    return counts


def _add_input(csvs: list[_CsvFile], table_input: TableInput, counts: TableCounts) -> None:
    """One input's rows in every table, or, when its log cannot be read back whole,
    in none."""
    keypoints, frames, people = csvs
    marks = [table.mark() for table in csvs]
    tracks: dict[int, _Track] = {}
    added = [0, 0]  # frames, rows
    try:
        for record in iter_keypoint_log(table_input.log):
            rows = csv_rows(record, table_input.source)
            keypoints.writer.writerows(rows)
            frames.writer.writerow([table_input.source, record["frame"], record["pts"],
                                    record.get("width"), record.get("height"),
                                    len(record["people"])])
            added[0] += 1
            added[1] += len(rows)
            for person in record["people"]:
                if "id" in person:
                    tracks.setdefault(person["id"], _Track(record)).see(record, person)
        people.writer.writerows(track.row(table_input.source, key)
                                for key, track in sorted(tracks.items()))
    except (InputError, LookupError, TypeError, ValueError) as exc:
        for table, mark in zip(csvs, marks):
            table.roll_back(mark)
        log.warning("%s: left out of the tables: %s (%s)", table_input.source,
                    table_input.log, exc)
        return
    counts.inputs += 1
    counts.frames += added[0]
    counts.rows += added[1]
    counts.people += len(tracks)


@dataclass(slots=True)
class _Track:
    """One track of one input, as its frames come."""

    first: dict
    last: dict | None = None
    seen: int = 0
    score: float = 0.0
    found: list[int] = field(default_factory=lambda: [0] * NUM_PARTS)

    def see(self, record: dict, person: dict) -> None:
        self.last = record
        self.seen += 1
        self.score += person["score"]
        for i, part in enumerate(person["keypoints"]):
            self.found[i] += part[2] > 0

    def row(self, source: str, key: int) -> list:
        first_pts, last_pts = self.first["pts"], self.last["pts"]
        return [source, key, self.first["frame"], self.last["frame"], first_pts, last_pts,
                round(last_pts - first_pts, 6), self.seen, round(self.score / self.seen, 4),
                *(round(n / self.seen, 4) for n in self.found)]


class _CsvFile:
    """A CSV table written under its partial name; an input's rows can be taken back."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        try:
            self._file = open(self.tmp, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create ({exc.strerror})") from exc
        # as the per-input CSV: None an empty cell, floats in their shortest exact form
        self.writer = csv.writer(self._file, lineterminator="\n")
        self.writer.writerow(columns)

    def mark(self) -> int:
        self._file.flush()
        return self._file.tell()

    def roll_back(self, mark: int) -> None:
        self._file.seek(mark)
        self._file.truncate()

    def finish(self) -> Staged:
        self._file.close()
        return Staged(self.tmp, self.path)

    def discard(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass
        remove_quietly(self.tmp)


def _text_file(path: Path, text: str) -> Staged:
    tmp = partial_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        remove_quietly(tmp)
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from exc
    return Staged(tmp, path)


def _parquet(keypoints_csv: Path, path: Path) -> Staged:
    """``keypoints.parquet`` from the finished ``keypoints.csv``, batch by batch."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv
    from pyarrow import parquet as pq

    types = {name: pa.string() if name == "source" else
             pa.int64() if name in _INTEGERS else pa.float64() for name in csv_columns()}
    schema = pa.schema(list(types.items()))
    tmp = partial_path(path)
    try:
        reader = pa_csv.open_csv(keypoints_csv, convert_options=pa_csv.ConvertOptions(
            column_types=types, strings_can_be_null=False))
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
    except (OSError, pa.ArrowException) as exc:
        remove_quietly(tmp)
        raise OutputError(f"{path}: cannot write ({exc})") from exc
    return Staged(tmp, path)
