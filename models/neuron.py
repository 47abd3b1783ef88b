"""AWS Inferentia (inf1) helpers shared by the Neuron backend and the compile command.

Importable without tensorflow-neuron: nothing here imports TensorFlow until
``require_neuron`` is called.

Version targeted: tensorflow-neuron 2.x for inf1 (its last line is 2.10.1.x on
TensorFlow 2.10.1), running on Neuron Runtime 2.x (``libnrt.so``). Why not
1.15.x, the TF1 package the AWS OpenPose write-up used:

- TensorFlow 1.15 runs on Python up to 3.7; this project needs 3.10+ and is
  written against TensorFlow 2 (see ``tf_backend.py``).
- Neuron 2.20 ended support for tensorflow-neuron 1.x and points its users to
  2.10.1 ("Tensorflow-Neuron 1.x no longer supported").
- ``tfn.graph_util.inference_graph_from_session`` (the write-up's
  ``convert_graph_opt.py``) already logs itself as deprecated in favour of the
  TF2 API, ``tensorflow.neuron.trace``.

Caveat: the install pages run tensorflow-neuron 2.10.1 under Python 3.8/3.9;
whether the Neuron index has a wheel for the 3.10+ this project needs could
not be checked from here (that index is not reachable here).

Runtime environment variables, by runtime:

- Runtime 1.x (``neuron-rtd`` daemon, before Neuron 1.16):
  ``NEURONCORE_GROUP_SIZES`` (e.g. ``4x1`` or ``1,1,1,1``) cut the cores into
  groups, and models loaded in one process took the groups in load order.
  Ignored by the runtime since Neuron 1.20; still read by the TensorFlow
  plugin, so we refuse to run while it is set.
- Runtime 2.x (``libnrt.so``, Neuron 1.16+, every tensorflow-neuron 2.x):
  ``NEURON_RT_VISIBLE_CORES`` (one core index or one inclusive range, e.g.
  ``0-3``) reserves exactly those cores for the process; ``NEURON_RT_NUM_CORES``
  asks for a count and lets the runtime choose. Both are read once, when the
  runtime starts in the process. A reserved core belongs to that process
  until it exits.

Placement in one process. The pool runs one worker thread per NeuronCore in
one process (the runtime 2.x docs: a core can no longer be shared between
processes, "instead you can load models on a specific NeuronCore, using
multiple threads from the same process"; best throughput with one model per
core). The documented in-process way: set ``NEURON_RT_VISIBLE_CORES`` to the
cores wanted before the runtime starts, then load the compiled model once per
core; copies of a single-core model fill the reserved cores in load order
("Parallel Execution using NEURON_RT_NUM_CORES"). tensorflow-neuron places a
model's Neuron subgraph when it first runs (``NeuronOp::initialize``, called
from ``Compute`` in aws-neuron-tensorflow ``runtime/kernels/neuron_op.cc``), so
``CorePlacement`` lets copies load and first-run one at a time, in core order.
This rests on the documents and the source; it has not been run on Inferentia.

Docs read (awsdocs-neuron.readthedocs-hosted.com unless a full URL is given):

- "TensorFlow 2.x (tensorflow-neuron) Tracing API",
  en/latest/frameworks/tensorflow/tensorflow-neuron/api-tracing-python-api.html
- "TensorFlow 1.x (tensorflow-neuron) Compilation API",
  en/latest/frameworks/tensorflow/tensorflow-neuron/api-compilation-python-api.html
- "Running OpenPose on Inferentia" and its ``convert_graph_opt.py``,
  github.com/aws-neuron/aws-neuron-sdk, src/examples/tensorflow/openpose_demo/
- "Deploying TensorFlow OpenPose on AWS Inferentia-based Inf1 instances ...",
  https://aws.amazon.com/blogs/machine-learning/deploying-tensorflow-openpose-on-aws-inferentia-based-inf1-instances-for-significant-price-performance-improvements/
- "NeuronX Runtime Configuration", en/latest/neuron-runtime/nrt-configurable-parameters.html
- "Parallel Execution using NEURON_RT_NUM_CORES",
  en/latest/neuron-guide/appnotes/perf/parallel-ncgs.html
- "Introducing Neuron Runtime 2.x (libnrt.so)",
  en/latest/general/appnotes/neuron1x/introducing-libnrt.html
- "Announcing end of support for NEURONCORE_GROUP_SIZES starting with Neuron
  1.20.0 release", en/latest/general/announcements/neuron1.x/eol-ncgs-env_2.html
- "Tensorflow-Neuron 1.x no longer supported",
  en/latest/general/announcements/neuron2.x/announce-no-support-tensorflow1-x.html
- "Install TensorFlow Neuron (tensorflow-neuron)",
  en/latest/about-neuron/quick-start/tab-inference-tensorflow-neuron.html
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator, Mapping, MutableMapping

from pipeline.errors import InputError, ModelError

PIP_INDEX = "https://pip.repos.neuron.amazonaws.com"
DISTRIBUTION = "tensorflow-neuron"
MODULE = "tensorflow_neuron"  # the wheel also installs tensorflow/neuron/, which forwards here
CORES_PER_DEVICE = 4  # NeuronCores per Inferentia (inf1) device /dev/neuronN
VISIBLE_CORES = "NEURON_RT_VISIBLE_CORES"
GROUP_SIZES = "NEURONCORE_GROUP_SIZES"
SIDECAR = "posestream-neuron.json"
INSTALL_HINT = (f"tensorflow-neuron is not installed (PyPI has only a placeholder): install it from "
                f"the Neuron index, pip install \"tensorflow-neuron[cc]\" protobuf --extra-index-url "
                f"{PIP_INDEX}, on an inf1 instance with the Neuron driver (aws-neuronx-dkms) to run; "
                f"compiling alone works on any x86-64 Linux")
_DEVICE_FORMS = "expected neuron, neuron:N, neuron:A-B or neuron:A,B,..."
_PLACEMENT_WAIT_S = 600.0


class NeuronUnavailableError(ModelError):
    """tensorflow-neuron cannot be imported here; the message says how to install it."""


def neuron_available() -> bool:
    """Whether tensorflow-neuron is installed (looked up, not imported; TensorFlow is not loaded)."""
    try:
        return importlib.util.find_spec(MODULE) is not None
    except (ImportError, ValueError):
        return False


def require_neuron():
    """Import TensorFlow and tensorflow-neuron; return ``tensorflow.neuron``.

    Raises:
        NeuronUnavailableError: Not installed (one line saying how), or its import failed.
    """
    if not neuron_available():
        raise NeuronUnavailableError(INSTALL_HINT)
    from models.tf_backend import import_tensorflow

    import_tensorflow()
    try:
        return importlib.import_module("tensorflow.neuron")
    except ImportError as exc:
        raise NeuronUnavailableError(f"tensorflow-neuron is installed but does not import ({exc})") from exc


def neuron_version() -> str | None:
    """Installed tensorflow-neuron version, or None."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---- which cores ---------------------------------------------------------

