"""The Python API, for programs that embed the pipeline.

    from stages.api import results, run
    from stages.job import JobConfig

    for result in results("clip.mp4", config=JobConfig(workers=2)):
        print(result.frame.index, result.frame.pts, len(result.people))

    summary = run("clip.mp4", "out")            # the same as the command line

``results`` yields one ``stages.frames.Result`` per frame, in frame order,
and writes nothing; leaving the loop early stops every thread. It takes a
file, or a live source (rtsp://, http(s)://, /dev/videoN, lavfi:...), which
runs until the loop is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from models.devices import plan_devices
from pipeline import Pipeline, Policy
from stages.decode import open_source
from stages.frames import Result
from stages.job import FileJob, JobConfig, JobSummary, add_inference, model_file
from stages.live import LiveSource, is_live
from stages.render import Renderer


def results(input: str | Path, *, config: JobConfig | None = None,
            render: bool = False) -> Iterator[Result]:
    """Yield the people of every frame of ``input``, in order.

    Args:
        input: A video or image file, or a live source.
        config: Model, device and pipeline settings.
        render: Also draw the skeletons (``Result.image``).

    Raises:
        InputError: The input cannot be read.
        Exception: The first failure of any stage.
    """
    config = config or JobConfig()
    live = is_live(str(input))
    source = LiveSource(str(input)) if live else open_source(input)
    with source:
        plan = plan_devices(config.device, workers=config.workers, backend=config.backend)
        pipeline = Pipeline(queue_size=config.queue_size, name=Path(str(input)).name)
        pipeline.source("decode", source, stop=source.close,
                        policy=Policy.DROP_OLDEST if live else Policy.BLOCK)
        add_inference(pipeline, config, plan, model_file(config, plan))
        if render:
            pipeline.map("render", Renderer())
        with pipeline:
            yield from pipeline


def run(input: str | Path, outdir: str | Path = "out", *, config: JobConfig | None = None) -> JobSummary:
    """Process a file into ``outdir`` as the command line does; return what was done."""
    return FileJob(Path(input), Path(outdir), config or JobConfig()).run()
