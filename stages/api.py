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
from pathlib import Path
from typing import Iterator

from stages.jobs.base import JobSummary
from stages.jobs.builder import LiveQueues, build_pipeline, open_file_source
from stages.jobs.engine import plan_engine
from stages.options import FILE, IMAGE, LIVE, check_settings
from stages.frames import Result
from stages.jobs.file_job import FileJob
from stages.settings import JobConfig
from stages.sources.camera import camera_options
from stages.sources.probe import is_image
from stages.sources.spec import is_live
from stages.sources.stream import LiveSource
from stages.publish.feed import LiveFeed
from stages.settings import LiveConfig
from stages.publish.mqtt import MqttPublisher
from stages.publish.monitor import SourceMonitor


def results(input: str | Path, *, config: JobConfig | None = None, render: bool = False,
            live: LiveConfig | None = None) -> Iterator[Result]:
    """Yield the people of every frame of ``input``, in order.

    Args:
        input: A video or image file, or a live source.
        config: Model, device and pipeline settings (``video`` is ``render``'s
            business here: nothing is written).
        render: Also draw the skeletons (``Result.image``).
        live: Settings of a live source (transport, stall timeout, queue, camera
            size, rate and format, mirror).

    Raises:
        InputError: The input cannot be read.
        UsageError: A setting that means nothing for this kind of input.
        Exception: The first failure of any stage.
    """
    config = config or JobConfig()
    streaming = is_live(str(input))
    check_settings(LIVE if streaming else IMAGE if is_image(input) else FILE, config, live,
                   writes=False)
    publishing = None
    if streaming:
        live = live or LiveConfig()
        publishing = _Publishing(live) if live.mqtt else None
        source = LiveSource(str(input), **live_source_options(config, live),
                            on_event=publishing.on_event if publishing else None)
    else:
        source = open_file_source(Path(input), config)
    with source:
        engine = plan_engine(config, latency=streaming)
        pipeline = build_pipeline(dataclasses.replace(config, video=False), engine,
                                  [(source, source.close)], name=Path(str(input)).name,
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


def run(input: str | Path, outdir: str | Path = "out", *, config: JobConfig | None = None) -> JobSummary:
    """Process a file into ``outdir`` as the command line does; return what was done."""
    return FileJob(Path(input), Path(outdir), config or JobConfig()).run()


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
