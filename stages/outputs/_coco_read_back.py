"""What a COCO dataset reads back from an input's committed keypoint files, and how a
COCO results file is fitted to its input's place in a run (``stages.outputs.coco_dataset``)."""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from stages.errors import InputError
from stages.outputs.atomic import AtomicTextFile
from stages.outputs.formats import COCO_PARTS, IMAGE_ID_STRIDE, coco_image_id, coco_score

log = logging.getLogger(__name__)


def fit_results(path: str | os.PathLike, number: int) -> bool:
    """Make the COCO results at ``path`` those of the run's input ``number``: their image
    ids ``coco_image_id(number, frame)``; in place (temporary file, then rename).

    A file whose first result has such an id is left as it is (a writer numbers
    a whole file alike). A file written before the ids were numbered (ids
    below ``IMAGE_ID_STRIDE``: the frame indices) also has its scores halved
    (``stages.outputs.formats.coco_score``), as a new one has them.

    Returns:
        Whether the file was rewritten.

    Raises:
        InputError: The file is not a results array our writer wrote.
        OutputError: It cannot be rewritten (it stays as it was).
    """
    path = Path(path)
    results = _results(path)
    first = next(results, None)
    if first is None or first["image_id"] // IMAGE_ID_STRIDE == number:
        return False
    old = first["image_id"] < IMAGE_ID_STRIDE
    out = AtomicTextFile(path, header="[")
    try:
        for count, result in enumerate(itertools.chain([first], results), 1):
            result["image_id"] = coco_image_id(number, result["image_id"] % IMAGE_ID_STRIDE)
            if old:
                result["score"] = coco_score(result["score"])
            out.write((",\n" if count > 1 else "\n")
                      + json.dumps(result, separators=(",", ":"), allow_nan=False))
        out.close(footer="\n]\n")
    except BaseException:
        out.finish(keep=False)
        raise
    log.info("%s: COCO image ids renumbered for input %d", path, number)
    return True


def read_back(entry) -> Iterator[dict]:
    """The JSON Lines records of an input, read back from its committed outputs
    (``entry``: a ``stages.outputs.coco_dataset.DatasetEntry``).

    From the JSON Lines log when there is one (every frame, with pts), else
    from the COCO results array (frames with people only; an image's one
    frame always).

    Raises:
        InputError: No readable keypoint file among the outputs, or a line of
            one is not what our writers write.
    """
    jsonl = [p for p in entry.outputs if p.name.endswith(".jsonl")]
    coco = [p for p in entry.outputs if p.name.endswith(".coco.json")]
    if jsonl:
        records = _read_jsonl(jsonl[0])
    elif coco:
        records = _read_results(coco[0])
    else:
        raise InputError(f"{entry.file_name}: no .jsonl or .coco.json output to read back")
    if not entry.still:
        return records
    return _at_least_frame_zero(records)


def _at_least_frame_zero(records: Iterator[dict]) -> Iterator[dict]:
    seen = False
    for record in records:
        seen = True
        yield record
    if not seen:
        yield {"frame": 0, "pts": 0.0, "people": []}


def _read_jsonl(path: Path) -> Iterator[dict]:
    for number, line in _lines(path):
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc


def _read_results(path: Path) -> Iterator[dict]:
    """Records rebuilt from a ``CocoWriter`` array (one element a line), grouped by
    frame; the neck, which COCO lacks, comes back as a missing part."""
    elements = _results(path)
    for image_id, group in itertools.groupby(elements, key=lambda r: r["image_id"]):
        yield {"frame": image_id % IMAGE_ID_STRIDE, "people": [_person(r) for r in group]}


def _results(path: Path) -> Iterator[dict]:
    for number, line in _lines(path):
        text = line.strip().rstrip(",")
        if text in ("[", "]"):
            continue
        try:
            yield json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not a COCO results line ({exc.msg})") from exc


def _person(result: dict) -> dict:
    flat = result["keypoints"]
    parts = [[0, 0, 0] for _ in range(len(COCO_PARTS) + 1)]
    for k, ours in enumerate(COCO_PARTS):
        parts[ours] = flat[3 * k:3 * k + 3]
    person = {"score": 2 * result["score"], "keypoints": parts}  # coco_score halved it
    if "track_id" in result:
        person["id"] = result["track_id"]
    return person


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, line
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
