"""The one pipeline of every mode, assembled in one place.

    sources --> resize --> inference pool --> track --> render --> sinks

File, image, batch, live, cluster and API runs differ only in the sources
they give (one file, several files in lanes, live streams) and the sinks
they want (keypoint files, segments, the preview, the caller's loop). The
steps between are the same everywhere: the same options mean the same.
Steps are left out when nothing needs them: ``track`` without
``JobConfig.track``, ``render`` when no sink wants pictures (``--no-video``
and no preview).

Live sources run in latency mode (``LiveQueues``): every queue is short, the
sources' queues and the one right before the pool drop the oldest frame per
source, so the pool always takes the freshest frame.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.backend import Backend, BackendConfig
from models.devices import DevicePlan, plan_devices, usable_cores
from models.fetch import fetch_model
from models.registry import get_model
from pipeline import Pipeline, Policy
from stages.sources.video import open_source
from stages.sources.image import ImageFileSource
from stages.sources.probe import IMAGE_EXTENSIONS
from stages.errors import InputError, UsageError
from stages.frames import Frame, Result
from stages.pose.network import worker_initializer
from stages.outputs.file_set import FileOutputs
from stages.pose.draw import Renderer
from stages.pose.resize import NetInput, Resizer
from stages.pose.tracking import PoseTracker
from stages.settings import JobConfig

log = logging.getLogger(__name__)

Sink = tuple[str, Callable[[Result], Result]]  # stage name, step (returns its result)
Feed = tuple[Iterable[Frame], Callable[[], None] | None]  # frames, and how to stop them early


class EngineRecord:
    """What ran the network, so that a run's results can be traced to it.

    Filled from the plan, then from each model copy as it loads (on the pool's
    threads): the precision is what the copies report, since "auto" resolves
    per machine (bf16 on one CPU, f32 on another).

    Args:
        config: The run's settings.
        plan: The devices and backend chosen for it.
    """

    def __init__(self, config: JobConfig, plan: DevicePlan) -> None:
        self.backend = plan.backend
        self.devices = plan.slots
        self.model = config.model if config.graph is None else str(config.graph)
        self.resolution = config.resolution
        self.requested = config.precision
        self.host = socket.gethostname()
        self._precisions: set[str] = set()
        self._caches: set[str] = set()
        self._lock = threading.Lock()

    def loaded(self, backend: Backend) -> None:
        """Note one loaded copy's precision and what the model cache did for it."""
        with self._lock:
            self._precisions.add(str(getattr(backend, "precision", None) or self.requested))
            cache = getattr(backend, "cache", None)
            if cache:
                self._caches.add(str(cache))

    @property
    def cache(self) -> str | None:
        """The model cache: "off" if any copy ran without it, else "built" if any
        copy filled it, else "hit"; None for engines that keep no cache (TensorFlow)."""
        with self._lock:
            return next((state for state in ("off", "built", "hit") if state in self._caches), None)

    @property
    def precision(self) -> str:
        """The copies' precision ("/"-joined if they differ); "" before any loaded."""
        with self._lock:
            return "/".join(sorted(self._precisions))

    def as_dict(self) -> dict:
        """JSON-ready record."""
        w, h = self.resolution
        return {"backend": self.backend, "precision": self.precision,
                "requested_precision": self.requested, "model_cache": self.cache,
                "devices": list(self.devices), "model": self.model, "resolution": f"{w}x{h}",
                "host": self.host}

    def __str__(self) -> str:
        w, h = self.resolution
        n = len(self.devices)
        where = ", ".join(dict.fromkeys(self.devices))
        uncached = ", model cache off" if self.cache == "off" else ""
        return (f"{self.backend} {self.precision or self.requested} on {where} "
                f"({n} worker{'s' if n != 1 else ''}), {self.model} at {w}x{h}{uncached}")


@dataclass(frozen=True, slots=True)
class Engine:
    """The devices, model file and record of one run's inference pool."""

    plan: DevicePlan
    graph: Path
    record: EngineRecord


