"""The Python API, for programs that embed the pipeline.

    from stages.api import results, run
    from stages.job import JobConfig

    for result in results("clip.mp4", config=JobConfig(workers=2)):
        print(result.frame.index, result.frame.pts, len(result.people))

    summary = run("clip.mp4", "out")            # the same as the command line

``results`` yields one ``stages.frames.Result`` per frame, in frame order,
and writes nothing; leaving the loop early stops every thread. It takes a
file, or a live source (rtsp://, http(s)://, /dev/videoN, lavfi:...), which
runs until the loop is left, in the live latency mode of the command line
(short queues that drop the oldest frame). The pipeline is the command
line's (``stages.builder``): the same ``JobConfig`` means the same here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

from stages.builder import LiveQueues, build_pipeline, check_mode, open_file_source, plan_engine
from stages.errors import UsageError
from stages.frames import Result
from stages.job import FileJob, JobConfig, JobSummary
from stages.live import LiveSource, is_live
from stages.live_job import LiveConfig


def results(input: str | Path, *, config: JobConfig | None = None, render: bool = False,
            live: LiveConfig | None = None) -> Iterator[Result]:
    """Yield the people of every frame of ``input``, in order.

    Args:
        input: A video or image file, or a live source.
        config: Model, device and pipeline settings (``video`` is ``render``'s
            business here: nothing is written).
        render: Also draw the skeletons (``Result.image``).
        live: Settings of a live source (transport, stall timeout, queue).

    Raises:
        InputError: The input cannot be read.
        UsageError: A setting that means nothing for this kind of input.
        Exception: The first failure of any stage.
    """
    config = config or JobConfig()
    streaming = is_live(str(input))
    check_mode(config, streaming)
    if streaming:
        live = live or LiveConfig()
        _check_nothing_written(live)
        source = LiveSource(str(input), **live_source_options(config, live))
    else:
        source = open_file_source(Path(input), config)
    with source:
        engine = plan_engine(config, latency=streaming)
        pipeline = build_pipeline(dataclasses.replace(config, video=False), engine,
                                  [(source, source.close)], name=Path(str(input)).name,
                                  pictures=render,
                                  live=LiveQueues(queue_size=live.queue_size) if streaming else None)
        with pipeline:
            yield from pipeline


def _check_nothing_written(live: LiveConfig) -> None:
    """Settings of what a live run writes (``LiveJob``) mean nothing here.

    Raises:
        UsageError: One line naming the first such setting given.
    """
    default = LiveConfig()
    for field, flag in (("record", "--record"), ("retain", "--retain"), ("max_disk", "--max-disk")):
        if getattr(live, field) != getattr(default, field):
            raise UsageError(f"{flag} (LiveConfig.{field}) is for live runs that write segments; "
                             "results() writes nothing")


def live_source_options(config: JobConfig, live: LiveConfig) -> dict:
    """``LiveSource`` keywords from the run's settings."""
    return {"transport": live.transport, "stall_timeout": live.stall_timeout,
            "max_retries": live.max_retries, "max_fps": config.max_fps}


def run(input: str | Path, outdir: str | Path = "out", *, config: JobConfig | None = None) -> JobSummary:
    """Process a file into ``outdir`` as the command line does; return what was done."""
    return FileJob(Path(input), Path(outdir), config or JobConfig()).run()
