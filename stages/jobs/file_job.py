"""One file through the whole pipeline: decode, resize, inference pool, render, write."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from models.devices import usable_cores
from models.graph_file import check_frozen_graph
from models.registry import DEFAULT_MODEL
from pipeline import Pipeline, PipelineStatistics
from stages.jobs.builder import (EngineRecord, Sink, build_pipeline, file_outputs, open_file_source,
                            plan_engine, view_sinks)
from stages.sources.file_source import SourceInfo
from stages.errors import InputError
from stages.frames import Result
from stages.pose.maps_to_people import PostprocessConfig
from stages.pose.resize import DEFAULT_RESOLUTION, STRIDE
from stages.pose.tracking import DEFAULT_MEMORY, check_memory

log = logging.getLogger(__name__)


# Bounds of the settings, and why (README, "Options"):
# - Each side of the network input is 32 to 2048 pixels. The network's maps are 1/8 of it:
#   below 32 they have under 4 cells a side, and even a person filling the picture is not
#   found (measured: scikit-image's astronaut, a person filling the frame, is found from
#   64x64 on, not at 32x32). A run of one image with one OpenVINO copy peaks at 1.3 GB
#   resident at 2048x2048 (0.29 GB at 432x368), growing with the pixels: 4000x4000 with
#   several copies was killed for memory.
# - CPU model copies: at most max(8, 2 x cores). Past the cores a copy only waits for one,
#   and each adds its load time and memory.
# - A network call takes at most 64 frames; a queue between stages holds at most 64 items:
#   each can be a decoded frame (6 MB at 1080p) and a run has about six queues.
MIN_SIDE, MAX_SIDE = 32, 2048
MAX_BATCH = 64
MAX_QUEUE_SIZE = 64
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")


@dataclass(frozen=True, kw_only=True, slots=True)
class JobConfig:
    """Settings of a run; the CLI (and later a config file) fill it.

    Attributes:
        resolution: Network input (width, height), multiples of 8.
        workers: Inference workers on the CPU, one model copy each (GPUs and
            NeuronCores get one worker per device instead); 0 chooses: one
            single-threaded copy per core for files, one copy on all cores
            for live streams (see ``models.devices.plan_devices``).
        queue_size: Capacity of every queue between stages.
        backend: Inference backend name, or "auto" for the fastest present.
        device: "cpu", "gpu[:0,1]", "neuron[:0-3]" or "auto".
        precision: "f32", or "auto" for the engine's faster native precision
            (bf16 on AMX CPUs with OpenVINO, TF32 on Ampere+ GPUs), or "int8"
            (OpenVINO only: the graph quantized once, see models.quantize).
        batch: Most frames one network call takes.
        batch_timeout: Seconds a worker may wait to fill a batch.
        model: Registry name of the graph.
        graph: A graph file to use instead of fetching ``model``.
        postprocess: Post-network settings.
        preset: x264 preset of the annotated video.
        formats: Keypoint formats written ("jsonl", "openpose", "coco").
        track: Give each person a stable id across frames.
        track_memory: Seconds of stream time a person's id is kept while
            they are not seen (``stages.pose.tracking``; bench/bench_tracking.py
            chose the default).
        audio: Copy the input's audio into the annotated video.
        video: Write the annotated video (False: keypoints only; nothing is
            drawn or encoded).
        frame_step: Process every Nth decoded frame of files (1: all).
        start: Seconds from the start of a file where processing begins
            (None: its start).
        end: Seconds from the start of a file where processing stops,
            exclusive (None: its end).
        max_fps: Most frames per second processed per live source; frames
            beyond it are dropped at the source and counted (None: no cap).
    """

    resolution: tuple[int, int] = DEFAULT_RESOLUTION
    workers: int = 0
    queue_size: int = 8
    backend: str = "auto"
    device: str = "cpu"
    precision: str = "f32"
    batch: int = 1
    batch_timeout: float = 0.0
    model: str = DEFAULT_MODEL
    graph: Path | None = None
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    preset: str = "veryfast"
    formats: tuple[str, ...] = ("jsonl",)
    track: bool = True
    track_memory: float = DEFAULT_MEMORY
    audio: bool = True
    video: bool = True
    frame_step: int = 1
    start: float | None = None
    end: float | None = None
    max_fps: float | None = None

    def __post_init__(self) -> None:
        _check_resolution(self.resolution)
        _check_workers(self.workers)
        if not 1 <= self.queue_size <= MAX_QUEUE_SIZE:
            raise InputError(f"--queue-size {self.queue_size}: must be 1 to {MAX_QUEUE_SIZE} "
                             "(every slot of every queue can hold a decoded frame)")
        if not 1 <= self.batch <= MAX_BATCH:
            raise InputError(f"--batch {self.batch}: must be 1 to {MAX_BATCH} frames "
                             "(each one's maps stay in memory until the call returns)")
        if not 0 <= self.batch_timeout < math.inf:  # also false for nan
            raise InputError(f"--batch-timeout {self.batch_timeout}: must be a finite number, "
                             "0 or more")
        if self.precision not in ("f32", "auto", "int8"):
            raise InputError(f"--precision {self.precision!r}: expected f32, auto or int8")
        if self.precision == "int8" and self.backend not in ("auto", "openvino"):
            raise InputError(f"--precision int8 runs on the OpenVINO backend only, not --backend {self.backend}")
        if self.preset not in X264_PRESETS:
            raise InputError(f"--preset {self.preset!r}: expected one of x264's presets: "
                             f"{', '.join(X264_PRESETS)}")
        if self.graph is not None and not Path(self.graph).is_dir():  # a folder: a compiled model
            if not Path(self.graph).exists():
                raise InputError(f"--graph {self.graph}: no such file")
            check_frozen_graph(Path(self.graph))
        _check_selection(self.frame_step, self.start, self.end, self.max_fps)
        try:
            check_memory(self.track_memory)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def max_cpu_workers() -> int:
    """The most CPU model copies a run may ask for on this machine."""
    return max(8, 2 * usable_cores())


def _check_resolution(resolution: tuple[int, int]) -> None:
    w, h = resolution
    if w % STRIDE or h % STRIDE or w <= 0 or h <= 0:
        raise InputError(f"resolution {w}x{h}: width and height must be positive multiples of {STRIDE}")
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise InputError(f"--resolution {w}x{h}: each side must be {MIN_SIDE} to {MAX_SIDE} pixels "
                         f"(the network's maps are 1/{STRIDE} of it: smaller finds nobody, larger "
                         "needs gigabytes per model copy)")


def _check_selection(frame_step: int, start: float | None, end: float | None,
                     max_fps: float | None) -> None:
    """Frame stride, time range and rate cap: one line naming the option."""
    if isinstance(frame_step, bool) or not isinstance(frame_step, int) or frame_step < 1:
        raise InputError(f"--frame-step {frame_step}: must be a whole number, 1 or more")
    if start is not None and not 0 <= start < math.inf:
        raise InputError(f"--start {start}: must be a finite number of seconds, 0 or more")
    if end is not None and not 0 < end < math.inf:
        raise InputError(f"--end {end}: must be a finite number of seconds, more than 0")
    if start is not None and end is not None and not start < end:
        raise InputError(f"--end {end}: must be after --start {start}")
    if max_fps is not None and not 0 < max_fps < math.inf:
        raise InputError(f"--max-fps {max_fps}: must be a positive number of frames per second")


def _check_workers(workers: int) -> None:
    if workers < 0:
        raise InputError(f"--workers {workers}: must be at least 1 (or 0 to choose)")
    most = max_cpu_workers()
    if workers > most:
        raise InputError(f"--workers {workers}: at most {most} CPU model copies on this machine "
                         f"({usable_cores()} cores; more only wait for a core and take memory)")


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
