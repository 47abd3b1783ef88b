"""One COCO keypoint dataset over a run's inputs: ``OUT/keypoints.coco.json``.

A file or batch run (or a run over several images) with ``--format coco``
writes, besides each input's ``<stem>.coco.json`` results array, one file in
the COCO annotation format (what ``pycocotools.coco.COCO(path)`` loads)::

    {"info": {...}, "licenses": [],
     "images": [{"id": 1000000000, "file_name": "day1/clip.mp4", "frame_index": 0,
                 "pts": 0.0, "width": 1280, "height": 720}, ...],
     "annotations": [{"id": 1, "image_id": 1000000000, "category_id": 1,
                      "keypoints": [x, y, v, ... 17], "num_keypoints": 15,
                      "keypoint_scores": [c, ... 17], "score": 0.81,
                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
                      "track_id": 3}, ...],
     "categories": [{"id": 1, "name": "person", "supercategory": "person",
                     "keypoints": ["nose", "left_eye", ...], "skeleton": [[16, 14], ...]}]}

- ``images``: one entry per processed frame. ``file_name`` is the input's
  path relative to the batch root (``BatchItem.key``: the same path the
  outputs mirror), ``frame_index`` the frame's index in the source (the
  ``frame`` of the JSON Lines log: decode order, 0 for an image) and ``pts``
  its time in seconds when known. A video's frames share its ``file_name``;
  the pair (``file_name``, ``frame_index``) names one frame, and a ground
  truth keyed by the same pair (or, for images, by ``file_name`` alone) maps
  onto these ``id``s for ``COCOeval``. An image's ``id`` is
  ``stages.outputs.formats.coco_image_id(number, frame_index)``: ``number``
  is the input's place in the run (1 in a file run; 1, 2, ... in a batch's
  sorted order, counting the inputs left out too), so ``id // 10**9`` is
  the input and ``id % 10**9`` the frame. They are unique within the file,
  not stable across batches with different inputs. Annotation ``id``s
  count from 1.
- ``annotations``: one per person. ``keypoints`` are the 17 COCO parts
  (ours less the neck: ``stages.outputs.formats.coco_records``) as ``[x, y, v]``
  with ``v`` the COCO visibility flag: 2 for a part found, 0 for one not
  found (then x = y = 0), never 1 (the network does not tell occluded parts
  apart). The confidences are kept in ``keypoint_scores`` (17 values) and
  the person's score in ``score`` (in [0, 1]: ``stages.outputs.formats.coco_score``),
  which also makes the annotations usable as ``COCO.loadRes`` results as
  they are. ``bbox`` is the box around the parts
  found, ``area`` its width x height (COCO's OKS scale; we have no
  segmentation), ``num_keypoints`` the parts found, ``iscrowd`` 0;
  ``track_id`` is there when tracking was on.
- ``categories``: the COCO person category, its 17 keypoint names and the 19
  limbs of its skeleton (1-based, as in ``person_keypoints_val2017.json``).

This differs from the per-input ``<stem>.coco.json`` on purpose: that one is
a results array whose third keypoint value is the confidence (what
``COCOeval`` expects of detections); here the third value is the visibility
flag a dataset must carry. Their ``image_id``s are the same: every results
file of a run loads against the run's dataset,
``COCO(dataset).loadRes(results_path)``. A results file that does not fit
(of an input skipped as complete whose place in the batch changed, or
written before the ids were numbered so) is renumbered when the dataset is
written (``fit_results``).

The file is built as inputs are added without holding them in memory (images
and annotations go to two anonymous temporary files beside it, gone even
after a kill) and appears under its final name, atomically
(``stages.outputs.atomic``), only on ``close()``; until then a previous dataset stays.

``write_batch_dataset`` builds it at the end of a run from what each input
committed, so inputs skipped as already complete count as much as those just
processed: their JSON Lines log when they have one (every frame processed,
also those with nobody, with pts), else their COCO results (only frames with
at least one person have an image entry then, except that an image input
always has its one entry).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from stages.outputs._coco_read_back import fit_results, read_back
from stages.outputs.atomic import AtomicTextFile
from stages.errors import InputError, OutputError, PosestreamError
from stages.outputs.formats import COCO_PERSON, coco_image_id, coco_records

log = logging.getLogger(__name__)

# The person_keypoints category of the COCO annotations, in COCO_PARTS order.
COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)
VISIBLE, MISSING = 2, 0
_COPY_CHUNK = 1 << 20


def person_category() -> dict:
    """The ``categories`` entry: COCO's person with its keypoint names and skeleton."""
    return {"id": COCO_PERSON, "name": "person", "supercategory": "person",
            "keypoints": list(COCO_KEYPOINT_NAMES),
            "skeleton": [list(limb) for limb in COCO_SKELETON]}