def parse_neuron_cores(device: str, *, environ: Mapping[str, str] | None = None,
                       dev: Path = Path("/dev")) -> list[int]:
    """Parse ``--device neuron[:cores]`` into core indices, ascending.

    ``neuron`` alone means every visible core (``visible_neuron_cores``);
    ``neuron:3``, ``neuron:0-3`` and ``neuron:0,2`` name them. Worker slot i
    runs on the i-th core of the result.

    Raises:
        InputError: Not of those forms, a reversed range, a core named twice,
            or ``neuron`` alone where no core is visible.
    """
    text = device.strip()
    kind, colon, spec = text.partition(":")
    if kind != "neuron" or (colon and not spec.strip()):
        raise InputError(f"--device {device!r}: {_DEVICE_FORMS}")
    if not colon:
        cores = visible_neuron_cores(environ=environ, dev=dev)
        if not cores:
            raise InputError(f"--device {device!r}: no NeuronCores are visible (no {dev}/neuron* device, "
                             f"{VISIBLE_CORES} unset); this needs an inf1 instance with the Neuron driver")
        return cores
    try:
        return _parse_core_list(spec)
    except ValueError as exc:
        raise InputError(f"--device {device!r}: {exc}") from None


def _parse_core_list(spec: str) -> list[int]:
    """``"0-2,5"`` -> [0, 1, 2, 5]; ValueError with a one-line reason otherwise."""
    cores: list[int] = []
    for item in spec.split(","):
        item = item.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", item)
        if not m:
            raise ValueError(f"{item!r} is not a core index or a range A-B ({_DEVICE_FORMS})")
        first, last = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if last < first:
            raise ValueError(f"range {first}-{last} is reversed; write {last}-{first}")
        for core in range(first, last + 1):
            if core in cores:
                raise ValueError(f"NeuronCore {core} is named twice")
            cores.append(core)
    return sorted(cores)


