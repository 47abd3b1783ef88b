"""Keypoint log: one JSON object per frame (JSON Lines), written as it goes.

Each line is::

    {"frame": 12, "pts": 0.48, "people": [{"score": 0.8123,
     "keypoints": [[x, y, c], ... 18 parts]}]}

in the 18-part COCO order of ``stages.frames.PART_NAMES``. x and y are
original-frame pixels rounded to 2 decimals, confidences and scores to 4,
pts (seconds) to 6; a missing part is exactly ``[0, 0, 0]``. When tracking
is on, every person also has ``"id"``, its track id (``stages.pose.tracking``).

The log is written to ``.<name>.partial-<pid>-<token>@<host>`` next to the final path and
flushed after every line, so a killed run leaves a valid log of the frames
done under that name (at most the last line cut short; ``read_keypoint_log``
skips it). ``close()`` renames it to the final path, also when the ``with``
block raised.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from stages.outputs.atomic import StreamedTextWriter
from stages.errors import InputError, InputNotFoundError
from stages.frames import Person, Result

log = logging.getLogger(__name__)

_MISSING = [0, 0, 0]


class KeypointLog(StreamedTextWriter):
    """Writes one JSON line per Result, flushed line by line.

    Attributes:
        path: Final log path.
        records_written: Lines written so far.
    """

    def __init__(self, path: str | os.PathLike, *, wall_clock: bool = False) -> None:
        """Create the temporary log file.

        Args:
            path: Final path of the log (conventionally ``.jsonl``).
            wall_clock: Add ``"wall"``, the frame's capture time (Unix
                seconds), to every record (live sources).

        Raises:
            OutputError: The file cannot be created.
        """
        super().__init__(path)
        self.wall_clock = wall_clock

    @property
    def records_written(self) -> int:
        """Lines written so far (one per frame)."""
        return self.frames_written

    def _text(self, result: Result) -> str:
        record = keypoint_record(result)
        if self.wall_clock:
            record["wall"] = round(result.frame.wall, 3)
        return json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"


def keypoint_record(result: Result) -> dict:
    """The JSON-ready record of one frame's result.

    Args:
        result: The frame's result.

    Returns:
        ``{"frame": int, "pts": float, "people": [...]}`` as described in the
        module docstring.
    """
    return {"frame": result.frame.index, "pts": round(float(result.frame.pts), 6),
            "people": [_person_record(p) for p in result.people]}


def _person_record(person: Person) -> dict:
    score = float(person.score)
    record = {"score": round(score, 4) if math.isfinite(score) else 0.0,
              "keypoints": [_part(x, y, c) for x, y, c in person.keypoints.tolist()]}
    if person.track_id is not None:
        record["id"] = int(person.track_id)
    return record


def _part(x: float, y: float, c: float) -> list:
    if not (c > 0 and math.isfinite(x) and math.isfinite(y) and math.isfinite(c)):
        return list(_MISSING)
    return [round(x, 2), round(y, 2), round(c, 4)]


def read_keypoint_log(path: str | os.PathLike) -> list[dict]:
    """Read a keypoint log back.

    A last line cut short (a run killed mid-write) is skipped with a warning.

    Args:
        path: A log written by ``KeypointLog`` (final or partial file).

    Returns:
        The records, in file order.

    Raises:
        InputNotFoundError: The file does not exist.
        InputError: A line other than the last is not valid JSON.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise InputNotFoundError(f"{os.fspath(path)}: no such file") from exc
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                log.warning("%s: last line is incomplete; skipped", os.fspath(path))
                break
            raise InputError(f"{os.fspath(path)}:{number}: not valid JSON ({exc.msg})") from exc
    return records
