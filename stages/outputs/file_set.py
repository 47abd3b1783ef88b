"""The per-input outputs of a file run: annotated video (or image) and keypoints, as a set.

A video input's files are written in its work folder, in pieces with a
checkpoint at each cut (``work``, ``stages.outputs.resume``), and a run that
resumes one goes on from its checkpoint; the set is put in place together
(``stages.outputs.atomic.commit_set``) when the run ends:

- complete: the pieces of the video are joined, and the set replaces the
  previous one (whose manifest goes first); the work folder is removed;
- interrupted, in a batch (``publish_partial=False``), or when outputs of
  the input exist already: nothing goes under the final names; the work
  stays in its folder (``partial``) for the next run to resume;
- interrupted, in a file run, when none of the final names exists yet: the
  frames done go under the final names (what FFmpeg leaves after Ctrl-C: a
  playable video, valid keypoint files), and the work folder stays if it
  holds a checkpoint;
- failed: nothing under the final names; the work folder is removed.

A still image's files (``work`` None) are written under hidden partial
names (``stages.outputs.atomic.partial_path``) next to the final ones:

- complete (every frame written): the set replaces the previous one, whose
  manifest goes first; older ``.partial`` results of that input are removed;
- interrupted (a stop signal, a cancel): the set goes to the final names only
  when none of them exists yet; otherwise the previous set stays untouched
  and the results are kept aside under ``<name>.partial<ext>``
  (``clip.partial.mp4``, ``clip.partial.jsonl``, ...);
- failed (an error, e.g. a full disk): nothing under the final names; the
  partial files are removed (on a full disk they would only keep it full)
  and the previous set stays.

Names: outputs are named after the input's stem (``x.mp4`` -> ``x.mp4`` video,
``x.jsonl``), unless another video or image in the input's folder has the same
stem: then after its whole name (``x.mp4`` -> ``x.mp4.mp4``, ``x.mp4.jsonl``;
``x.webm`` -> ``x.webm.mp4``, ``x.webm.jsonl``; ``x.jpg`` -> ``x.jpg``,
``x.jpg.jsonl``), so same-stem inputs never write the same file.

Keypoints only (``video=False``, ``--no-video``): the set is the keypoint
files alone. No annotated video or image is written, nothing is encoded and
the input's audio is not read; the keypoint files are byte for byte those of
a run with the video. An annotated video that an earlier run left under the
final name is not part of the set: it stays as it is (as the file of a format
no longer asked for does).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from stages.outputs.atomic import (NAME_MAX, Staged, aside_path, clean_dead_partials, commit_set,
                                   remove_quietly, set_aside)
from stages.outputs.pieces import PieceVideo
from stages.outputs.resume import TrackState, Work, copy_out, starts_piece
from stages.sources.file_source import SourceInfo
from stages.errors import InputError, OutputError
from stages.outputs.formats import KeypointWriter, format_path, make_writers
from stages.settings import FORMATS
from stages.frames import Result
from stages.sources.inputs import is_media
from stages.outputs.video import VideoWriter, stage_image

log = logging.getLogger(__name__)

COMPLETE, INTERRUPTED, FAILED = "complete", "interrupted", "failed"


def output_stem(input: Path) -> str:
    """The base name of ``input``'s outputs: its stem, or its whole name when another
    video or image in its folder has the same stem (compared case-insensitively)."""
    input = Path(input)
    folder = input.parent
    try:
        stamp = os.stat(folder).st_mtime_ns
    except OSError:
        return input.stem
    others = _stems(str(folder), stamp).get(input.stem.casefold(), 0)
    mine = is_media(input)
    return input.name if others > (1 if mine else 0) else input.stem


@functools.lru_cache(maxsize=64)
def _stems(folder: str, _mtime_ns: int) -> dict[str, int]:
    # How many media files of ``folder`` have each stem; cached while the
    # folder is unchanged (its mtime), so a batch lists each folder once.
    counts: dict[str, int] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return counts
    for name in names:
        if is_media(name) and not name.startswith("."):
            key = Path(name).stem.casefold()
            counts[key] = counts.get(key, 0) + 1
    return counts


def output_paths(outdir: Path, input: Path, *, still: bool,
                 formats: Sequence[str] = ("jsonl",), stem: str | None = None,
                 video: bool = True) -> tuple[Path, ...]:
    """(annotated video or image, then one path per keypoint format) for ``input``,
    named after ``stem`` (default: ``output_stem(input)``); without ``video``
    only the keypoint formats' paths.

    Raises:
        InputError: An unknown format, or an output would overwrite the input itself.
    """
    stem = stem or output_stem(input)
    media = (outdir / (input.name if still else f"{stem}.mp4"),) if video else ()
    paths = (*media, *(format_path(f, outdir, stem, still=still) for f in dict.fromkeys(formats)))
    for p in paths:
        try:
            same = p.exists() and p.resolve() == Path(input).resolve()
        except OSError:  # a name no file system takes: FileOutputs refuses it in words
            same = False
        if same:
            raise InputError(f"{input}: output {p} would overwrite the input; choose another -o OUTDIR")
    return paths


def run_file_path(outdir: Path, items: Iterable, stem: str, suffix: str, alternative: str) -> Path:
    """Where a file of the whole run goes in ``outdir`` (the COCO dataset, a table):
    ``outdir/<stem><suffix>``, unless the keypoint output of an input at the run's
    root has that name (an input ``keypoints.mp4`` writes ``keypoints.csv``): then
    ``<alternative><suffix>``, with ``-1``, ``-2`` ... added to ``alternative``
    while that is taken too, so the two never overwrite each other.

    Args:
        outdir: The run's output root.
        items: The run's inputs (``stages.sources.inputs.BatchItem``).
        stem: The file's name less ``suffix`` (``keypoints``).
        suffix: ``.csv``, ``.coco.json`` ...
        alternative: The stem when taken (``keypoints.table``).
    """
    outdir = Path(outdir)
    taken = {format_path(fmt, outdir, output_stem(item.path)).name
             for item in items if item.rel.parent == Path(".") for fmt in FORMATS}
    stems = itertools.chain([stem, alternative], (f"{alternative}-{n}" for n in itertools.count(1)))
    return outdir / next(s + suffix for s in stems if s + suffix not in taken)


def finished_outputs(report) -> tuple[Path, ...] | None:
    """The committed outputs of an input that finished (``done``, or ``skipped`` as
    complete earlier), else None.

    Args:
        report: A ``stages.jobs.batch.FileReport``, its ``as_dict()`` (a
            cluster's), or None.
    """
    if isinstance(report, dict):
        status, outputs = report.get("status"), report.get("outputs", ())
    else:
        status, outputs = getattr(report, "status", None), getattr(report, "outputs", ())
    if status not in ("done", "skipped"):
        return None
    return tuple(Path(p) for p in outputs)


def manifest_path(outdir: Path, input: Path, stem: str | None = None) -> Path:
    """The manifest of ``input``'s outputs in ``outdir`` (see ``stages.outputs.manifest``)."""
    return Path(outdir) / f"{stem or output_stem(input)}.manifest.json"


def _check_names_fit(paths: Sequence[Path]) -> None:
    """Refuse, before anything is written, an output whose name no file system takes.

    Raises:
        OutputError: A name longer than ``NAME_MAX`` bytes (one line naming it).
    """
    for path in paths:
        size = len(os.fsencode(path.name))
        if size > NAME_MAX:
            raise OutputError(f"{path}: the output name is {size} bytes, more than a file name "
                              f"may have ({NAME_MAX}); rename the input")


class FileOutputs:
    """Writes every Result of one input; a pipeline step (``write``).

    The files are committed as a set when the ``with`` block ends (see the
    module docstring): call ``complete()`` once every frame was written;
    without it the run counts as interrupted, and an exception in the block
    makes it failed. ``written`` then says where the files went (nowhere
    after a failure).

    Args:
        outdir: Output directory, created when missing.
        input: The input file (names the outputs; its audio is copied into
            the annotated video).
        info: The source's description (size, rate, time base).
        preset: x264 preset.
        still: The input is a single image: write an annotated image, not a video.
        formats: Keypoint formats (``stages.outputs.formats.FORMATS``), in order.
        audio: Copy the input's audio streams into the annotated video.
        audio_range: The run covers a time range of the input: only the audio
            from the first frame written to the end of the last is copied.
        clean: First set aside what killed runs left in ``outdir``
            (``stages.outputs.atomic.clean_dead_partials``); a batch does it once per
            folder instead.
        video: Write the annotated video or image; False writes the keypoint
            files only (``preset`` and ``audio`` then change nothing).
        number: The input's place in the run, from 1 (a batch's sorted
            order): its COCO results' image ids are those of the run's
            dataset (``stages.outputs.formats.coco_image_id``).
        work: The input's work folder (``stages.outputs.resume``): the files
            are written there, cut into pieces with a checkpoint at each
            cut, and continued from its checkpoint; None (still images):
            written under partial names next to the final ones.
        publish_partial: An interrupted run's files go to the final names when
            none of them exists yet (a single-file run, as FFmpeg leaves what
            it did); otherwise they stay in the work folder (a batch).
        track_state: The tracker's state right before a frame, by source and
            index (``stages.pose.tracking.PoseTracker.saved_state``), for the
            checkpoints; None without tracking.

    Raises:
        InputError: An unknown format, an output that would overwrite the
            input, or nothing to write (no video and no format).

    Attributes:
        paths: The final names of the set: the annotated video or image first
            (unless ``video`` is False), then one per format.
        manifest: The manifest's path, removed before the set is put in place.
        written: Where the files went once closed: ``paths`` (those written), or
            their ``.partial`` names when kept aside; () before close, after a
            failure, or when nothing was written.
        partial: The work folder, when an interrupted run's work was kept
            there (also when its files went to the final names too); else None.
        frames: Frames written, those of the checkpoint resumed from included.
        people: People in them.
        state: "complete", "interrupted" or "failed", once closed.
    """

    def __init__(self, outdir: Path, input: Path, info: SourceInfo, *,
                 preset: str = "veryfast", still: bool = False,
                 formats: Sequence[str] = ("jsonl",), audio: bool = True,
                 clean: bool = True, video: bool = True, audio_range: bool = False,
                 number: int = 1, work: Work | None = None, publish_partial: bool = True,
                 track_state: TrackState | None = None) -> None:
        if not video and not formats:
            raise InputError(f"{input}: --no-video with no --format: nothing to write")
        self._stem = output_stem(input)
        self.paths = output_paths(outdir, input, still=still, formats=formats, stem=self._stem,
                                  video=video)
        _check_names_fit(self.paths)
        self.manifest = manifest_path(outdir, input, self._stem)
        self.written: tuple[Path, ...] = ()
        self.state = ""
        self._outdir = Path(outdir)
        self._input = Path(input)
        self._info = info
        self._preset = preset
        self._still = still
        self._media = self.paths[0] if video else None  # the annotated video or image
        self._formats = tuple(dict.fromkeys(formats))
        self._audio = audio
        self._audio_range = audio_range
        self._clean = clean
        self._number = number
        self._video: VideoWriter | PieceVideo | None = None
        self._writers: list[KeypointWriter] = []
        self._last_image = None
        self._complete = False
        self._closed = False
        self._lock = threading.Lock()
        self._work = work if not still else None
        if still and work is not None:  # a picture is written whole or not at all
            work.close()
        self._publish_partial = publish_partial
        self._track_state = track_state
        self._last_pts: float | None = None
        self.partial: Path | None = None
        self.frames = work.resumed_frames if self._work is not None else 0
        self.people = work.resumed_people if self._work is not None else 0

    @property
    def kept_aside(self) -> bool:
        """Whether this run's files are not under the final names but kept aside: in the
        work folder, or under their ``.partial`` names."""
        if self.partial is not None and not self.written:
            return True
        return bool(self.written) and self.written[0] not in self.paths

    def __enter__(self) -> FileOutputs:
        try:
            self._outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self._outdir}: cannot create output directory "
                              f"({exc.strerror})") from exc
        if self._clean:
            clean_dead_partials(self._outdir)
        if self._work is not None:
            self._writers = self._work.writers(self._formats, self._outdir, number=self._number)
            if self._media is not None:
                self._video = self._work.video(self._info, preset=self._preset)
            return self
        self._writers = make_writers(self._formats, self._outdir, self._stem, still=self._still,
                                     number=self._number)
        if self._media is not None and not self._still:
            try:
                self._video = VideoWriter(self._media, self._info, preset=self._preset,
                                          audio_from=self._input if self._audio else None,
                                          audio_range=self._audio_range)
            except BaseException:
                self._discard()
                raise
        return self

    def write(self, result: Result) -> Result:
        """Write one result (rendered, unless there is no video); return it.

        With a work folder, a result that starts a piece (``stages.outputs.resume``)
        first cuts the outputs there and records a checkpoint.
        """
        frame = result.frame
        if self._work is not None:
            if self._last_pts is not None and starts_piece(self._last_pts, frame.pts):
                self._cut(frame)
            self._last_pts = frame.pts
        if self._media is not None:
            image = result.image if result.image is not None else result.frame.image
            if self._video is not None:
                self._video.write(image, result.frame.pts_ticks)
            else:
                self._last_image = image
        for writer in self._writers:
            writer.write(result)
        self.frames += 1
        self.people += len(result.people)
        return result

    def _cut(self, frame) -> None:
        tracker = None
        if self._track_state is not None:
            # without the tracker's state there a resumed run could not give the same ids
            tracker = self._track_state(frame.source, frame.index)
            if tracker is None:
                log.warning("%s: no tracker state at frame %d: no checkpoint there",
                            self._input, frame.index)
        self._work.commit(frames=self.frames, people=self.people, next_index=frame.index,
                          next_pts=frame.pts, writers=self._writers, tracker=tracker,
                          video=self._video if isinstance(self._video, PieceVideo) else None,
                          record=tracker is not None or self._track_state is None)

    def complete(self) -> None:
        """Mark the run complete: every frame of the input was written."""
        self._complete = True

    def close(self, state: str | None = None) -> tuple[Path, ...]:
        """Finish every file and put the set in place, or aside; idempotent.

        Args:
            state: "complete", "interrupted" or "failed"; default: "complete"
                after ``complete()``, else "interrupted".

        Returns:
            Where the files went (``written``).

        Raises:
            OutputError: A file could not be finished or the set not put in
                place (a failed run: its files are removed, the previous set
                stays).
        """
        with self._lock:
            if self._closed:
                return self.written
            self._closed = True
            state = state or (COMPLETE if self._complete else INTERRUPTED)
            if self._work is not None:
                return self._close_work(state)
            staged, error = self._finish_all()
            self.state = FAILED if error is not None or state == FAILED else state
            if self.state == FAILED:
                for item in staged:
                    remove_quietly(item.tmp)
            else:
                try:
                    self.written = self._publish(staged)
                except OutputError as exc:  # the previous set is back in place
                    self.state, error = FAILED, exc
            if error is not None:
                raise error
            return self.written

    def _close_work(self, state: str) -> tuple[Path, ...]:
        """``close`` with a work folder (``stages.outputs.resume``): a complete run, or an
        interrupted one that may take the final names, joins the pieces and puts the set
        in place; otherwise the work stays in the folder (kept on an interruption,
        removed on a failure)."""
        previous = any(os.path.lexists(p) for p in self.paths)
        publish = state == COMPLETE or (state == INTERRUPTED and self._publish_partial
                                        and not previous and self.frames > 0)
        if not publish:
            self.state = state
            self._stop_work(keep=state == INTERRUPTED)
            return self.written
        try:
            staged = self._stage_work(copies=state != COMPLETE)
            commit_set(staged, remove_first=[self.manifest],
                       remove_after=[aside_path(p) for p in self.paths])
        except OutputError:
            self.state = FAILED
            self._stop_work(keep=state == INTERRUPTED)  # a checkpoint still serves a rerun
            raise
        self.state = state
        self.written = tuple(s.path for s in staged)
        if state == COMPLETE or self._work.checkpoint is None:  # nothing to go on from
            self._work.remove()
        else:
            self._stop_work(keep=True)
        return self.written

    def _stage_work(self, *, copies: bool) -> list[Staged]:
        """The set from the work folder: the pieces joined, the keypoint files finished
        (``copies``: copied out, the work files staying to be resumed)."""
        staged: list[Staged] = []
        try:
            if isinstance(self._video, PieceVideo):
                self._video.cut()  # interrupted: a piece no checkpoint names, joined all the same
                joined = self._video.join(self._media, source_info=self._info,
                                          audio_from=self._input if self._audio else None,
                                          audio_range=self._audio_range)
                staged += [joined] if joined is not None else []
            for writer in self._writers:
                item = writer.finish()
                if item is not None:
                    staged.append(Staged(copy_out(item.tmp, item.path), item.path) if copies
                                  else item)
        except OutputError:
            for item in staged:
                if item.tmp.parent != self._work.folder:
                    remove_quietly(item.tmp)
            raise
        return staged

    def _stop_work(self, *, keep: bool) -> None:
        """Close the work folder's files without a set: kept (``partial``) when it holds
        work to go on from, else removed."""
        if isinstance(self._video, PieceVideo):
            self._video.discard()
        for writer in self._writers:
            try:
                writer.finish()  # the files stay readable: a checkpoint says where to go on
            except OutputError as exc:
                log.warning("%s", exc)
        if keep and (self._work.checkpoint is not None or self.frames > 0):
            self._work.release()
            self.partial = None if self._work.private else self._work.folder
        else:
            self._work.remove()

    def _finish_all(self) -> tuple[list[Staged], OutputError | None]:
        # Every file is finished, even when one fails; one that failed is
        # still staged (its partial file, if any) so that it can be removed.
        staged: list[Staged] = []
        error: OutputError | None = None
        if self._last_image is not None:
            try:
                staged.append(stage_image(self._media, self._last_image))
            except OutputError as exc:
                error = exc
            self._last_image = None
        for writer in ([self._video] if self._video is not None else []) + self._writers:
            try:
                item = writer.finish()
            except OutputError as exc:
                error = error or exc
                item = Staged(writer.tmp, writer.path) if os.path.lexists(writer.tmp) else None
            if item is not None:
                staged.append(item)
        return staged, error

    def _publish(self, staged: list[Staged]) -> tuple[Path, ...]:
        if not staged:
            return ()
        previous = any(os.path.lexists(p) for p in self.paths)
        if self.state == COMPLETE or (self.state == INTERRUPTED and not previous):
            commit_set(staged, remove_first=[self.manifest],
                       remove_after=[aside_path(p) for p in self.paths])
            return tuple(s.path for s in staged)
        kept = set_aside(staged)
        log.warning("%s: interrupted; the previous outputs stay, this run's are kept aside: %s",
                    self._input, ", ".join(p.name for p in kept))
        return kept

    def _discard(self) -> None:
        # Opening failed: the files begun are removed, nothing else is touched.
        for writer in self._writers:
            try:
                writer.finish()
            except OutputError:
                pass
            remove_quietly(writer.tmp)
        self._writers = []
        self._closed = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        state = FAILED if issubclass(exc_type, Exception) else INTERRUPTED
        try:
            self.close(state)
        except OutputError as error:  # the exception in flight is the one to report
            log.error("%s", error)