def visible_neuron_cores(*, environ: Mapping[str, str] | None = None, dev: Path = Path("/dev")) -> list[int]:
    """NeuronCores this process may use.

    ``NEURON_RT_VISIBLE_CORES`` when set; otherwise 4 per Inferentia device
    ``/dev/neuronN`` (inf1: 4 NeuronCores per device, numbered from 0 across
    devices, "NeuronX Runtime Configuration"). ``NEURON_RT_NUM_CORES`` names a
    count, not which cores, so it is not read here.

    Raises:
        InputError: ``NEURON_RT_VISIBLE_CORES`` is malformed.
    """
    env = os.environ if environ is None else environ
    value = env.get(VISIBLE_CORES, "").strip()
    if value:
        try:
            return _parse_core_list(value)
        except ValueError as exc:
            raise InputError(f"{VISIBLE_CORES}={value}: {exc}") from None
    try:
        devices = [p for p in dev.iterdir() if re.fullmatch(r"neuron\d+", p.name)]
    except OSError:
        return []
    return list(range(CORES_PER_DEVICE * len(devices)))


def visible_cores_value(cores: list[int]) -> str:
    """``NEURON_RT_VISIBLE_CORES`` value for ``cores``: ``"3"`` or ``"0-3"``.

    Raises:
        InputError: Not one contiguous run (the variable takes one index or one range).
    """
    cores = sorted(cores)
    if not cores or cores != list(range(cores[0], cores[-1] + 1)):
        named = ",".join(map(str, cores)) or "none"
        raise InputError(f"NeuronCores {named}: one process reserves one contiguous range "
                         f"({VISIBLE_CORES} takes an index or a range A-B); ask for e.g. "
                         f"neuron:{cores[0] if cores else 0}-{cores[-1] if cores else 0}, or run one process "
                         f"per core with core_environment()")
    return str(cores[0]) if len(cores) == 1 else f"{cores[0]}-{cores[-1]}"


def core_environment(core: int) -> dict[str, str]:
    """Environment that pins a whole process to one NeuronCore (runtime 2.x).

    For running one model copy per *process* (each started with this in its
    environment, before the runtime loads in it). The in-process pool uses
    ``reserve_cores`` instead: one variable per process cannot differ per thread.
    """
    if core < 0:
        raise InputError(f"NeuronCore {core}: indices start at 0")
    return {VISIBLE_CORES: str(core)}


# ---- one copy per core, in one process -------------------------------------

class CorePlacement:
    """The NeuronCores this process reserved, and the order model copies take them.

    Invariant: the k-th copy placed through ``turn`` runs on ``cores[k]``.
    It holds because the runtime reserves exactly ``cores`` (set in
    ``NEURON_RT_VISIBLE_CORES`` before it starts), single-core copies take
    reserved cores in the order they are first run, and ``turn(core)``
    admits one load at a time, in ascending core order. After a failed load
    no later core is placed: it would land on the wrong one.

    Args:
        cores: Reserved core indices, ascending and contiguous.
    """

    def __init__(self, cores: list[int]) -> None:
        visible_cores_value(cores)
        self.cores = sorted(cores)
        self._placed = 0
        self._failed: int | None = None
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def turn(self, core: int, *, timeout: float = _PLACEMENT_WAIT_S) -> Iterator[None]:
        """Wait until every lower reserved core has its copy, then load this one inside.

        Raises:
            InputError: ``core`` is not reserved by this process.
            ModelError: The core already has a copy, a lower core's copy failed
                to load, or it did not come within ``timeout`` seconds.
        """
        if core not in self.cores:
            raise InputError(f"NeuronCore {core} is not among the cores this process reserved "
                             f"({visible_cores_value(self.cores)})")
        k = self.cores.index(core)
        with self._cond:
            if k < self._placed:
                raise ModelError(f"NeuronCore {core} already holds a model copy; one copy per core")
            ready = self._cond.wait_for(lambda: self._placed == k or self._failed is not None, timeout)
            if self._failed is not None:
                raise ModelError(f"NeuronCore {core} not loaded: the copy for NeuronCore {self._failed} "
                                 f"failed first")
            if not ready:
                raise ModelError(f"NeuronCore {core} not loaded: no copy came for NeuronCore "
                                 f"{self.cores[self._placed]} within {timeout:.0f} s (one worker per core)")
        try:
            yield
        except BaseException:
            with self._cond:
                self._failed = core
                self._cond.notify_all()
            raise
        with self._cond:
            self._placed += 1
            self._cond.notify_all()


_placement: CorePlacement | None = None
_placement_lock = threading.Lock()


