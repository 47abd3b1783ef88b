"""Exceptions of the runtime."""


class PipelineError(Exception):
    """Base of the runtime's own errors."""


class EndOfStream(PipelineError):
    """The producer closed the channel and every item was taken."""


class Cancelled(PipelineError):
    """The channel was cancelled: the pipeline is stopping; give up at once."""


class PoolInitError(PipelineError, RuntimeError):
    """A pool worker's initializer failed (its model did not load)."""
