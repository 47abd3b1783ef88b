"""The --device option: which device slots the inference pool gets, and which backend runs there."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from dataclasses import dataclass

from pipeline.errors import InputError

log = logging.getLogger(__name__)

# Chosen CPU copies stop here; more cores give each copy more threads instead
# (a file's frames come from one decoding thread, so dozens of copies would
# mostly sit idle, each holding its own memory).
MAX_CHOSEN_CPU_WORKERS = 8


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """One pool worker per slot.

    Attributes:
        kind: "cpu", "gpu" or "neuron".
        slots: Device of each worker ("cpu", "gpu:1", "neuron:3"); a device
            may repeat (several CPU workers).
        backend: The backend that runs on this kind of device.
    """

    kind: str
    slots: tuple[str, ...]
    backend: str

    @property
    def workers(self) -> int:
        """Number of pool workers."""
        return len(self.slots)


def parse_indices(text: str, option: str) -> list[int]:
    """Parse "0", "0,2", "0-3" or "0-1,4" into distinct indices, in order.

    Raises:
        InputError: Garbage, a reversed range, or a repeated index.
    """
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise InputError(f"{option}: {text!r} is not a list of indices like 0,1 or 0-3")
        lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if hi < lo:
            raise InputError(f"{option}: range {part.strip()!r} runs backwards")
        for i in range(lo, hi + 1):
            if i in out:
                raise InputError(f"{option}: index {i} given twice")
            out.append(i)
    return out


def plan_devices(device: str, *, workers: int = 1, backend: str = "auto",
                 latency: bool = False) -> DevicePlan:
    """Turn ``--device`` (and ``--workers`` for the CPU) into pool slots and a backend.

    ``auto`` picks Inferentia when tensorflow-neuron is importable, else a GPU
    when TensorFlow sees one, else the CPU. ``backend="auto"`` picks the
    fastest engine present for the device: OpenVINO on the CPU when installed
    (TensorFlow otherwise), TensorFlow on GPUs, tensorflow-neuron on NeuronCores.

    ``workers=0`` chooses the CPU workers: one single-threaded copy per core
    (up to ``MAX_CHOSEN_CPU_WORKERS``) for throughput (no copy waits on
    threads that host stages slowed down), or, with ``latency``, one copy on
    all cores (each frame is done soonest).
    Engines that cannot limit a copy's threads (TensorFlow's pool is
    per process) get one copy either way.

    Raises:
        InputError: Unknown device, bad indices, or a device that is not there.
    """
    kind, _, indices = device.strip().lower().partition(":")
    if kind == "auto" and not indices:
        kind = _best_kind()
        log.info("--device auto: using %s", kind)
    if kind == "cpu":
        if indices:
            raise InputError(f"--device {device!r}: the CPU takes no indices; use --workers N")
        chosen = _cpu_backend(backend)
        if workers == 0:
            workers = 1 if latency or chosen != "openvino" else min(usable_cores(), MAX_CHOSEN_CPU_WORKERS)
        return DevicePlan("cpu", ("cpu",) * workers, chosen)
    if kind == "gpu":
        gpus = _visible_gpus()
        chosen = parse_indices(indices, f"--device {device}") if indices else list(range(gpus))
        if not gpus or any(i >= gpus for i in chosen):
            raise InputError(f"--device {device!r}: TensorFlow sees {gpus} GPU(s)")
        return DevicePlan("gpu", tuple(f"gpu:{i}" for i in chosen), _fixed(backend, "tf", "gpu"))
    if kind == "neuron":
        from models.neuron import parse_neuron_cores, require_neuron, reserve_cores
        require_neuron()
        cores = parse_neuron_cores(device)
        reserve_cores(cores)  # sets the runtime's core range: before any model loads
        return DevicePlan("neuron", tuple(f"neuron:{c}" for c in cores), _fixed(backend, "neuron", "neuron"))
    raise InputError(f"--device {device!r}: expected cpu, gpu[:0,1], neuron[:0-3] or auto")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, as in a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cpu_backend(backend: str) -> str:
    if backend != "auto":
        return backend
    return "openvino" if importlib.util.find_spec("openvino") else "tf"


def _fixed(backend: str, native: str, kind: str) -> str:
    if backend not in ("auto", native):
        raise InputError(f"--backend {backend}: {kind} devices run the {native!r} backend")
    return native


def _best_kind() -> str:
    from models.neuron import neuron_available
    if neuron_available():
        return "neuron"
    return "gpu" if _visible_gpus() else "cpu"


def _visible_gpus() -> int:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return 0
    from models.tf_backend import import_tensorflow
    return len(import_tensorflow().config.list_physical_devices("GPU"))
