"""Exceptions of the runtime, and the project's own error hierarchy.

``PosestreamError`` and its subclasses live here, at the bottom of the
dependency graph, so that ``models/`` and ``stages/`` raise the same types
without ``models/`` importing ``stages/`` (``stages.errors`` re-exports them).
Each subclasses the matching built-in so callers may catch either.
"""


class PipelineError(Exception):
    """Base of the runtime's own errors."""


class EndOfStream(PipelineError):
    """The producer closed the channel and every item was taken."""


class Cancelled(PipelineError):
    """The channel was cancelled: the pipeline is stopping; give up at once."""


class PoolInitError(PipelineError, RuntimeError):
    """A pool worker's initializer failed (its model did not load)."""


class PosestreamError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(PosestreamError, ValueError):
    """An input (file, stream, option) cannot be used; the message says why."""


class InputNotFoundError(InputError, FileNotFoundError):
    """An input path does not exist."""


class OutputError(PosestreamError, OSError):
    """An output cannot be written."""


class ModelError(PosestreamError, RuntimeError):
    """A model file cannot be fetched, verified or loaded."""


class UsageError(InputError):
    """An option given where it means nothing (e.g. a file-only option on a live
    source); the command line exits 2 for it, as for other usage errors."""
