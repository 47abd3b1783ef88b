"""The inference backend protocol and the registry of backends by name."""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from models.registry import ModelSpec
from pipeline.errors import InputError

log = logging.getLogger(__name__)
_warned: set[str] = set()
_warned_lock = threading.Lock()


@runtime_checkable
class Backend(Protocol):
    """Runs the pose network on a batch of network-sized images.

    ``infer`` takes [N, H, W, 3] uint8 BGR and returns [N, H/8, W/8, C]
    float32 maps (19 heatmaps then 38 PAFs).

    A backend may also set ``precision``: the arithmetic its copy actually
    runs ("f32", "bf16", "tf32", ...), and ``cache``: what the model cache
    did for it ("hit": the converted model and compiled blob came from the
    cache; "built": they were made now and stored; "off": the cache could not
    be written, so the next run converts again). The run's summary reports both.
    """

    name: str

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class BackendConfig:
    """What a backend needs to load one model copy.

    Attributes:
        backend: Registry name ("tf", "openvino", "neuron").
        graph: Frozen graph file (for "neuron": the compiled model).
        model: Tensor names and layout.
        device: Device the copy runs on ("cpu", "gpu:0", "neuron:2").
        threads: CPU threads this copy may use (0: the engine's default).
        precision: One of ``models.precision.PRECISIONS``: "f32" for full
            float32 arithmetic; "int8" and "bf16" (OpenVINO only); "auto" for
            the fastest precision that passes the accuracy gate (OpenVINO:
            int8; TensorFlow: TensorFloat-32 on NVIDIA Ampere and later GPUs).
        resolution: Network input (width, height) every call will have, when
            known: engines that compile for one shape use it.
    """

    backend: str = "tf"
    graph: Path
    model: ModelSpec
    device: str = "cpu"
    threads: int = 0
    precision: str = "f32"
    resolution: tuple[int, int] | None = None


# name -> "module:Class"; imported only when chosen, so optional engines stay optional.
# A name that is itself "module:Class" loads a backend from outside this package.
BACKENDS: dict[str, str] = {
    "tf": "models.tf_backend:TensorFlowBackend",
    "openvino": "models.openvino_backend:OpenVINOBackend",
    "neuron": "models.neuron_backend:NeuronBackend",
}


def load_backend(config: BackendConfig) -> Backend:
    """Construct the backend named in ``config``.

    Raises:
        InputError: Unknown backend name.
    """
    target = BACKENDS.get(config.backend, config.backend)
    module, _, cls = target.partition(":")
    if not cls:
        raise InputError(f"--backend {config.backend!r}: unknown; known: {', '.join(BACKENDS)}, "
                         "or module:Class")
    try:
        factory = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"--backend {config.backend!r}: cannot load {target} ({exc})") from exc
    return factory(config)


def warn_once(key: str, message: str) -> None:
    """Log ``message`` at WARNING the first time ``key`` is seen in this process.

    For what every model copy would otherwise repeat: an engine that fell
    back to another precision, a cache it could not use.
    """
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning("%s", message)
