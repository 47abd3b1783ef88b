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

The inference pool runs the engine that ``stages.jobs.engine.plan_engine``
chose (devices, backend, model file); the builder only builds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.backend import BackendConfig
from models.devices import usable_cores
from models.registry import get_model
from pipeline import Pipeline, Policy
from stages.sources.video import open_source
from stages.sources.image import ImageFileSource
from stages.sources.probe import is_image
from stages.frames import Frame, Result
from stages.jobs.engine import Engine
from stages.pose.network import worker_initializer
from stages.outputs.file_set import FileOutputs, output_stem
from stages.outputs.manifest import input_identity, output_settings
from stages.outputs.resume import Work, resume_settings, starts_piece
from stages.pose.draw import Renderer
from stages.pose.resize import NetInput, Resizer
from stages.pose.tracking import PoseTracker
from stages.settings import JobConfig

log = logging.getLogger(__name__)

Sink = tuple[str, Callable[[Result], Result]]  # stage name, step (returns its result)
Feed = tuple[Iterable[Frame], Callable[[], None] | None]  # frames, and how to stop them early


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
                   live: LiveQueues | None = None, tracker: PoseTracker | None = None) -> Pipeline:
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
        tracker: The tracker of the ``track`` step, when the run needs its state
            (``resumable_tracker``); default: a new one.
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
        pipeline.map("track", tracker or PoseTracker(memory=config.track_memory))
    if config.video or pictures:
        pipeline.map("render", Renderer())
    for stage, step in sinks:  # e.g. the preview in its own stage: JPEG encoding never slows the writer
        pipeline.map(stage, step)
    return pipeline


def _add_inference(pipeline: Pipeline, config: JobConfig, engine: Engine, freshest: dict) -> None:
    """Resize (its output channel per ``freshest``: live frames are dropped right
    before the pool rather than queued for it) and the pool, one copy per slot."""
    plan = engine.plan
    threads = max(1, usable_cores() // plan.workers) if plan.kind == "cpu" else 0
    backend = BackendConfig(backend=plan.backend, graph=engine.graph, model=get_model(config.model),
                            threads=threads, precision=engine.precision,
                            resolution=config.resolution)
    init = worker_initializer(backend, plan.slots, config.postprocess, batch=config.batch,
                              on_load=engine.record.loaded)
    log.info("inference: %d worker(s) on %s, backend %s", plan.workers, ", ".join(plan.slots),
             plan.backend)
    (pipeline.map("resize", Resizer(config.resolution), **freshest)
     .pool("inference", init, workers=plan.workers, batch=config.batch,
           batch_timeout=config.batch_timeout))


def resumable_tracker(config: JobConfig) -> PoseTracker | None:
    """The tracker of a file or batch run, keeping its state at every cut of the outputs
    for their checkpoints (``stages.outputs.resume``); None without tracking."""
    if not config.track:
        return None
    tracker = PoseTracker(memory=config.track_memory)
    tracker.keep_states(starts_piece)
    return tracker


def open_work(outdir: Path, input: Path, config: JobConfig, *, number: int = 1,
              restart: bool = False) -> Work | None:
    """The work folder of a video input's outputs (``stages.outputs.resume``), with the
    checkpoint to resume from if there is one; None for a still image.

    Args:
        outdir: The input's output folder.
        input: The input.
        config: The run's settings.
        number: The input's place in the run (``FileOutputs``).
        restart: Start over even where a checkpoint fits (``--force``).

    Raises:
        OutputError: The work folder cannot be made.
    """
    if is_image(input) or not Path(input).is_file():
        return None
    settings = resume_settings(output_settings(config), frame_step=config.frame_step,
                               start=config.start, end=config.end,
                               video_stream=config.video_stream, number=number)
    return Work.open(outdir, output_stem(input), input_identity(Path(input)), settings,
                     restart=restart)


def open_file_source(path: Path, config: JobConfig, *, name: str | None = None,
                     batch: bool = False, work: Work | None = None):
    """A file source (video or image) with the run's frame stride and time range.

    In a batch (``batch``), stride, range and video stream apply to its
    videos; its images (by extension) are taken whole, so one setting serves
    a mixed folder. With the ``work`` of a resumed run (``open_work``), it
    yields the frames from its checkpoint's next frame on.

    Raises:
        InputError: The file cannot be read, has no such video stream, or
            (outside a batch) a stride, range or video stream is given for a
            still image.
    """
    if batch and is_image(path):
        return open_source(path, name=name)
    checkpoint = work.checkpoint if work is not None else None
    return open_source(path, name=name, frame_step=config.frame_step, start=config.start,
                       end=config.end, video_stream=config.video_stream,
                       resume_at=checkpoint.next_index if checkpoint else None,
                       resume_pts=checkpoint.next_pts if checkpoint else None)


def file_outputs(outdir: Path, input: Path, source, config: JobConfig, *,
                 clean: bool = True, number: int = 1, work: Work | None = None,
                 publish_partial: bool = True, tracker: PoseTracker | None = None
                 ) -> FileOutputs:
    """The output set of one file (see ``stages.outputs.file_set``), as the run's settings
    ask; ``number`` is the input's place in the run, ``work`` its work folder,
    ``publish_partial`` and ``tracker`` as ``FileOutputs`` takes them."""
    return FileOutputs(outdir, input, source.info, preset=config.preset,
                       still=isinstance(source, ImageFileSource), formats=config.formats,
                       audio=config.audio, clean=clean, video=config.video,
                       audio_range=config.start is not None or config.end is not None,
                       number=number, work=work, publish_partial=publish_partial,
                       track_state=tracker.saved_state if tracker is not None else None)


def _source_of(frame: Frame) -> str:
    return frame.source


def _source_of_input(item: NetInput) -> str:
    return item.frame.source
