"""posestream's Python API: pose estimation over files and live streams.

    import stages

    config = stages.JobConfig(workers=2)
    for result in stages.results("clip.mp4", config=config):
        print(result.frame.pts, len(result.people))

    summary = stages.run("clip.mp4", "out")    # the same as the command line

The names below load on first use (PEP 562), so ``import stages`` itself
loads nothing heavy (numpy, OpenCV, PyAV, a model runtime); their homes are
the modules in ``_HOMES``. The subpackages hold the stages by role
(``sources``, ``pose``, ``outputs``, ``jobs``, ...).
"""

from __future__ import annotations

import importlib
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without loading typing; type checkers take it as True

# Before numpy loads: a multi-threaded BLAS fighting the inference threads for
# the cores stalls the post-network matrix products (see
# stages.jobs.engine.pin_blas_threads). A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

if TYPE_CHECKING:  # what type checkers and editors see; __getattr__ loads the same at run time
    from stages.api import results, run
    from stages.errors import (InputError, InputNotFoundError, ModelError, OutputError,
                               PosestreamError, UsageError)
    from stages.frames import Frame, Person, Result
    from stages.jobs.base import JobSummary
    from stages.settings import JobConfig, LiveConfig, PostprocessConfig

__all__ = ["Frame", "InputError", "InputNotFoundError", "JobConfig", "JobSummary", "LiveConfig",
           "ModelError", "OutputError", "Person", "PosestreamError", "PostprocessConfig", "Result",
           "UsageError", "results", "run"]

_HOMES = {
    "results": "stages.api", "run": "stages.api",
    "JobConfig": "stages.settings", "LiveConfig": "stages.settings",
    "PostprocessConfig": "stages.settings",
    "Frame": "stages.frames", "Person": "stages.frames", "Result": "stages.frames",
    "JobSummary": "stages.jobs.base",
    "PosestreamError": "stages.errors", "InputError": "stages.errors",
    "InputNotFoundError": "stages.errors", "OutputError": "stages.errors",
    "ModelError": "stages.errors", "UsageError": "stages.errors",
}


def __getattr__(name: str) -> object:
    """Load a public name from its home module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
