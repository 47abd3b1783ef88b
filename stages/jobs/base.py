"""What every job shares: driving one pipeline, what a run shows, what a file's run did."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline import Pipeline, PipelineStatistics
from stages.frames import Result
from stages.jobs.builder import Sink
from stages.jobs.engine import EngineRecord


@dataclass(frozen=True, kw_only=True, slots=True)
class Views:
    """What a run shows as it goes: steps that take each drawn picture, each in
    its own pipeline stage, so a slow viewer never slows the writer.

    Attributes:
        preview: The browser preview (``stages.serve.preview.PreviewServer.publish``).
        show: The local window (``stages.display.window.ShowWindow.show``).
    """

    preview: Callable[[Result], Result] | None = None
    show: Callable[[Result], Result] | None = None

    def sinks(self) -> list[Sink]:
        """The pipeline sinks of the steps given, in order."""
        return [(stage, step) for stage, step in (("preview", self.preview), ("show", self.show))
                if step is not None]


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a finished (or interrupted) run did.

    ``outputs`` are the files that exist: the final names, or the ``.partial``
    names the results of an interrupted run were kept aside under
    (``kept_aside``; see ``stages.outputs.file_set``), or none when nothing was written.
    ``manifest`` is where a batch records the input as complete.

    A video's run may resume from a checkpoint (``stages.outputs.resume``):
    ``resumed_from`` frames were done by earlier runs, ``frames_written``
    (and ``frames_read``) are this run's, ``frames_done`` all the frames the
    outputs hold. ``partial`` is the work folder an interrupted run's work
    is kept in, to be resumed (None when nothing is kept), and
    ``checkpoint_frames`` the frames its checkpoint holds, which a rerun
    keeps (0: a rerun starts over); ``expected`` the frames the whole input
    gives, when known.
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
    frames_done: int | None = None
    resumed_from: int = 0
    partial: Path | None = None
    checkpoint_frames: int = 0
    expected: int | None = None

    @property
    def frames_processed(self) -> int:
        """Frames this run processed (the resumed ones not counted)."""
        return self.frames_written

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