class CocoDataset:
    """A COCO keypoint dataset built input by input, written on ``close()``.

    Use it as a context manager: the file is written when the block ends
    normally; when it raises, nothing is written and a previous file stays.

    Args:
        path: Final path (conventionally ``OUT/keypoints.coco.json``); its
            folder must exist.

    Attributes:
        path: Final path.
        images: Image entries added so far.
        annotations: Annotations (people) added so far.

    Raises:
        OutputError: The temporary files cannot be created.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.images = 0
        self.annotations = 0
        self._numbers: set[int] = set()
        self._closed = False
        try:
            self._images = _spool(self.path.parent)
            try:
                self._annotations = _spool(self.path.parent)
            except BaseException:
                self._images.close()
                raise
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create temporary files "
                              f"({exc.strerror})") from exc

    def __enter__(self) -> CocoDataset:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def add(self, file_name: str, width: int, height: int, records: Iterable[dict], *,
            number: int) -> int:
        """Add the frames of one input.

        Args:
            file_name: The input's path relative to the batch root (posix).
            width: Picture width in pixels, as the keypoints count them (a
                record's own ``width`` and ``height`` come first).
            height: Picture height in pixels.
            records: JSON Lines records (``stages.outputs.keypoint_log.keypoint_record``):
                one image entry per record, one annotation per person.
            number: The input's number in the run (1, 2, ...), which makes
                its image ids (``stages.outputs.formats.coco_image_id``).

        Returns:
            The image entries added.

        Raises:
            OutputError: Closed already, or a temporary file cannot be written.
            ValueError: ``number`` was added already, or is below 1.
            InputError: What ``records`` raises (e.g. a damaged file read back).
            Either way nothing of this input stays in the dataset.
        """
        if self._closed:
            raise OutputError(f"{self.path}: add after close")
        if number < 1 or number in self._numbers:
            raise ValueError(f"{self.path}: input number {number} is taken or below 1")
        mark = (self.images, self.annotations, self._images.tell(), self._annotations.tell())
        try:
            for record in records:
                self._add_frame(file_name, width, height, record, number)
        except BaseException as exc:
            self._roll_back(mark)
            if isinstance(exc, OSError) and not isinstance(exc, OutputError):
                raise OutputError(f"{self.path}: cannot write temporary files "
                                  f"({exc.strerror})") from exc
            raise
        self._numbers.add(number)
        return self.images - mark[0]

    def _add_frame(self, file_name: str, width: int, height: int, record: dict,
                   number: int) -> None:
        image_id = coco_image_id(number, int(record["frame"]))
        self.images += 1
        image = {"id": image_id, "file_name": file_name, "frame_index": int(record["frame"]),
                 "width": int(record.get("width") or width),
                 "height": int(record.get("height") or height)}
        if record.get("pts") is not None:
            image["pts"] = record["pts"]
        _append(self._images, image, self.images)
        for entry in coco_records(record, number):
            self.annotations += 1
            _append(self._annotations, annotation(entry, image_id, self.annotations),
                    self.annotations)

    def _roll_back(self, mark: tuple[int, int, int, int]) -> None:
        # An input is added whole or not at all (e.g. its file turned out damaged).
        self.images, self.annotations = mark[0], mark[1]
        for spool, position in ((self._images, mark[2]), (self._annotations, mark[3])):
            spool.seek(position)
            spool.truncate()

    def close(self) -> None:
        """Write the dataset under a partial name and rename it to ``path``; idempotent.

        Raises:
            OutputError: Writing or renaming failed (a previous file stays).
        """
        if self._closed:
            return
        self._closed = True
        out = None
        try:
            info = {"description": "posestream keypoints", "version": "1.0",
                    "date_created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            out = AtomicTextFile(self.path, header='{"info":' + json.dumps(info)
                                 + ',"licenses":[],\n"images":[')
            _copy(self._images, out)
            out.write('\n],\n"annotations":[')
            _copy(self._annotations, out)
            category = json.dumps(person_category(), separators=(",", ":"))
            out.close(footer=f'\n],\n"categories":[{category}]}}\n')
        except OSError as exc:
            if out is not None:
                out.finish(keep=False)
            if isinstance(exc, OutputError):
                raise
            raise OutputError(f"{self.path}: cannot write ({exc.strerror})") from exc
        finally:
            self._images.close()
            self._annotations.close()

    def discard(self) -> None:
        """Drop what was added; write nothing (a previous file stays); idempotent."""
        if not self._closed:
            self._closed = True
            self._images.close()
            self._annotations.close()


def annotation(result: dict, image_id: int, annotation_id: int) -> dict:
    """A dataset annotation from one COCO result (``stages.outputs.formats.coco_records``).

    The result's third keypoint values (confidences) become visibility flags
    (2 found, 0 missing) and go to ``keypoint_scores``; the box is the one
    around the parts found.
    """
    flat = result["keypoints"]
    parts = [flat[i:i + 3] for i in range(0, len(flat), 3)]
    found = [(x, y) for x, y, c in parts if c > 0]
    if found:
        xs, ys = [p[0] for p in found], [p[1] for p in found]
        x0, y0 = min(xs), min(ys)
        w, h = round(max(xs) - x0, 2), round(max(ys) - y0, 2)
        box = [x0, y0, w, h]
    else:
        box, w, h = [0, 0, 0, 0], 0, 0
    entry = {"id": annotation_id, "image_id": image_id, "category_id": COCO_PERSON,
             "keypoints": [v for x, y, c in parts
                           for v in ((x, y, VISIBLE) if c > 0 else (0, 0, MISSING))],
             "num_keypoints": len(found), "keypoint_scores": [c for _, _, c in parts],
             "score": result["score"], "bbox": box, "area": round(w * h, 2), "iscrowd": 0}
    if "track_id" in result:
        entry["track_id"] = result["track_id"]
    return entry


@dataclasses.dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One input of a dataset, as committed.

    Attributes:
        file_name: The input's path relative to the batch root (posix).
        width: Picture width, as displayed (``SourceInfo.width``).
        height: Picture height, as displayed.
        outputs: The input's committed outputs; the keypoints are read back
            from its JSON Lines log, else its COCO results (``read_back``).
        still: The input is an image (one frame, index 0).
        number: The input's place in the run, from 1 (``CocoDataset.add``);
            None: its place among the entries written (``write_batch_dataset``).
    """

    file_name: str
    width: int
    height: int
    outputs: tuple[Path, ...]
    still: bool = False
    number: int | None = None


def dataset_path(outdir: Path, items: Iterable = ()) -> Path:
    """Where a batch's dataset goes: ``outdir/keypoints.coco.json``, unless an
    input's own COCO results have that name (an input ``keypoints.mp4`` at the
    batch's root): then ``outdir/keypoints.dataset.coco.json`` (``-1``, ``-2``
    ... added while taken too), so the two never overwrite each other.

    Args:
        outdir: The batch's output root.
        items: The batch's inputs (``stages.sources.inputs.BatchItem``).
    """
    from stages.outputs.file_set import run_file_path

    return run_file_path(Path(outdir), items, "keypoints", ".coco.json", "keypoints.dataset")


def batch_entries(items: Sequence, reports: dict) -> list[DatasetEntry]:
    """The dataset entries of a batch's completed inputs (done or skipped).

    Args:
        items: ``stages.sources.inputs.BatchItem``s, in batch order.
        reports: By item key, ``stages.jobs.batch.FileReport``s or their
            ``as_dict()`` (a cluster's): ``status`` and ``outputs`` are read;
            inputs not done or skipped (failed, interrupted) are left out.

    Returns:
        Entries with each input's size probed from the file (as displayed);
        an input that can no longer be opened is left out with a warning.
    """
    from stages.sources.video import open_source
    from stages.sources.image import ImageFileSource

    from stages.outputs.file_set import finished_outputs

    entries = []
    for number, item in enumerate(items, 1):
        outputs = finished_outputs(reports.get(item.key))
        if outputs is None:
            continue
        try:
            with open_source(item.path, name=item.key) as source:
                info, still = source.info, isinstance(source, ImageFileSource)
        except PosestreamError as exc:
            log.warning("%s: left out of the COCO dataset: %s", item.key, exc)
            continue
        entries.append(DatasetEntry(item.key, info.width, info.height, outputs, still, number))
    return entries


def write_batch_dataset(path: str | os.PathLike, entries: Iterable[DatasetEntry]) -> CocoDataset:
    """Write the dataset of a batch from its inputs' committed keypoint files.

    An entry whose keypoints cannot be read back is left out with a warning;
    the others are written.

    Args:
        path: The dataset's path (``dataset_path``).
        entries: The completed inputs, in order (``batch_entries``); one
            without a ``number`` takes its place in ``entries``.

    Returns:
        The closed dataset (``images``, ``annotations`` say what it holds).

    Raises:
        OutputError: The dataset cannot be written (a previous one stays).
        ValueError: Two entries have the same number (nothing is written).
    """
    entries = [e if e.number else dataclasses.replace(e, number=n)
               for n, e in enumerate(entries, 1)]
    if len({e.number for e in entries}) < len(entries):
        raise ValueError(f"{path}: two inputs have the same number")
    with CocoDataset(path) as dataset:
        for entry in entries:
            try:
                _fit_entry(entry)
                dataset.add(entry.file_name, entry.width, entry.height, read_back(entry),
                            number=entry.number)
            except InputError as exc:
                log.warning("%s: left out of the COCO dataset: %s", entry.file_name, exc)
            except (LookupError, TypeError, ValueError) as exc:  # JSON, but not our records
                log.warning("%s: left out of the COCO dataset: its keypoint file is not one "
                            "posestream wrote (%s: %s)", entry.file_name, type(exc).__name__, exc)
    log.info("%s: %d images, %d people", dataset.path, dataset.images, dataset.annotations)
    return dataset


def write_for_batch(outdir: str | os.PathLike, items: Sequence, reports: dict) -> CocoDataset:
    """The end of a batch with ``--format coco``: its dataset, in one call.

    ``dataset_path`` + ``batch_entries`` + ``write_batch_dataset``; call it
    when the batch ran to its end (not after a stop: the previous dataset
    then stays, as the inputs in flight keep their previous outputs).

    Args:
        outdir: The batch's output root.
        items: The batch's inputs, in order.
        reports: By item key, ``FileReport``s or their ``as_dict()``.

    Returns:
        The closed dataset; ``path`` says where it went.

    Raises:
        OutputError: It cannot be written (a previous one stays).
    """
    path = dataset_path(Path(outdir), items)
    return write_batch_dataset(path, batch_entries(items, reports))


def _fit_entry(entry: DatasetEntry) -> None:
    for path in entry.outputs:
        if path.name.endswith(".coco.json"):
            try:
                fit_results(path, entry.number)
            except OutputError as exc:  # the dataset is still right; only this file is not
                log.warning("%s: its COCO results keep their image ids: %s", entry.file_name, exc)


def _spool(folder: Path):
    # Anonymous (unlinked) on Linux: nothing is left behind, even after a kill;
    # beside the dataset, so on the disk that will hold it, not in /tmp.
    return tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n", dir=folder)


def _append(spool, element: dict, count: int) -> None:
    spool.write((",\n" if count > 1 else "\n")
                + json.dumps(element, separators=(",", ":"), allow_nan=False))


def _copy(spool, out: AtomicTextFile) -> None:
    spool.flush()
    spool.seek(0)
    while chunk := spool.read(_COPY_CHUNK):
        out.write(chunk)
