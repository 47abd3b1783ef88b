"""One file through the whole pipeline: decode, resize, inference pool, render, write."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from models.backend import BackendConfig
from models.fetch import fetch_model
from models.registry import DEFAULT_MODEL, get_model
from pipeline import Pipeline
from stages.decode import ImageFileSource, open_source
from stages.errors import InputError
from stages.frames import Result
from stages.inference import worker_initializer
from stages.outputs import FileOutputs
from stages.postprocess import PostprocessConfig
from stages.render import Renderer
from stages.resize import DEFAULT_RESOLUTION, STRIDE, Resizer

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class JobConfig:
    """Settings of a run; the CLI (and later a config file) fill it.

    Attributes:
        resolution: Network input (width, height), multiples of 8.
        workers: Inference workers, one model copy each.
        queue_size: Capacity of every queue between stages.
        backend: Inference backend name.
        device: Device of the workers ("cpu", "gpu:0", ...).
        model: Registry name of the graph.
        graph: A graph file to use instead of fetching ``model``.
        postprocess: Post-network settings.
        preset: x264 preset of the annotated video.
    """

    resolution: tuple[int, int] = DEFAULT_RESOLUTION
    workers: int = 1
    queue_size: int = 8
    backend: str = "tf"
    device: str = "cpu"
    model: str = DEFAULT_MODEL
    graph: Path | None = None
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        w, h = self.resolution
        if w <= 0 or h <= 0 or w % STRIDE or h % STRIDE:
            raise InputError(f"resolution {w}x{h}: width and height must be positive multiples of {STRIDE}")
        if self.workers < 1:
            raise InputError(f"--workers {self.workers}: must be at least 1")
        if self.queue_size < 1:
            raise InputError(f"--queue-size {self.queue_size}: must be at least 1")


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a finished (or interrupted) run did."""

    input: Path
    outputs: tuple[Path, ...]
    frames_read: int
    frames_written: int
    truncated: bool
    interrupted: bool
    seconds: float

    @property
    def fps(self) -> float:
        """Frames written per second of wall time."""
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0


def resolve_graph(config: JobConfig) -> Path:
    """The graph file to load: ``config.graph``, else the fetched registry model."""
    if config.graph is not None:
        if not Path(config.graph).is_file():
            raise InputError(f"--graph {config.graph}: no such file")
        return Path(config.graph)
    return fetch_model(get_model(config.model))


class FileJob:
    """Processes one video or image file into OUTDIR.

    Args:
        input: The file.
        outdir: Directory for the outputs (created).
        config: Run settings.
    """

    def __init__(self, input: Path, outdir: Path, config: JobConfig) -> None:
        self.input = Path(input)
        self.outdir = Path(outdir)
        self.config = config
        self._cancelled = threading.Event()
        self._pipeline: Pipeline | None = None

    def run(self, on_result: Callable[[Result], None] | None = None) -> JobSummary:
        """Run to the end (or until ``cancel``); outputs are complete files either way.

        Raises:
            InputError: The input cannot be read; nothing is written.
            Exception: The first failure of any stage.
        """
        start = time.perf_counter()
        written = 0
        with open_source(self.input) as source:
            graph = resolve_graph(self.config)
            with FileOutputs(self.outdir, self.input, source.info, preset=self.config.preset,
                             still=isinstance(source, ImageFileSource)) as outputs:
                pipeline = self._build(source, graph, outputs)
                with pipeline:
                    self._pipeline = pipeline
                    if self._cancelled.is_set():
                        pipeline.cancel()
                    for result in pipeline:
                        written += 1
                        if on_result is not None:
                            on_result(result)
                self._log_stages(pipeline)
            return JobSummary(self.input, outputs.paths, source.frames_read, written,
                              source.truncated, self._cancelled.is_set(),
                              time.perf_counter() - start)

    def cancel(self) -> None:
        """Stop soon: frames in flight are dropped, outputs keep the frames written."""
        self._cancelled.set()
        if self._pipeline is not None:
            self._pipeline.cancel()

    def _build(self, source, graph: Path, outputs: FileOutputs) -> Pipeline:
        c = self.config
        backend = BackendConfig(backend=c.backend, graph=graph, model=get_model(c.model), device=c.device)
        init = worker_initializer(backend, [c.device], c.postprocess)
        return (Pipeline(queue_size=c.queue_size, name=self.input.name)
                .source("decode", source, stop=source.close)
                .map("resize", Resizer(c.resolution))
                .pool("inference", init, workers=c.workers)
                .map("render", Renderer())
                .map("write", outputs.write))

    @staticmethod
    def _log_stages(pipeline: Pipeline) -> None:
        for s in pipeline.statistics().stages:
            log.debug("stage %-9s items=%d mean=%.1f ms", s.name, s.items, 1000 * s.mean_seconds)
