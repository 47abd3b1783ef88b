"""Batch jobs: many files, several in flight through one inference pool, resumable.

``lanes`` files are decoded at once; each lane takes the next pending file
when its current one is decoded, so short files and decode gaps never leave
the workers idle. Every frame carries its file's key; the writer keeps one
``FileOutputs`` per file in flight and finishes a file (its outputs put in
place as a set, then its manifest) once all of its frames are written. A file
that cannot be opened, or whose outputs cannot be written, is reported and
skipped; the others go on. After a stop, the files in flight are closed as
interrupted runs (``stages.outputs.file_set``: their previous complete outputs stay).

Resuming: each video input is written in its work folder, in pieces with a
checkpoint at each cut (``stages.outputs.resume``). An input that did not
finish leaves nothing under its final names: its work stays in that folder
(``OUT/<folder>/.partial/<stem>/``, its report's ``partial``), and the next
batch goes on from its last checkpoint: ``frames_resumed_from`` frames come
from there, ``frames_processed`` are the run's own. One tracker serves every
file, each under its own key; a resumed file's tracks are restored from its
checkpoint before its first frame.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from stages.errors import OutputError, PosestreamError
from stages.frames import Result
from stages.jobs.base import PipelineJob, Views
from stages.jobs.builder import (build_pipeline, file_outputs, open_file_source, open_work,
                                 resumable_tracker)
from stages.jobs.engine import EngineRecord, plan_engine
from stages.outputs.atomic import clean_dead_partials
from stages.outputs.file_set import FAILED, INTERRUPTED, manifest_path
from stages.outputs.manifest import completed, input_identity, output_settings, write_manifest
from stages.outputs.resume import Work
from stages.pose.tracking import PoseTracker
from stages.settings import JobConfig
from stages.sources.inputs import BatchItem

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FileReport:
    """What happened to one input.

    ``people`` and ``seconds`` are None for an input skipped as complete whose
    manifest does not record them (written before they were recorded): its
    people per frame and FPS are then unknown, not zero.
    """

    input: str
    status: str = "pending"  # done | skipped (already complete) | failed | interrupted | pending
    frames: int = 0
    people: int | None = 0
    seconds: float | None = 0.0
    truncated: bool = False
    frames_lost: int = 0  # pictures of a damaged input that did not decode (skipped)
    error: str = ""
    engine: dict | None = None  # EngineRecord.as_dict() of what processed it
    outputs: list[str] = field(default_factory=list)  # where they went (final or .partial names)
    partial: list[str] = field(default_factory=list)  # the work folder kept, to resume from
    resumed_from: int = 0  # frames done by an earlier run, taken from its checkpoint
    started: float = field(default=0.0, repr=False)

    @property
    def frames_processed(self) -> int:
        """Frames this run processed (not those resumed from, nor a skipped input's)."""
        return 0 if self.status == "skipped" else max(self.frames - self.resumed_from, 0)

    @property
    def fps(self) -> float | None:
        """Frames per second of this file's wall time in the pipeline."""
        if self.seconds is None:
            return None
        frames = self.frames if self.status == "skipped" else self.frames_processed
        return frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def mean_people(self) -> float | None:
        """Mean people per frame."""
        if self.people is None:
            return None
        return self.people / self.frames if self.frames else 0.0

    def as_dict(self) -> dict:
        """JSON-ready record."""
        fps, mean_people = self.fps, self.mean_people
        record = {"input": self.input, "status": self.status, "frames": self.frames,
                  "mean_people": None if mean_people is None else round(mean_people, 3),
                  "fps": None if fps is None else round(fps, 2),
                  "people": self.people,
                  "seconds": None if self.seconds is None else round(self.seconds, 3),
                  "truncated": self.truncated, "frames_lost": self.frames_lost,
                  "error": self.error, "outputs": self.outputs, "partial": self.partial,
                  "frames_resumed_from": self.resumed_from,
                  "frames_processed": self.frames_processed}
        if self.engine is not None:
            record["engine"] = self.engine
        return record

    def recall(self, manifest: dict) -> None:
        """Fill in a skipped input's figures from its manifest (what it recorded)."""
        self.frames = manifest["frames"]
        self.engine = manifest.get("engine")
        people, seconds = manifest.get("people"), manifest.get("seconds")
        self.people = people if isinstance(people, int) else None
        self.seconds = float(seconds) if isinstance(seconds, (int, float)) else None
        self.truncated = bool(manifest.get("truncated", False))
        self.frames_lost = int(manifest.get("frames_lost", 0) or 0)


def plan_batch(items: list[BatchItem], outdir: Path, config: JobConfig, *, force: bool = False
               ) -> tuple[list[BatchItem], dict[str, FileReport]]:
    """Split items into those to process and reports for those already complete."""
    settings = output_settings(config)
    todo, reports = [], {}
    for folder in dict.fromkeys(outdir / item.rel.parent for item in items):
        if folder.is_dir():  # the next run in a folder deals with what killed runs left
            clean_dead_partials(folder)
    for item in items:
        reports[item.key] = FileReport(item.key)
        manifest = manifest_path(outdir / item.rel.parent, item.path)
        try:
            done = None if force else completed(manifest, input_identity(item.path), settings)
        except OSError as exc:
            reports[item.key].status, reports[item.key].error = "failed", f"{item.path}: {exc.strerror}"
            continue
        if done is not None:
            reports[item.key].status = "skipped"
            reports[item.key].recall(done)
            reports[item.key].outputs = [str(manifest.parent / n) for n in done["outputs"]]
        else:
            todo.append(item)
    return todo, reports


class BatchJob(PipelineJob):
    """Processes a list of inputs into ``outdir``, mirroring their relative paths.

    Args:
        items: The inputs (see ``stages.sources.inputs.expand_inputs``).
        outdir: Output root.
        config: Model and pipeline settings.
        lanes: Files decoded at once.
        force: Redo inputs whose outputs are already complete.
        restart: Redo interrupted inputs from their first frame, not from their
            checkpoints (``stages.outputs.resume``); default: ``force``.
        numbers: Each input's place in the whole batch, by key, when ``items``
            are part of it (a cluster's task); default: their order, from 1.
            It numbers their COCO image ids (``stages.outputs.file_set.FileOutputs``).
    """

    def __init__(self, items: list[BatchItem], outdir: Path, config: JobConfig, *,
                 lanes: int = 2, force: bool = False, restart: bool | None = None,
                 numbers: dict[str, int] | None = None) -> None:
        self.outdir = Path(outdir)
        self.config = config
        self.lanes = max(1, lanes)
        self.restart = force if restart is None else restart
        self._tracker = resumable_tracker(config)
        self.numbers = numbers or {item.key: n for n, item in enumerate(items, 1)}
        todo, self.reports = plan_batch(items, self.outdir, config, force=force)
        self._pending: queue.SimpleQueue[BatchItem] = queue.SimpleQueue()
        for item in todo:
            self._pending.put(item)
        self.todo = len(todo)
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()
        self.engine: EngineRecord | None = None
        super().__init__()

    def run(self, on_result: Callable[[Result], None] | None = None,
            on_file: Callable[[FileReport], None] | None = None, *,
            views: Views = Views()) -> dict[str, FileReport]:
        """Process every pending input; return a report per input (skipped ones too).

        Args:
            on_result: Called with each written result (its frame's ``source`` is
                its input's key).
            on_file: Called with each input's report once it is done or failed.
            views: What shows the drawn pictures as they come (preview, window).
        """
        self._on_file = on_file
        if self.todo:
            engine = plan_engine(self.config)
            self.engine = engine.record
            feeds = [(self._lane(), None) for _ in range(min(self.lanes, self.todo))]
            sinks = views.sinks()
            pipeline = build_pipeline(self.config, engine, feeds, name="batch", keyed=True,
                                      pictures=bool(sinks),
                                      sinks=sinks + [("write", self._write)],
                                      tracker=self._tracker)
            try:
                self._drive(pipeline, on_result)
            except Exception:
                self._abandon_open(FAILED)
                raise
            finally:
                self._abandon_open(INTERRUPTED)
        return self.reports

    # -- decode lanes ---------------------------------------------------
    def _lane(self):
        while not self.cancelled:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                return
            yield from self._frames_of(item)

    def _frames_of(self, item: BatchItem):
        report = self.reports[item.key]
        try:
            work = open_work(self.outdir / item.rel.parent, item.path, self.config,
                             number=self.numbers[item.key], restart=self.restart)
        except PosestreamError as exc:
            self._failed(report, str(exc))
            return
        try:
            source = open_file_source(item.path, self.config, name=item.key, batch=True,
                                      work=work)
        except PosestreamError as exc:
            if work is not None:
                work.close()
            self._failed(report, str(exc))
            return
        with source:
            try:
                opened = _Open(item, source, self.outdir, self.config, self.numbers[item.key],
                               work, self._tracker)
            except PosestreamError as exc:
                if work is not None:
                    work.close()
                self._failed(report, str(exc))
                return
            report.frames = report.resumed_from = opened.resumed
            report.people = opened.outputs.people
            with self._lock:
                self._open[item.key] = opened
            report.started = time.monotonic()
            yield from source
            report.truncated, report.frames_lost = source.truncated, source.frames_lost
            self._decoded(item.key, source.frames_read)

    # -- writing --------------------------------------------------------
    def _write(self, result: Result) -> Result:
        key = result.frame.source
        with self._lock:
            opened = self._open.get(key)
        if opened is None:  # its file failed: the rest of its frames are dropped
            return result
        try:
            opened.enter()
            opened.outputs.write(result)
        except OutputError as exc:
            self._give_up(key, str(exc))
            return result
        report = self.reports[key]
        with self._lock:
            report.frames += 1
            report.people += len(result.people)
            done = opened.decoded is not None and report.frames - opened.resumed == opened.decoded
        if done:
            self._finish(key)
        return result

    def _decoded(self, key: str, frames: int) -> None:
        with self._lock:
            opened = self._open.get(key)
            if opened is None:
                return
            opened.decoded = frames
            done = self.reports[key].frames - opened.resumed == frames
        if done:
            self._finish(key)

    def _finish(self, key: str) -> None:
        with self._lock:
            opened = self._open.pop(key, None)
        if opened is None:
            return
        report = self.reports[key]
        report.engine = self.engine.as_dict()
        try:
            opened.enter()
        except OutputError as exc:
            self._failed(report, str(exc))
            return
        opened.outputs.complete()
        report.seconds = time.monotonic() - report.started
        try:
            report.outputs = [str(p) for p in opened.outputs.close()]
            write_manifest(opened.outputs.manifest, opened.identity, output_settings(self.config),
                           opened.outputs.written, report.frames, report.engine, people=report.people,
                           seconds=report.seconds, truncated=report.truncated,
                           frames_lost=report.frames_lost)
        except OutputError as exc:
            report.outputs = [str(p) for p in opened.outputs.written]
            self._failed(report, str(exc))
            return
        report.status = "done"
        log.info("%s: done, %d frames", key, report.frames)
        if self._on_file is not None:
            self._on_file(report)

    def _give_up(self, key: str, error: str) -> None:
        """A file whose outputs cannot be written: kept aside, reported failed."""
        with self._lock:
            opened = self._open.pop(key, None)
        if opened is None:
            return
        try:
            opened.outputs.close(FAILED)
        except OutputError as exc:
            log.debug("%s: %s", key, exc)
        self.reports[key].outputs = [str(p) for p in opened.outputs.written]
        self._failed(self.reports[key], error)

    def _failed(self, report: FileReport, error: str) -> None:
        report.status, report.error = "failed", error
        log.error("%s", error)
        if self._on_file is not None:
            self._on_file(report)

    def _abandon_open(self, state: str) -> None:
        """After a stop or failure: files still open are closed as interrupted
        (or failed) runs, without a manifest, so the next run does them again;
        their previous complete outputs stay (``stages.outputs.file_set``)."""
        with self._lock:
            left, self._open = list(self._open.values()), {}
        for opened in left:
            report = self.reports[opened.item.key]
            report.status = "failed" if state == FAILED else "interrupted"
            try:
                opened.outputs.close(state)
            except OutputError as exc:
                report.error = str(exc)
                log.error("%s", exc)
            report.outputs = [str(p) for p in opened.outputs.written]
            if opened.outputs.partial is not None:
                report.partial = [str(opened.outputs.partial)]


class _Open:
    """A file in flight: its outputs and identity, and its frame count once decoded.

    The outputs are entered (their partial files made) with the first result
    to write, so nothing is made while the model loads; closing them before
    that makes nothing either.
    """

    def __init__(self, item: BatchItem, source, outdir: Path, config: JobConfig,
                 number: int, work: Work | None = None, tracker: PoseTracker | None = None
                 ) -> None:
        self.item = item
        self.identity = input_identity(item.path)
        self.decoded: int | None = None  # frames its source gave this run, once decoded
        self.resumed = work.resumed_frames if work is not None else 0
        if tracker is not None:  # where its checkpoint left the ids (or afresh)
            tracker.restore(item.key, work.checkpoint.tracker
                            if work is not None and work.checkpoint is not None else None)
        self.outputs = file_outputs(outdir / item.rel.parent, item.path, source, config,
                                    clean=False, number=number, work=work,
                                    publish_partial=False, tracker=tracker)
        self._entered = False

    def enter(self) -> None:
        """Enter the outputs, unless they were entered already.

        Raises:
            OutputError: They cannot be opened (the folder cannot be made...).
        """
        if not self._entered:
            self._entered = True
            self.outputs.__enter__()
