"""AWS Inferentia (inf1) backend: a model compiled by ``models.compile_neuron``, one NeuronCore per copy.

tensorflow-neuron is imported only when a copy loads (``require_neuron``).
See ``models/neuron.py`` for the version targeted, the runtime variables and
how copies are placed on cores in one process.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from models.backend import BackendConfig
from models.neuron import CompiledModelInfo, parse_neuron_cores, placement_for, read_info, require_neuron
from pipeline.errors import InputError, ModelError

log = logging.getLogger(__name__)

# The loaded compiled model: float32 [N, H, W, 3] BGR 0..255 -> float32 [N, H/8, W/8, C].
CompiledModel = Callable[[np.ndarray], np.ndarray]

# One copy per core for the life of the process: a core, once placed, keeps its
# copy; later jobs in the same process reuse it instead of loading another.
_copies: dict[int, tuple[Path, CompiledModel]] = {}
_core_locks: dict[int, threading.Lock] = {}
_copies_lock = threading.Lock()


class NeuronBackend:
    """One copy of a compiled model on one NeuronCore.

    Args:
        config: ``graph`` is the compiled model (a SavedModel directory with its
            sidecar), ``device`` names one core (``neuron:N``).

    Raises:
        InputError: ``device`` does not name exactly one core.
        ModelError: Not a compiled model, tensorflow-neuron missing, or the load failed.
    """

    name = "neuron"
    precision = "as compiled"  # neuron-cc's choice (NEURON_CC_FLAGS at compile time)

    def __init__(self, config: BackendConfig) -> None:
        self.path = Path(config.graph).resolve()
        self.info = read_info(self.path)
        self.core = _one_core(config.device)
        spec = config.model
        if spec.channels != self.info.channels:
            raise ModelError(f"{self.path}: compiled with {self.info.channels} output channels; "
                             f"model {spec.name!r} has {spec.channels}")
        if spec.sha256 and spec.sha256 != self.info.source_sha256:
            log.warning("%s was compiled from a graph other than %s's (sha256 %s...)",
                        self.path, spec.name, self.info.source_sha256[:12])
        self._model: CompiledModel | None = _copy_on_core(self.core, self.path, self.info)
        log.debug("compiled model %s (%s, batch %d) on NeuronCore %d",
                  self.path, self.info.resolution, self.info.batch_size, self.core)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on [N, H, W, 3] uint8 BGR; return float32 [N, H/8, W/8, C].

        Raises:
            InputError: H, W (or N, without dynamic batch) differ from what the model was compiled for.
        """
        if self._model is None:
            raise ModelError(f"{self.path}: backend on NeuronCore {self.core} is closed")
        check_batch(batch, self.info, self.path)
        n, h, w, _ = batch.shape
        out = np.asarray(self._model(batch.astype(np.float32, copy=False)), dtype=np.float32)
        expected = (n, h // 8, w // 8, self.info.channels)
        if out.shape != expected:
            raise ModelError(f"{self.path}: output shape {out.shape}, expected {expected}")
        return out

    def close(self) -> None:
        """Let go of this worker's handle; the copy stays on its core for the process."""
        self._model = None


def check_batch(batch: np.ndarray, info: CompiledModelInfo, path: Path) -> None:
    """Refuse a batch the compiled model cannot run, with one line saying why.

    Raises:
        InputError: Not [N, H, W, 3] uint8, another resolution, or another batch size
            where the model has no dynamic batch.
    """
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[3] != 3:
        raise InputError(f"neuron backend takes [N, H, W, 3] uint8, got {batch.dtype} {batch.shape}")
    n, h, w, _ = batch.shape
    if (w, h) != (info.width, info.height):
        raise _resolution_error(path, info, (w, h))
    if not info.dynamic_batch and n != info.batch_size:
        raise InputError(f"compiled model {path} was compiled for batch {info.batch_size} without "
                         f"dynamic batch; got {n} (recompile with --batch {n})")


def check_resolution(model_dir: Path, size: tuple[int, int]) -> CompiledModelInfo:
    """Before a run: refuse a compiled model made for another (width, height) than ``size``.

    Raises:
        ModelError: Not a compiled model.
        InputError: Compiled for another resolution.
    """
    info = read_info(model_dir)
    if size != (info.width, info.height):
        raise _resolution_error(Path(model_dir), info, size)
    return info


def _resolution_error(path: Path, info: CompiledModelInfo, size: tuple[int, int]) -> InputError:
    return InputError(f"compiled model {path} was compiled for {info.resolution}; the run asks "
                      f"{size[0]}x{size[1]} (--resolution {info.resolution}, or recompile)")


def _one_core(device: str) -> int:
    cores = parse_neuron_cores(device)
    if len(cores) != 1:
        raise InputError(f"--device {device!r}: a worker runs on one NeuronCore, this names {len(cores)}; "
                         f"the pool gives worker i the i-th core")
    return cores[0]


def _copy_on_core(core: int, path: Path, info: CompiledModelInfo) -> CompiledModel:
    """The process's copy of ``path`` on ``core``: loaded and first run there once, then reused."""
    with _copies_lock:
        core_lock = _core_locks.setdefault(core, threading.Lock())
    with core_lock:
        held = _copies.get(core)
        if held is not None:
            if held[0] != path:
                raise ModelError(f"NeuronCore {core} already holds {held[0]} in this process; "
                                 f"one compiled model per core (run {path} in another process)")
            return held[1]
        with placement_for(core).turn(core):
            model = _load_compiled(path)
            # The runtime places the model on its core at its first run: run it now, in turn.
            try:
                model(np.zeros((info.batch_size, info.height, info.width, 3), np.float32))
            except Exception as exc:  # the runtime's errors come as TensorFlow errors
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ModelError(f"{path}: first run on NeuronCore {core} failed ({first})") from exc
        _copies[core] = (path, model)
        return model


def _load_compiled(path: Path) -> CompiledModel:
    """Load a model saved by ``tensorflow.neuron.trace`` (as its docs do: ``tf.keras.models.load_model``).

    Raises:
        NeuronUnavailableError: tensorflow-neuron is not installed.
        ModelError: The load failed.
    """
    require_neuron()  # registers the Neuron op with TensorFlow before the load
    import tensorflow as tf

    try:
        model = tf.keras.models.load_model(str(path))
    except (OSError, ValueError, tf.errors.OpError) as exc:
        raise ModelError(f"{path}: cannot load the compiled model ({exc})") from exc

    def run(batch: np.ndarray) -> np.ndarray:
        return model(tf.constant(batch)).numpy()

    return run
