"""The streaming runtime: bounded channels, stage threads, the worker pool,
ordering, shutdown and statistics. Knows nothing of pose or video codecs."""

from pipeline.channel import Channel, ChannelStatistics, Policy
from pipeline.errors import Cancelled, EndOfStream, PipelineError, PoolInitError
from pipeline.ordering import Reorderer
from pipeline.runner import Pipeline, PipelineStatistics, StageStatistics

__all__ = [
    "Cancelled", "Channel", "ChannelStatistics", "EndOfStream", "Pipeline",
    "PipelineError", "PipelineStatistics", "Policy", "PoolInitError", "Reorderer",
    "StageStatistics",
]
