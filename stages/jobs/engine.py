"""Engine planning: which devices and backend run the network, and which model file.

``plan_engine`` chooses them for a run (``models.devices.plan_devices``),
finds the file the backend loads (the fetched registry graph, the user's
``--graph``, or a Neuron-compiled model) and starts the ``EngineRecord`` that
says what ran, so that a run's results can be traced to it. The builder
(``stages.jobs.builder``) puts the planned engine into the pipeline.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from models.backend import Backend
from models.devices import DevicePlan, plan_devices
from models.fetch import fetch_model
from models.precision import TRADES, choose, has_bf16
from models.registry import get_model
from stages.errors import InputError
from stages.settings import JobConfig
from stages.version import version

__all__ = ["Engine", "EngineRecord", "compiled_model", "model_file", "pin_blas_threads",
           "plan_engine", "resolve_graph"]

log = logging.getLogger(__name__)
_said: set[str] = set()  # what "auto" chose, said once per process
_said_lock = threading.Lock()


class EngineRecord:
    """What ran the network, so that a run's results can be traced to it.

    Filled from the plan, then from each model copy as it loads (on the pool's
    threads): the precision is what the copies report, since "auto" resolves
    per machine (bf16 on one CPU, f32 on another).

    Args:
        config: The run's settings.
        plan: The devices and backend chosen for it.
    """

    def __init__(self, config: JobConfig, plan: DevicePlan, chosen: str = "") -> None:
        self.backend = plan.backend
        self.chosen = chosen  # why "auto" became what it became ("" otherwise)
        self.devices = plan.slots
        self.model = config.model if config.graph is None else str(config.graph)
        self.resolution = config.resolution
        self.requested = config.precision
        self.host = socket.gethostname()
        self.version = version()  # of posestream, which made the results
        self._precisions: set[str] = set()
        self._caches: set[str] = set()
        self._lock = threading.Lock()

    def loaded(self, backend: Backend) -> None:
        """Note one loaded copy's precision and what the model cache did for it."""
        with self._lock:
            self._precisions.add(str(getattr(backend, "precision", None) or self.requested))
            cache = getattr(backend, "cache", None)
            if cache:
                self._caches.add(str(cache))

    @property
    def cache(self) -> str | None:
        """The model cache: "off" if any copy ran without it, else "built" if any
        copy filled it, else "hit"; None for engines that keep no cache (TensorFlow)."""
        with self._lock:
            return next((state for state in ("off", "built", "hit") if state in self._caches), None)

    @property
    def precision(self) -> str:
        """The copies' precision ("/"-joined if they differ); "" before any loaded."""
        with self._lock:
            return "/".join(sorted(self._precisions))

    def as_dict(self) -> dict:
        """JSON-ready record."""
        w, h = self.resolution
        precision = self.precision
        trade = TRADES.get(precision)
        return {"backend": self.backend, "precision": precision,
                "requested_precision": self.requested, "precision_chosen": self.chosen or None,
                "precision_trade": trade.as_dict() if trade else None, "model_cache": self.cache,
                "devices": list(self.devices), "model": self.model, "resolution": f"{w}x{h}",
                "host": self.host, "posestream_version": self.version}

    def __str__(self) -> str:
        w, h = self.resolution
        n = len(self.devices)
        where = ", ".join(dict.fromkeys(self.devices))
        uncached = ", model cache off" if self.cache == "off" else ""
        return (f"{self.backend} {self.precision or self.requested} on {where} "
                f"({n} worker{'s' if n != 1 else ''}), {self.model} at {w}x{h}{uncached}")


@dataclass(frozen=True, slots=True)
class Engine:
    """The devices, model file, precision and record of one run's inference pool.

    ``precision`` is what the backend is given: the requested one, or what
    "auto" chose for this machine (``models.precision.choose``).
    """

    plan: DevicePlan
    graph: Path
    record: EngineRecord
    precision: str = "f32"


def plan_engine(config: JobConfig, *, latency: bool = False) -> Engine:
    """Choose devices and backend and find the model file (fetched if needed).

    Args:
        config: The run's settings.
        latency: One copy on all cores rather than one per core (unless the
            user chose the workers): live sources, where each frame should be
            done soonest, and single pictures, which need only one copy.
    """
    pin_blas_threads()
    plan = plan_devices(config.device, workers=config.workers, backend=config.backend,
                        latency=latency)
    check_precision(config.precision, plan)
    precision, why = choose(config.precision, plan.backend, plan.kind)
    if why:
        with _said_lock:
            first = why not in _said
            _said.add(why)
        if first:
            log.warning("%s", why)
    return Engine(plan, model_file(config, plan), EngineRecord(config, plan, why), precision)


def check_precision(precision: str, plan: DevicePlan) -> None:
    """Refuse, before any model loads, a precision the planned engine cannot run.

    Raises:
        InputError: int8 or bf16 off the OpenVINO backend, or bf16 on a CPU
            without bf16 arithmetic.
    """
    if precision in ("int8", "bf16") and plan.backend != "openvino":
        raise InputError(f"--precision {precision} runs on the OpenVINO backend only, not "
                         f"{plan.backend} (on {plan.kind})")
    if precision == "bf16" and not has_bf16():
        raise InputError("--precision bf16: this CPU has no bf16 arithmetic (AMX or AVX512_BF16); "
                         "use int8 (passes the accuracy gate) or f32")


def model_file(config: JobConfig, plan: DevicePlan) -> Path:
    """What the backend loads: the compiled model for NeuronCores, else the graph file."""
    return compiled_model(config) if plan.kind == "neuron" else resolve_graph(config)


def compiled_model(config: JobConfig) -> Path:
    """The Neuron-compiled model of ``config.graph``, checked against the run's resolution."""
    if config.graph is None:
        raise InputError("--device neuron needs --graph COMPILED_DIR "
                         "(make one with: python -m models.compile_neuron --resolution WxH -o DIR)")
    from models.neuron_backend import check_resolution
    check_resolution(config.graph, config.resolution)
    return Path(config.graph)


def resolve_graph(config: JobConfig) -> Path:
    """The graph file to load: ``config.graph``, else the fetched registry model."""
    if config.graph is not None:
        if not Path(config.graph).is_file():
            raise InputError(f"--graph {config.graph}: no such file")
        return Path(config.graph)
    return fetch_model(get_model(config.model))


_BLAS_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                 "scipy_openblas_set_num_threads", "openblas_set_num_threads64_")


def pin_blas_threads() -> None:
    """One BLAS thread, in every mode (command line, API, cluster workers).

    A multi-threaded BLAS fighting the inference threads for the cores stalls
    the post-network matrix products (0.5 ms -> 20 ms seen). The environment
    variable works only before numpy loads (``run_stream`` and
    ``stages/__init__`` set it); here the loaded OpenBLAS is told directly.
    An explicit ``OPENBLAS_NUM_THREADS`` other than 1 is the user's choice
    and is kept.
    """
    if os.environ.get("OPENBLAS_NUM_THREADS", "1") != "1":
        return
    try:
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1] for line in maps
                    if "openblas" in line.rsplit("/", 1)[-1].lower() and ".so" in line}
    except OSError:  # not Linux: the environment variable has to do
        return
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(1)
                break
