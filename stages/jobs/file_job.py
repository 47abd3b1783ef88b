"""One file through the whole pipeline: decode, resize, inference pool, render, write."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline import Pipeline, PipelineStatistics
from stages.jobs.builder import (EngineRecord, Sink, build_pipeline, file_outputs, open_file_source,
                            plan_engine, view_sinks)
from stages.sources.file_source import SourceInfo
from stages.frames import Result
from stages.settings import JobConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a finished (or interrupted) run did.

    ``outputs`` are the files that exist: the final names, or the ``.partial``
    names the results of an interrupted run were kept aside under
    (``kept_aside``; see ``stages.outputs.file_set``), or none when nothing was written.
    ``manifest`` is where a batch records the input as complete.
    """

    input: Path
    outputs: tuple[Path, ...]
    frames_read: int
    frames_written: int
    truncated: bool
    interrupted: bool
    seconds: float
    statistics: PipelineStatistics | None = None
    engine: EngineRecord | None = None
    frames_lost: int = 0  # pictures of a damaged input that did not decode (skipped)
    kept_aside: bool = False
    manifest: Path | None = None

    @property
    def fps(self) -> float:
        """Frames written per second of wall time."""
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0


class PipelineJob:
    """Drives one pipeline on the caller's thread; ``cancel`` works from any
    thread (a signal handler's helper), also before the pipeline exists."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._pipeline: Pipeline | None = None

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel`` was called."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop soon: items in flight are dropped; sinks keep what they wrote."""
        self._cancelled.set()
        if self._pipeline is not None:
            self._pipeline.cancel()

    def _drive(self, pipeline: Pipeline, on_result: Callable[[Result], None] | None) -> int:
        """Run ``pipeline`` to its end (or a cancel); return how many results came out."""
        count = 0
        with pipeline:
            self._pipeline = pipeline
            if self.cancelled:  # cancelled while the pipeline was being built
                pipeline.cancel()
            for result in pipeline:
                count += 1
                if on_result is not None:
                    on_result(result)
        return count


class FileJob(PipelineJob):
    """Processes one video or image file into OUTDIR.

    Args:
        input: The file.
        outdir: Directory for the outputs (created).
        config: Run settings.
    """

    def __init__(self, input: Path, outdir: Path, config: JobConfig, *,
                 preview: Callable[[Result], Result] | None = None,
                 show: Callable[[Result], Result] | None = None) -> None:
        self.input = Path(input)
        self.outdir = Path(outdir)
        self.config = config
        self.preview = preview
        self.show = show  # the local window's step (stages.display.window)
        super().__init__()

    def run(self, on_result: Callable[[Result], None] | None = None,
            on_start: Callable[[SourceInfo], None] | None = None) -> JobSummary:
        """Run to the end (or until ``cancel``); the outputs are committed as a set
        (``stages.outputs.file_set``): a stopped run never replaces a complete set.

        Args:
            on_result: Called with each written result, in order.
            on_start: Called with the input's description once it is open.

        Raises:
            InputError: The input cannot be read; nothing is written.
            Exception: The first failure of any stage.
        """
        start = time.perf_counter()
        with open_file_source(self.input, self.config) as source:
            # one picture: one copy on all cores loads once and runs its frame soonest
            engine = plan_engine(self.config, latency=source.info.frames == 1)
            if on_start is not None:
                on_start(source.info)
            with file_outputs(self.outdir, self.input, source, self.config) as outputs:
                sinks: list[Sink] = view_sinks(self.preview, self.show)
                pipeline = build_pipeline(self.config, engine, [(source, source.close)],
                                          name=self.input.name, pictures=bool(sinks),
                                          sinks=sinks + [("write", outputs.write)])
                written = self._drive(pipeline, on_result)
                if not self.cancelled:
                    outputs.complete()
                self._log_stages(pipeline)
            return JobSummary(self.input, outputs.written, source.frames_read, written,
                              source.truncated, outputs.state != "complete",
                              time.perf_counter() - start, pipeline.statistics(), engine.record,
                              frames_lost=source.frames_lost, kept_aside=outputs.kept_aside,
                              manifest=outputs.manifest)

    @staticmethod
    def _log_stages(pipeline: Pipeline) -> None:
        for s in pipeline.statistics().stages:
            log.debug("stage %-9s items=%d mean=%.1f ms", s.name, s.items, 1000 * s.mean_seconds)
