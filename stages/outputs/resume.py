"""Resumable work on one input: its work folder, pieces and checkpoints.

A file or batch run writes each video input's outputs in its **work folder**,
``OUT/<folder>/.partial/<stem>/``, hidden, and under names that no glob of
the final names matches:

- ``<stem>.jsonl.partial``, ``<stem>.csv.partial``, ``<stem>.coco.json.partial``
  and the folder ``<stem>.openpose.partial/``: the keypoint files as they
  are written, flushed frame by frame;
- ``piece-000001.mp4.partial``, ...: the annotated video in pieces
  (``stages.outputs.pieces``);
- ``checkpoint.json``: the last **checkpoint**.

Pieces: the output is cut every ``PIECE_SECONDS`` (30) of source time, at the
first frame whose pts is in a later 30 s slot of the stream's clock than the
frame before (``starts_piece``; a pure function of the pts, so every run cuts
at the same frames). At a cut the video piece is finished (its encoder
flushed, a key frame starts the next), the keypoint files are flushed to the
disk (``fsync``) and ``checkpoint.json`` is replaced, atomically, by a
record of everything a run needs to go on from the frame that starts the
next piece: the input's identity and the settings that shape the outputs
(the same as a manifest's, plus the frame selection and the input's number
in the run), the frames and people written, the index and pts of that next
frame, the pieces, the size and counts of each keypoint file, and the
tracker's state right before that frame (``stages.pose.tracking``).

30 s because it bounds what a kill costs (at most one piece: 30 s of video,
a minute or two of work at a few frames per second) while keeping the cost
of a cut small: an extra key frame every 30 s adds about 1% to an H.264 video
whose encoder puts one every 10 s anyway, a file per 30 s is few (240 for a
two-hour recording), and a few ``fsync`` calls per 30 s of video are nothing.

A later run of the same input with the same settings **resumes**: it cuts
each keypoint file back to its checkpointed size, removes what the
checkpoint does not name (the piece being written when the run stopped),
decodes the input up to the next frame without processing the frames
before it, restores the tracker, and goes on. Every piece and every byte of
the keypoint files is then what an uninterrupted run writes, so the joined
outputs are the same. A checkpoint whose input or settings differ, whose
files are missing or short, or a run with ``--force``, starts over.

One writer per work folder: a run holds an exclusive ``flock`` on its
``lock`` file while it writes. A second run of the same input at the same
time works in a private folder of its own (``.partial/.<stem>.work-<pid>-...``),
without checkpoints, and removes it when done (or a later run does, once
its process is dead).

When the input completes, the outputs are put in place as a set
(``stages.outputs.file_set``) and the work folder is removed, with
``.partial/`` once empty. When it does not, the work folder stays: it is
where the outputs of the interrupted input are (the batch's summary lists
it), and where the next run resumes from.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.errors import OutputError
from stages.outputs.atomic import clean_dead_partials, partial_path, remove_quietly, short_name
from stages.outputs.formats import (CocoWriter, CsvWriter, KeypointWriter, OpenPoseWriter,
                                    format_path)
from stages.outputs.keypoint_log import KeypointLog
from stages.outputs.pieces import Piece, PieceVideo
from stages.sources.file_source import SourceInfo

log = logging.getLogger(__name__)

WORK_FOLDER = ".partial"
PIECE_SECONDS = 30.0
CHECKPOINT = "checkpoint.json"
LOCK = "lock"
VERSION = 1


def piece_of(pts: float) -> int:
    """The piece a frame at ``pts`` seconds (stream time) belongs to."""
    return math.floor(pts / PIECE_SECONDS)


def starts_piece(previous_pts: float, pts: float) -> bool:
    """Whether a frame at ``pts`` starts a new piece after one at ``previous_pts``."""
    return piece_of(pts) > piece_of(previous_pts)


def work_folder(outdir: Path, stem: str) -> Path:
    """The work folder of the input whose outputs are named ``stem`` in ``outdir``
    (a long stem shortened as ``stages.outputs.atomic.short_name`` does)."""
    return Path(outdir) / WORK_FOLDER / short_name(stem)


def work_name(fmt: str, stem: str) -> str:
    """The name of format ``fmt``'s file in the work folder (``clip.jsonl.partial``; a
    long name shortened as ``stages.outputs.atomic.short_name`` does)."""
    return short_name(format_path(fmt, Path("."), stem).name) + ".partial"


def resume_settings(output_settings: dict, *, frame_step: int, start: float | None,
                    end: float | None, video_stream: int | None, number: int) -> dict:
    """What a checkpoint must share with a run that resumes it: the settings that shape
    the outputs (``stages.outputs.manifest.output_settings``), which frames are taken
    and the input's number in the run (its COCO image ids)."""
    return {**output_settings, "frame_step": frame_step, "start": start, "end": end,
            "video_stream": video_stream, "number": number}


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state of an input's outputs at a cut (see the module docstring).

    Attributes:
        input: The input's identity (``stages.outputs.manifest.input_identity``).
        settings: ``resume_settings`` of the run that wrote it.
        frames: Frames written before the cut.
        people: People in them.
        next_index: Index of the frame that starts the next piece.
        next_pts: Its pts, seconds.
        pieces: The video's committed pieces (none without a video).
        files: The state of each keypoint format's file (``state()`` of its writer).
        tracker: The tracker's state right before the next frame (None without tracking).
    """

    input: dict
    settings: dict
    frames: int
    people: int
    next_index: int
    next_pts: float
    pieces: tuple[Piece, ...]
    files: dict
    tracker: dict | None

    def as_dict(self) -> dict:
        """JSON-ready record."""
        return {"version": VERSION, "input": self.input, "settings": self.settings,
                "frames": self.frames, "people": self.people, "next_index": self.next_index,
                "next_pts": self.next_pts, "pieces": [p.as_dict() for p in self.pieces],
                "files": self.files, "tracker": self.tracker}

    @classmethod
    def from_dict(cls, data: dict) -> Checkpoint:
        """The checkpoint a record describes.

        Raises:
            KeyError, TypeError, ValueError: Not a record of this version.
        """
        if data.get("version") != VERSION:
            raise ValueError(f"checkpoint version {data.get('version')!r}")
        return cls(input=dict(data["input"]), settings=dict(data["settings"]),
                   frames=int(data["frames"]), people=int(data["people"]),
                   next_index=int(data["next_index"]), next_pts=float(data["next_pts"]),
                   pieces=tuple(Piece.from_dict(p) for p in data["pieces"]),
                   files=dict(data["files"]), tracker=data["tracker"])


class Work:
    """The work folder of one input, held by this run (see the module docstring).

    Open it with ``Work.open``; ``checkpoint`` is then the checkpoint to resume
    from (None: start at the first frame).

    Attributes:
        folder: The work folder.
        checkpoint: Where the run goes on from, or None; then the last one this run
            recorded.
        private: The folder is this run's own (another run holds the input's):
            no checkpoint is written.
    """

    def __init__(self, folder: Path, stem: str, identity: dict, settings: dict,
                 checkpoint: Checkpoint | None, lock: int | None) -> None:
        self.folder = folder
        self.stem = stem
        self.checkpoint = checkpoint
        self.private = lock is None
        self._identity = identity
        self._settings = settings
        self._lock = lock
        self._resumed = (checkpoint.frames, checkpoint.people) if checkpoint else (0, 0)

    @classmethod
    def open(cls, outdir: Path, stem: str, identity: dict, settings: dict, *,
             restart: bool = False) -> Work:
        """Take the work folder of input ``stem`` in ``outdir`` and find its checkpoint.

        Args:
            outdir: The input's output folder.
            stem: Its outputs' stem (``stages.outputs.file_set.output_stem``).
            identity: The input's identity.
            settings: ``resume_settings`` of this run.
            restart: Start over even from a checkpoint that fits (``--force``).

        Raises:
            OutputError: The folder cannot be made.
        """
        folder = work_folder(outdir, stem)
        root = folder.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            clean_dead_partials(root)  # private folders of dead runs
            lock = _lock(folder)
            if lock is None:
                folder = partial_path(folder, "work")
                folder.mkdir()
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create the work folder ({exc.strerror})") from exc
        checkpoint = None
        if lock is not None and not restart:
            checkpoint = _usable(folder, stem, identity, settings)
        work = cls(folder, stem, identity, settings, checkpoint, lock)
        work._tidy()
        if checkpoint is not None:
            log.info("%s: resuming after %d frames, at frame %d (%.3f s)", folder,
                     checkpoint.frames, checkpoint.next_index, checkpoint.next_pts)
        return work

    @property
    def next_index(self) -> int | None:
        """The index of the first frame to process, when resuming."""
        return None if self.checkpoint is None else self.checkpoint.next_index

    @property
    def resumed_frames(self) -> int:
        """Frames the checkpoint this run resumed from holds (0 without one)."""
        return self._resumed[0]

    @property
    def resumed_people(self) -> int:
        """People in those frames."""
        return self._resumed[1]

    def _tidy(self) -> None:
        """Remove what the checkpoint does not name (all but the lock without one)."""
        keep = {LOCK}
        if self.checkpoint is not None:
            keep |= {CHECKPOINT, *(p.name for p in self.checkpoint.pieces),
                     *(work_name(fmt, self.stem) for fmt in self.checkpoint.files)}
        for name in os.listdir(self.folder):
            if name not in keep:
                remove_quietly(self.folder / name)

    def writers(self, formats: Sequence[str], outdir: Path, *, number: int,
                still: bool = False) -> list[KeypointWriter]:
        """One writer per format, writing in this folder, continued from the checkpoint.

        Raises:
            OutputError: A file cannot be created (those opened are closed).
        """
        files = self.checkpoint.files if self.checkpoint is not None else {}
        writers: list[KeypointWriter] = []
        try:
            for fmt in dict.fromkeys(formats):
                path = format_path(fmt, Path(outdir), self.stem, still=still)
                tmp, resume = self.folder / work_name(fmt, self.stem), files.get(fmt)
                if fmt == "jsonl":
                    writers.append(KeypointLog(path, tmp=tmp, resume=resume))
                elif fmt == "csv":
                    writers.append(CsvWriter(path, tmp=tmp, resume=resume))
                elif fmt == "coco":
                    writers.append(CocoWriter(path, number=number, tmp=tmp, resume=resume))
                else:
                    writers.append(OpenPoseWriter(path, self.stem, tmp=tmp, resume=resume))
        except BaseException:
            for writer in writers:
                writer.finish()
            raise
        return writers

    def video(self, info: SourceInfo, *, preset: str) -> PieceVideo:
        """The annotated video's writer, continuing after the checkpoint's pieces."""
        pieces = self.checkpoint.pieces if self.checkpoint is not None else ()
        return PieceVideo(self.folder, info, preset=preset, pieces=pieces)

    def commit(self, *, frames: int, people: int, next_index: int, next_pts: float,
               video: PieceVideo | None, writers: Sequence[KeypointWriter],
               tracker: dict | None, record: bool = True) -> None:
        """Cut: finish the video's piece and record a checkpoint (unless ``record`` is
        False, or the folder is private).

        Raises:
            OutputError: The piece or a file cannot be finished or flushed.
        """
        if video is not None:
            video.cut()
        if self.private or not record:
            return
        files = {_format_of(writer, self.stem): writer.state() for writer in writers}
        checkpoint = Checkpoint(self._identity, self._settings, frames, people, next_index,
                                next_pts, tuple(video.pieces) if video is not None else (),
                                files, tracker)
        _write_json(self.folder / CHECKPOINT, checkpoint.as_dict())
        self.checkpoint = checkpoint

    def release(self) -> None:
        """Let the folder go and keep it (a private one is removed); idempotent."""
        if self.private:
            remove_quietly(self.folder)
        self._unlock()

    def close(self) -> None:
        """Let the folder go: kept when it holds a checkpoint, else removed; idempotent."""
        if self.checkpoint is not None and not self.private:
            self.release()
        else:
            self.remove()

    def remove(self) -> None:
        """Remove the folder, and ``.partial/`` if nothing else is in it; idempotent."""
        remove_quietly(self.folder)
        self._unlock()
        try:
            self.folder.parent.rmdir()
        except OSError:
            pass  # another input's work is there, or it is gone already

    def _unlock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)


def _format_of(writer: KeypointWriter, stem: str) -> str:
    for fmt in ("jsonl", "csv", "coco", "openpose"):
        if writer.tmp.name == work_name(fmt, stem):
            return fmt
    raise ValueError(f"{writer.tmp}: not a file of the work folder")


def _lock(folder: Path) -> int | None:
    """An exclusive ``flock`` on ``folder``'s lock file (its descriptor), or None when
    another run holds it."""
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            log.info("%s: another run writes this input's work folder; this run works in a "
                     "private one (no checkpoints)", folder)
            return None
        raise
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # its holder finished and removed the folder as we locked it
        os.close(fd)
        folder.mkdir(parents=True, exist_ok=True)
        return _lock(folder)
    return fd


def _usable(folder: Path, stem: str, identity: dict, settings: dict) -> Checkpoint | None:
    """The folder's checkpoint if this run can resume it, else None."""
    try:
        checkpoint = Checkpoint.from_dict(json.loads((folder / CHECKPOINT).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: the checkpoint cannot be read (%s); starting over", folder, exc)
        return None
    why = None
    if checkpoint.input != identity:
        why = "the input changed"
    elif checkpoint.settings != json.loads(json.dumps(settings)):
        why = "the settings that shape the outputs differ"
    elif not all((folder / p.name).is_file() for p in checkpoint.pieces):
        why = "a piece of the video is missing"
    elif not all(_file_holds(folder / work_name(fmt, stem), state)
                 for fmt, state in checkpoint.files.items()):
        why = "a keypoint file is missing or shorter than the checkpoint says"
    if why is not None:
        log.warning("%s: not resumed, %s; starting over", folder, why)
        return None
    return checkpoint


def _file_holds(path: Path, state: dict) -> bool:
    if "bytes" not in state:  # the OpenPose folder
        return path.is_dir()
    try:
        return path.stat().st_size >= int(state["bytes"])
    except OSError:
        return False


def _write_json(path: Path, data: dict) -> None:
    """Replace ``path`` by ``data``, on the disk before the rename (``fsync``)."""
    tmp = partial_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise OutputError(f"{path}: cannot write the checkpoint ({exc.strerror})") from exc


def copy_out(tmp: Path, path: Path) -> Path:
    """A copy of the finished work file (or folder) ``tmp`` under a partial name next to
    ``path``, to be put in place while the work file stays to be resumed.

    Raises:
        OutputError: It cannot be copied (nothing is left).
    """
    copy = partial_path(path, "join")
    try:
        if Path(tmp).is_dir():
            shutil.copytree(tmp, copy)
        else:
            shutil.copyfile(tmp, copy)
    except OSError as exc:
        remove_quietly(copy)
        raise OutputError(f"{path}: cannot copy the partial output ({exc.strerror})") from exc
    return copy


TrackState = Callable[[str, int], "dict | None"]