def plan_engine(config: JobConfig, *, latency: bool = False) -> Engine:
    """Choose devices and backend and find the model file (fetched if needed).

    Args:
        config: The run's settings.
        latency: One copy on all cores rather than one per core (unless the
            user chose the workers): live sources, where each frame should be
            done soonest, and single pictures, which need only one copy.
    """
    pin_blas_threads()
    plan = plan_devices(config.device, workers=config.workers, backend=config.backend,
                        latency=latency)
    if config.precision == "int8" and plan.backend != "openvino":
        raise InputError(f"--precision int8 runs on the OpenVINO backend only, not {plan.backend} "
                         f"(on {plan.kind})")
    return Engine(plan, model_file(config, plan), EngineRecord(config, plan))


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveQueues:
    """Latency mode for live sources.

    Attributes:
        queue_size: Frames held per source before the oldest is dropped; also
            the most any later queue holds.
        on_drop: Called with each frame dropped (at the source or before the pool).
    """

    queue_size: int = 1
    on_drop: Callable[[Frame], None] | None = None


def build_pipeline(config: JobConfig, engine: Engine, feeds: Sequence[Feed], *, name: str,
                   sinks: Sequence[Sink] = (), pictures: bool = False, keyed: bool = False,
                   live: LiveQueues | None = None) -> Pipeline:
    """The pipeline from ``feeds`` through the steps to ``sinks``.

    Args:
        config: The run's settings.
        engine: From ``plan_engine``.
        feeds: One per source; frames carry their source's name.
        name: The pipeline's name (logs).
        sinks: Steps after the picture is drawn, in order (preview, write...).
        pictures: A sink wants drawn pictures even without ``config.video``.
        keyed: Merge the feeds fairly by source (several files or streams).
        live: Latency mode for live sources (None: never drop, backpressure).
    """
    size = config.queue_size if live is None else min(config.queue_size, live.queue_size)
    pipeline = Pipeline(queue_size=size, name=name)
    key = _source_of if keyed or live is not None else None
    if live is None:
        pipeline.sources("decode", list(feeds), key=key)
        freshest = {}
    else:
        pipeline.sources("capture", list(feeds), key=key, policy=Policy.DROP_OLDEST,
                         queue_size=live.queue_size, on_drop=live.on_drop)
        on_drop = live.on_drop
        freshest = {"policy": Policy.DROP_OLDEST, "key": _source_of_input, "queue_size": 1,
                    "on_drop": (lambda item: on_drop(item.frame)) if on_drop else None}
    _add_inference(pipeline, config, engine, freshest)
    if config.track:  # in frame order: after the ordered pool
        pipeline.map("track", PoseTracker(memory=config.track_memory))
    if config.video or pictures:
        pipeline.map("render", Renderer())
    for stage, step in sinks:  # e.g. the preview in its own stage: JPEG encoding never slows the writer
        pipeline.map(stage, step)
    return pipeline


def view_sinks(preview: Callable[[Result], Result] | None,
               show: Callable[[Result], Result] | None) -> list[Sink]:
    """The sinks that show the drawn pictures as they come, each in its own stage:
    the browser preview (``stages.serve.preview``) and the local window (``stages.display.window``)."""
    return [(stage, step) for stage, step in (("preview", preview), ("show", show)) if step]


