"""Network precisions: what each costs in accuracy, what it gains in speed, what "auto" picks.

The gate every precision other than f32 must pass (``bench/bench_precision.py``
at 432x368 and 656x368, against TensorFlow f32 on its 224 pictures): at least
96% of keypoints agreeing (a keypoint agrees when the other result has one
of the same part within 10% of the person's size) and a number of people
with 6 or more parts within 2%. For scale: re-encoding the input as JPEG 95
already moves about 2% of keypoints, shifting it by one pixel 6-8%.

- ``f32``: the default; TensorFlow's numbers on every backend.
- ``int8``: OpenVINO on the CPU; the graph quantized once per machine
  (``models.quantize``). Passes the gate.
- ``bf16``: OpenVINO on CPUs with bf16 arithmetic (AMX or AVX512_BF16).
  Keypoints move about as much as int8's, but 3-4% of the full skeletons
  are lost, so it fails the gate: an explicit choice, never picked for you.
- ``auto``: the fastest precision that passes the gate on this machine:
  int8 on CPUs (OpenVINO), TF32 on Ampere or later GPUs (TensorFlow), the
  compiled model's own on NeuronCores; f32 elsewhere.

``TRADES`` holds the measured figures, written once here: ``--help``, the
run summary's engine record and the docs read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

PRECISIONS = ("f32", "int8", "bf16", "auto")
GATE_AGREEMENT = 96.0  # % of keypoints agreeing with TensorFlow f32, at least
GATE_SKELETONS = 0.02  # most relative change of the number of people with 6+ parts
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bf16 arithmetic


@dataclass(frozen=True, slots=True)
class Trade:
    """What one precision costs and gains, as measured (``bench/README.md`` has the runs).

    Attributes:
        precision: Its name on the command line ("tf32" is what "auto" runs on GPUs).
        runs_on: Backend and hardware it runs on.
        agreement: Keypoints agreeing with TensorFlow f32, at 432x368 and 656x368.
        skeletons: People with 6+ parts against TensorFlow f32's count, at both sizes.
        speed: End-to-end speed against f32, per machine measured.
        measured: Where the accuracy figures come from.
        gate: Whether it passes the gate.
    """

    precision: str
    runs_on: str
    agreement: str
    skeletons: str
    speed: str
    measured: str
    gate: bool

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


TRADES = {
    "f32": Trade("f32", "every backend", "100%", "the reference", "1x", "(the reference)", True),
    "int8": Trade("int8", "OpenVINO, CPU", "96.65%, 97.16%", "526 of 527, 536 of 539",
                  "1.20x with AVX2 only; 1.53x with AVX-512 VNNI, 1.39x with AMX (recipe v2, "
                  "the same int8 layers)", "recipe v3, 2-core AMD EPYC with AVX2 only, 2026-12-07", True),
    "bf16": Trade("bf16", "OpenVINO, CPUs with AMX or AVX512_BF16", "96.15%, 96.63%",
                  "506 of 527, 522 of 539 (3-4% fewer)", "network 2.5x with AMX",
                  "2-core CPU with AMX, 2026-12-03", False),
    "tf32": Trade("tf32", "TensorFlow, NVIDIA Ampere or later GPUs", "not measured", "not measured",
                  "not measured", "never run on a GPU here", False),
}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (empty when they cannot be read)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU has bf16 arithmetic (AMX or AVX512_BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_FLAGS)


def choose(requested: str, backend: str, kind: str, flags: frozenset[str] | None = None
           ) -> tuple[str, str]:
    """The precision a run's backend is given, and why, for a requested one.

    Only "auto" is chosen here, and only for OpenVINO on the CPU; the other
    backends resolve "auto" themselves (TensorFlow: TF32 on GPUs that have
    it), so they are given "auto".

    Args:
        requested: "f32", "int8", "bf16" or "auto".
        backend: The backend the run resolved to ("openvino", "tf", ...).
        kind: The device kind ("cpu", "gpu", "neuron").
        flags: The CPU's flags (default: this machine's).

    Returns:
        (precision, reason); the reason is "" unless "auto" was chosen.
    """
    if requested != "auto" or backend != "openvino":
        return requested, ""
    flags = cpu_flags() if flags is None else flags
    if flags and "avx2" not in flags:
        return "f32", ("--precision auto: f32, since this CPU has no AVX2 and int8 was never "
                       "measured on such a CPU")
    trade = TRADES["int8"]
    return "int8", (f"--precision auto: int8, the fastest precision that passes the accuracy gate on "
                    f"this CPU ({trade.agreement} of keypoints agree with f32 at 432x368 and 656x368, "
                    f"skeletons within 2%; end to end {trade.speed}); --precision f32 keeps "
                    "TensorFlow's numbers")


def help_text() -> str:
    """The precisions in a few lines, for ``--help``."""
    i8, b16 = TRADES["int8"], TRADES["bf16"]
    return (f"network arithmetic. f32: the default, TensorFlow's numbers. int8 ({i8.runs_on}; built "
            f"once per machine): {i8.agreement} of keypoints agree with f32 (432x368, 656x368), "
            f"skeletons within 2%; end to end {i8.speed}. bf16 ({b16.runs_on}): {b16.agreement} "
            "agree but 3-4% fewer skeletons, so it fails the accuracy gate. auto: the fastest that "
            "passes the gate here (int8 on CPUs, TF32 on Ampere+ GPUs)")


def markdown_table() -> str:
    """The measured trade as a Markdown table (the docs hold it; a test keeps them equal)."""
    rows = ["| precision | runs on | keypoints agreeing with f32 (432x368, 656x368) | "
            "people with 6+ parts (f32: 527, 539) | speed against f32, end to end | measured on | "
            "passes the gate |",
            "|---|---|---|---|---|---|---|"]
    for t in TRADES.values():
        rows.append(f"| `{t.precision}` | {t.runs_on} | {t.agreement} | {t.skeletons} | {t.speed} | "
                    f"{t.measured} | {'yes' if t.gate else 'no'} |")
    return "\n".join(rows)
