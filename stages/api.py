"""The Python API, for programs that embed the pipeline.

    from stages import JobConfig, results, run

    people = {}
    for result in results("clip.mp4", config=JobConfig(workers=2)):
        people[result.frame.pts] = len(result.people)

    summary = run("clip.mp4", "out")            # the same as the command line

``results`` yields one ``stages.frames.Result`` per frame, in frame order,
and writes nothing; leaving the loop early stops every thread. It takes a
file, or a live source (rtsp://, http(s)://, /dev/videoN, lavfi:...), which
runs until the loop is left, in the live latency mode of the command line
(short queues that drop the oldest frame). The pipeline is the command
line's (``stages.jobs.builder``): the same ``JobConfig`` means the same here.
With ``LiveConfig.mqtt`` a live source's results and states are published
as the command line's ``--mqtt`` does (``stages.publish.mqtt``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator

from stages.jobs.base import JobSummary
from stages.jobs.builder import LiveQueues, build_pipeline, open_file_source
from stages.jobs.engine import plan_engine
from stages.options import FILE, IMAGE, LIVE, check_settings
from stages.frames import Result
from stages.jobs.file_job import FileJob
from stages.errors import UsageError
from stages.settings import JobConfig
from stages.sources.camera import camera_options
from stages.sources.probe import is_image
from stages.sources.credentials import mask_credentials
from stages.sources.spec import is_live
from stages.sources.stream import LiveSource
from stages.publish.feed import LiveFeed
from stages.settings import LiveConfig
from stages.publish.mqtt import MqttPublisher
from stages.publish.monitor import SourceMonitor


def results(input: str | os.PathLike, *, config: JobConfig | None = None, render: bool = False,
            live: LiveConfig | None = None) -> Iterator[Result]:
    """Yield the people of every frame of ``input``, in order.

    The arguments are checked when ``results`` is called, before any thread
    starts or model loads; the input is opened on the first ``next``.

    Args:
        input: A video or image file, or a live source (a ``str`` or
            ``os.PathLike``; a camera is ``"/dev/video0"``, never a number).
        config: Model, device and pipeline settings (``video`` is ``render``'s
            business here: nothing is written).
        render: Also draw the skeletons (``Result.image``).
        live: Settings of a live source (transport, stall timeout, queue, camera
            size, rate and format, mirror).

    Raises:
        InputError: The input cannot be read.
        UsageError: An input, config or live that is not of its type, or a
            setting that means nothing for this kind of input (at the call).
        Exception: The first failure of any stage.
    """
    _check_input(input, "results")
    config = _check_config(config)
    if live is not None and not isinstance(live, LiveConfig):
        raise UsageError(f"results(live={live!r}): expected a LiveConfig, not {type(live).__name__}")
    streaming = is_live(os.fspath(input))
    check_settings(LIVE if streaming else IMAGE if is_image(input) else FILE, config, live,
                   writes=False)
    return _results(input, config, render, live, streaming)


def _results(input: str | os.PathLike, config: JobConfig, render: bool, live: LiveConfig | None,
             streaming: bool) -> Iterator[Result]:
    publishing = None
    if streaming:
        live = live or LiveConfig()
        publishing = _Publishing(live) if live.mqtt else None
        source = LiveSource(os.fspath(input), **live_source_options(config, live),
                            on_event=publishing.on_event if publishing else None)
    else:
        source = open_file_source(Path(input), config)
    with source:
        engine = plan_engine(config, latency=streaming)
        pipeline = build_pipeline(dataclasses.replace(config, video=False), engine,
                                  [(source, source.close)], name=Path(os.fspath(input)).name,
                                  pictures=render,
                                  sinks=[("publish", publishing.step)] if publishing else (),
                                  live=LiveQueues(queue_size=live.queue_size) if streaming else None)
        try:
            if publishing:
                publishing.start(source.name)
            with pipeline:
                yield from pipeline
        finally:
            if publishing:
                publishing.close()


def live_source_options(config: JobConfig, live: LiveConfig) -> dict:
    """``LiveSource`` keywords from the run's settings."""
    return {"transport": live.transport, "stall_timeout": live.stall_timeout,
            "max_retries": live.max_retries, "max_fps": live.max_fps,
            "camera": camera_options(size=live.camera_size, fps=live.camera_fps,
                                     format=live.camera_format),
            "mirror": live.mirror}


def run(input: str | os.PathLike, outdir: str | os.PathLike = "out", *,
        config: JobConfig | None = None) -> JobSummary:
    """Process a file into ``outdir`` as the command line does; return what was done.

    Raises:
        UsageError: ``input`` is a live source (``run`` takes files; use
            ``results``), or an argument is not of its type (at the call,
            before any model loads).
        InputError: The file cannot be read.
    """
    _check_input(input, "run")
    if is_live(os.fspath(input)):
        raise UsageError(f"run() takes files; {mask_credentials(os.fspath(input))} is a live source "
                         "(use results(), or the command line to record it)")
    if not isinstance(outdir, (str, os.PathLike)):
        raise UsageError(f"run(outdir={outdir!r}): expected a folder path (str or os.PathLike), "
                         f"not {type(outdir).__name__}")
    return FileJob(Path(input), Path(outdir), _check_config(config)).run()


def _check_input(input: object, function: str) -> None:
    """``input`` is a path or a source string.

    Raises:
        UsageError: One line naming it, its type and what is expected.
    """
    if not isinstance(input, (str, os.PathLike)):
        raise UsageError(f"{function}({input!r}): expected a file path or a source string "
                         f"(str or os.PathLike), not {type(input).__name__}")


def _check_config(config: object) -> JobConfig:
    """``config``, or the default settings for None.

    Raises:
        UsageError: ``config`` is not a ``JobConfig``.
    """
    if config is None:
        return JobConfig()
    if not isinstance(config, JobConfig):
        raise UsageError(f"config={config!r}: expected a JobConfig, not {type(config).__name__}")
    return config


class _Publishing:
    """``LiveConfig.mqtt`` for ``results``: the source's states and results go to MQTT.

    Raises:
        InputError: A bad URL, or paho-mqtt is not installed (at once).
    """

    def __init__(self, live: LiveConfig) -> None:
        self.live = live
        self.publisher = MqttPublisher(live.mqtt)
        self.feed = LiveFeed()
        self.monitors: dict[str, SourceMonitor] = {}

    def start(self, name: str) -> None:
        self.monitors[name] = SourceMonitor(name, self.live.stall_timeout)
        self.feed.subscribe(self.publisher.start(self.monitors))

    def on_event(self, event) -> None:
        monitor = self.monitors.get(event.source)
        if monitor is not None:
            monitor.event(event)

    def step(self, result: Result) -> Result:
        self.monitors[result.frame.source].frame_done(result)
        return self.feed.publish(result)

    def close(self) -> None:
        for monitor in self.monitors.values():
            monitor.stopped()
        self.feed.close()