def _add_inference(pipeline: Pipeline, config: JobConfig, engine: Engine, freshest: dict) -> None:
    """Resize (its output channel per ``freshest``: live frames are dropped right
    before the pool rather than queued for it) and the pool, one copy per slot."""
    plan = engine.plan
    threads = max(1, usable_cores() // plan.workers) if plan.kind == "cpu" else 0
    backend = BackendConfig(backend=plan.backend, graph=engine.graph, model=get_model(config.model),
                            threads=threads, precision=config.precision,
                            resolution=config.resolution)
    init = worker_initializer(backend, plan.slots, config.postprocess, batch=config.batch,
                              on_load=engine.record.loaded)
    log.info("inference: %d worker(s) on %s, backend %s", plan.workers, ", ".join(plan.slots),
             plan.backend)
    (pipeline.map("resize", Resizer(config.resolution), **freshest)
     .pool("inference", init, workers=plan.workers, batch=config.batch,
           batch_timeout=config.batch_timeout))


FILE_ONLY = (("--frame-step", "frame_step", 1), ("--start", "start", None), ("--end", "end", None))


def check_mode(config: JobConfig, live: bool) -> None:
    """Settings that mean nothing for live sources are an error, never ignored.

    Raises:
        UsageError: One line naming the option.
    """
    for option, name, default in FILE_ONLY if live else ():
        if getattr(config, name) != default:
            raise UsageError(f"{option} is for files and batches, not live sources")


def open_file_source(path: Path, config: JobConfig, *, name: str | None = None,
                     batch: bool = False):
    """A file source (video or image) with the run's frame stride and time range.

    In a batch (``batch``), stride and range apply to its videos; its images
    (by extension) are taken whole, so one setting serves a mixed folder.

    Raises:
        InputError: The file cannot be read, or (outside a batch) a stride or
            range is given for a still image.
    """
    if batch and Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        return open_source(path, name=name)
    return open_source(path, name=name, frame_step=config.frame_step, start=config.start,
                       end=config.end)


def file_outputs(outdir: Path, input: Path, source, config: JobConfig, *,
                 clean: bool = True) -> FileOutputs:
    """The output set of one file (see ``stages.outputs.file_set``), as the run's settings ask."""
    return FileOutputs(outdir, input, source.info, preset=config.preset,
                       still=isinstance(source, ImageFileSource), formats=config.formats,
                       audio=config.audio, clean=clean, video=config.video,
                       audio_range=config.start is not None or config.end is not None)


def model_file(config: JobConfig, plan: DevicePlan) -> Path:
    """What the backend loads: the compiled model for NeuronCores, else the graph file."""
    return compiled_model(config) if plan.kind == "neuron" else resolve_graph(config)


def compiled_model(config: JobConfig) -> Path:
    """The Neuron-compiled model of ``config.graph``, checked against the run's resolution."""
    if config.graph is None:
        raise InputError("--device neuron needs --graph COMPILED_DIR "
                         "(make one with: python -m models.compile_neuron --resolution WxH -o DIR)")
    from models.neuron_backend import check_resolution
    check_resolution(config.graph, config.resolution)
    return Path(config.graph)


def resolve_graph(config: JobConfig) -> Path:
    """The graph file to load: ``config.graph``, else the fetched registry model."""
    if config.graph is not None:
        if not Path(config.graph).is_file():
            raise InputError(f"--graph {config.graph}: no such file")
        return Path(config.graph)
    return fetch_model(get_model(config.model))


_BLAS_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                 "scipy_openblas_set_num_threads", "openblas_set_num_threads64_")


def pin_blas_threads() -> None:
    """One BLAS thread, in every mode (command line, API, cluster workers).

    A multi-threaded BLAS fighting the inference threads for the cores stalls
    the post-network matrix products (0.5 ms -> 20 ms seen). The environment
    variable works only before numpy loads (``run_stream`` and
    ``stages/__init__`` set it); here the loaded OpenBLAS is told directly.
    An explicit ``OPENBLAS_NUM_THREADS`` other than 1 is the user's choice
    and is kept.
    """
    if os.environ.get("OPENBLAS_NUM_THREADS", "1") != "1":
        return
    try:
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1] for line in maps
                    if "openblas" in line.rsplit("/", 1)[-1].lower() and ".so" in line}
    except OSError:  # not Linux: the environment variable has to do
        return
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(1)
                break


def _source_of(frame: Frame) -> str:
    return frame.source


def _source_of_input(item: NetInput) -> str:
    return item.frame.source