def reserve_cores(cores: list[int], *, environ: MutableMapping[str, str] | None = None) -> CorePlacement:
    """Reserve ``cores`` for this process; call before any compiled model loads.

    Sets ``NEURON_RT_VISIBLE_CORES`` (the runtime reads it once, when it
    starts). Calling again with the same cores returns the same placement.

    Raises:
        InputError: Not contiguous, or the environment already names other cores.
        ModelError: This process already reserved other cores, or
            ``NEURONCORE_GROUP_SIZES`` (runtime 1.x) is set.
    """
    global _placement
    env = os.environ if environ is None else environ
    value = visible_cores_value(cores)
    with _placement_lock:
        if _placement is not None:
            if _placement.cores != sorted(cores):
                held = visible_cores_value(_placement.cores)
                raise ModelError(f"this process already reserved NeuronCores {held}; it cannot take "
                                 f"{value} too (the runtime reads {VISIBLE_CORES} once)")
            return _placement
        if env.get(GROUP_SIZES):
            raise ModelError(f"{GROUP_SIZES}={env[GROUP_SIZES]} is set (Neuron runtime 1.x, no longer "
                             f"supported); unset it: posestream places one copy per core with {VISIBLE_CORES}")
        current = env.get(VISIBLE_CORES, "").strip()
        if current and _parse_env_cores(current) != sorted(cores):
            raise InputError(f"{VISIBLE_CORES}={current} is set, but the run asks for NeuronCores {value}; "
                             f"unset it or ask for --device neuron:{current}")
        env[VISIBLE_CORES] = value
        _placement = CorePlacement(cores)
        return _placement


def placement_for(core: int) -> CorePlacement:
    """The process's placement; reserves just ``core`` if none was made."""
    with _placement_lock:
        placement = _placement
    return placement if placement is not None else reserve_cores([core])


def _parse_env_cores(value: str) -> list[int]:
    try:
        return _parse_core_list(value)
    except ValueError as exc:
        raise InputError(f"{VISIBLE_CORES}={value}: {exc}") from None


# ---- what a compiled model was compiled for ---------------------------------

@dataclass(frozen=True, kw_only=True, slots=True)
class CompiledModelInfo:
    """The sidecar kept beside a compiled model: what it was compiled for.

    Attributes:
        width: Network input width it was compiled for.
        height: Network input height.
        batch_size: Batch it was compiled with.
        dynamic_batch: Whether other batch sizes run (the compiler's dynamic batch).
        source_sha256: Checksum of the frozen graph it was compiled from.
        input_tensor: Input tensor name in that graph.
        output_tensor: Output tensor name (the end of the compiled graph).
        channels: Channels of the output maps.
        neuron_version: tensorflow-neuron version that compiled it.
        tensorflow_version: TensorFlow version that compiled it.
        compiled_at: When, ISO 8601 UTC.
    """

    width: int
    height: int
    batch_size: int = 1
    dynamic_batch: bool = True
    source_sha256: str
    input_tensor: str
    output_tensor: str
    channels: int
    neuron_version: str
    tensorflow_version: str
    compiled_at: str

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0 or value % 8:
                raise ValueError(f"{name} must be a positive multiple of 8, got {value!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", str(self.source_sha256)):
            raise ValueError(f"source_sha256 must be 64 hex digits, got {self.source_sha256!r}")

    @property
    def resolution(self) -> str:
        """``WxH`` as --resolution writes it."""
        return f"{self.width}x{self.height}"


def sidecar_path(model_dir: Path) -> Path:
    """Where the sidecar of the compiled model (a SavedModel directory) lives: inside it."""
    return Path(model_dir) / SIDECAR


def write_info(model_dir: Path, info: CompiledModelInfo) -> Path:
    """Write the sidecar into ``model_dir`` (atomically); return its path."""
    path = sidecar_path(model_dir)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.write_text(json.dumps({"format": 1, **asdict(info)}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_info(model_dir: Path) -> CompiledModelInfo:
    """Read the sidecar of a compiled model.

    Raises:
        ModelError: Missing, unreadable or malformed.
    """
    path = sidecar_path(model_dir)
    hint = "compile it with python -m models.compile_neuron"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{model_dir}: not a compiled Neuron model (no {SIDECAR}); {hint}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc}); {hint}") from None
    if not isinstance(data, dict) or data.get("format") != 1:
        raise ModelError(f"{path}: unknown format; {hint}")
    names = {f.name for f in fields(CompiledModelInfo)}
    missing = sorted(n for n in names if n not in data and n not in ("batch_size", "dynamic_batch"))
    if missing:
        raise ModelError(f"{path}: missing {', '.join(missing)}; {hint}")
    try:
        return CompiledModelInfo(**{k: v for k, v in data.items() if k in names})
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: {exc}; {hint}") from None
