"""One file through the whole pipeline: decode, resize, inference pool, render, write."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Callable

from pipeline import Pipeline
from stages.frames import Result
from stages.jobs.base import JobSummary, PipelineJob, Views
from stages.jobs.builder import (build_pipeline, file_outputs, open_file_source, open_work,
                                 resumable_tracker)
from stages.errors import OutputError
from stages.jobs.engine import plan_engine
from stages.outputs.file_set import INTERRUPTED, FileOutputs
from stages.settings import JobConfig
from stages.sources.file_source import SourceInfo

log = logging.getLogger(__name__)


class FileJob(PipelineJob):
    """Processes one video or image file into OUTDIR.

    A video's outputs are written in its work folder, cut into pieces with a
    checkpoint at each cut, and a run of the same input with the same settings
    resumes from the last checkpoint (``stages.outputs.resume``).

    Args:
        input: The file.
        outdir: Directory for the outputs (created).
        config: Run settings.
        restart: Start from the first frame even where a checkpoint fits.
    """

    def __init__(self, input: Path, outdir: Path, config: JobConfig, *,
                 restart: bool = False) -> None:
        self.input = Path(input)
        self.outdir = Path(outdir)
        self.config = config
        self.restart = restart
        self._statistics = None
        super().__init__()

    def run(self, on_result: Callable[[Result], None] | None = None,
            on_start: Callable[[SourceInfo], None] | None = None, *,
            views: Views = Views()) -> JobSummary:
        """Run to the end (or until ``cancel``); the outputs are committed as a set
        (``stages.outputs.file_set``): a stopped run never replaces a complete set.
        They are opened with the first result to write, once a model has loaded:
        a run stopped or failed while the model loads leaves nothing in ``outdir``.

        Args:
            on_result: Called with each written result, in order.
            on_start: Called with the input's description once it is open.
            views: What shows the drawn pictures as they come (preview, window).

        Raises:
            InputError: The input cannot be read; nothing is written.
            Exception: The first failure of any stage.
        """
        start = time.perf_counter()
        made = not self.outdir.exists()  # an input that cannot be read leaves no folder
        work = open_work(self.outdir, self.input, self.config, restart=self.restart)
        outputs = None
        try:
            with open_file_source(self.input, self.config, work=work) as source:
                # one picture: one copy on all cores loads once and runs its frame soonest
                engine = plan_engine(self.config, latency=source.info.frames == 1)
                if on_start is not None:
                    on_start(source.info)
                tracker = resumable_tracker(self.config)
                if tracker is not None and work is not None and work.checkpoint is not None:
                    tracker.restore(source.info.name, work.checkpoint.tracker)
                outputs = file_outputs(self.outdir, self.input, source, self.config, work=work,
                                       tracker=tracker)
                try:
                    written = self._run_outputs(outputs, source, engine, tracker, on_result,
                                                views)
                finally:
                    _close_quietly(outputs)  # never opened (stopped while the model loaded)
        finally:
            if outputs is None and work is not None:  # the outputs close it otherwise
                work.close()
                if made:
                    _remove_if_empty(self.outdir)
        return JobSummary(self.input, outputs.written, source.frames_read, written,
                          source.truncated, outputs.state != "complete",
                          time.perf_counter() - start, self._statistics, engine.record,
                          frames_lost=source.frames_lost, kept_aside=outputs.kept_aside,
                          manifest=outputs.manifest, frames_done=outputs.frames,
                          resumed_from=work.resumed_frames if work is not None else 0,
                          partial=outputs.partial, expected=source.info.frames,
                          checkpoint_frames=_checkpoint_frames(work, outputs))

    def _run_outputs(self, outputs: FileOutputs, source, engine, tracker,
                     on_result: Callable[[Result], None] | None, views: Views) -> int:
        """Drive the pipeline into ``outputs``; return the results written."""
        _make_folder(self.outdir)  # a folder that cannot be made is said before the load
        with _OpenOnFirstWrite(outputs) as writer:
            sinks = views.sinks()
            pipeline = build_pipeline(self.config, engine, [(source, source.close)],
                                      name=self.input.name, pictures=bool(sinks),
                                      sinks=sinks + [("write", writer.write)], tracker=tracker)
            written = self._drive(pipeline, on_result)
            if not self.cancelled:
                writer.open()
                outputs.complete()
            self._log_stages(pipeline)
            self._statistics = pipeline.statistics()
        return written

    @staticmethod
    def _log_stages(pipeline: Pipeline) -> None:
        for s in pipeline.statistics().stages:
            log.debug("stage %-9s items=%d mean=%.1f ms", s.name, s.items, 1000 * s.mean_seconds)


def _checkpoint_frames(work, outputs: FileOutputs) -> int:
    """The frames a rerun keeps: those of the checkpoint left in the work folder."""
    if outputs.partial is None or work is None or work.checkpoint is None:
        return 0
    return work.checkpoint.frames


def _close_quietly(outputs: FileOutputs) -> None:
    """Close ``outputs`` if the run left them open (as interrupted); errors are logged."""
    try:
        outputs.close(INTERRUPTED)
    except OutputError as exc:
        log.error("%s", exc)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # something is in it


def _make_folder(outdir: Path) -> None:
    """Create ``outdir`` (and its parents) if missing.

    Raises:
        OutputError: It cannot be created (one line naming it).
    """
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{outdir}: cannot create output directory ({exc.strerror})") from exc


class _OpenOnFirstWrite(contextlib.AbstractContextManager):
    """A run's ``FileOutputs``, entered (their partial files made) on the first
    result written, on the write stage's thread; left with this context, if entered."""

    def __init__(self, outputs: FileOutputs) -> None:
        self.outputs = outputs
        self._stack = contextlib.ExitStack()
        self._opened = False

    def open(self) -> None:
        """Enter the outputs now, unless they are open already."""
        if not self._opened:
            self._stack.enter_context(self.outputs)
            self._opened = True

    def write(self, result: Result) -> Result:
        """The pipeline's ``write`` step: open the outputs if need be, write ``result``."""
        self.open()
        return self.outputs.write(result)

    def __exit__(self, *exc_info: object) -> bool | None:
        return self._stack.__exit__(*exc_info)
