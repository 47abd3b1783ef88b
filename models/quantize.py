"""The int8 model: the f32 IR quantized once with NNCF, kept in the model cache.

NNCF's post-training quantization with its defaults breaks this graph (about
6% of keypoints agree with f32; ten times the skeletons): the inputs of the
pointwise convolutions that follow each depthwise one carry a few channels
with hundreds of times the range of the others, and one int8 scale per
tensor rounds the small channels away. The recipe here (v3):

- SmoothQuant on the convolutions, alpha 0.6 (NNCF migrates each input
  channel's range into the weights, which are quantized per output channel
  anyway);
- the layers that still hurt stay in f32 (``ignored_layers``): the first
  six of the network, the first of each stage branch and the last eight
  before each output head (the backbone's wide 1x1 convolutions, most of the
  arithmetic, stay int8);
- overflow fix ``FIRST_LAYER`` (NNCF's default): the first quantized layer
  gets 7-bit weights, so its u8 x s8 products summed in pairs cannot
  saturate the int16 of AVX2's ``vpmaddubsw`` on CPUs without VNNI. Later
  layers read sparse ReLU outputs, where a saturating pair is rare;
  ``ENABLE`` (7-bit weights everywhere) cost 7.6 points of keypoint
  agreement on the gate's pictures (88.9% against 96.4%), so it is not used.
  CPUs with VNNI or AMX accumulate in int32 and never saturate.

v2 (alpha 0.5, the first five in f32) passed the gate on a CPU with VNNI
but found 550 skeletons against f32's 539 at 656x368 on an AVX2-only one
(2.04%, over the 2% line); v3 keeps the same layers int8 (the same speed)
and there finds 526 of 527 and 536 of 539, with 96.65% and 97.16% of
keypoints agreeing (bench/README.md).

Calibration frames come from ``models.calibration`` (packaged photos, never
the user's). The IR is built once per machine, in a child process
(``python -m models.quantize``): NNCF prints its own progress bars and log
lines to stdout, which is the program's (``--stdout`` writes keypoints
there), and holds its statistics in memory; a child keeps both away from the
run, which says in two lines what it is doing and how long it took. A run
that finds the IR in the cache does not import nncf.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from models.calibration import CALIBRATION_RECIPE, calibration_frames
from models.devices import usable_cores
from models.fetch import file_sha256
from models.model_cache import CachedModel, cached_ir
from models.offline import import_openvino
from pipeline.errors import ModelError

log = logging.getLogger(__name__)

CONVOLUTIONS = ("Convolution", "GroupConvolution")
ACTIVATION_RANGES = ("mean_minmax", "minmax", "histogram")  # NNCF range estimators for activations


@dataclass(frozen=True)
class Recipe:
    """How the f32 IR is quantized; every field is part of the cache key.

    Attributes:
        alpha: SmoothQuant's migration strength on convolutions (-1: off).
        activations: NNCF's range estimator for activations, one of
            ``ACTIVATION_RANGES`` ("mean_minmax" is NNCF's default: the mean
            over frames of each frame's min and max).
        preset: "performance" (symmetric activations) or "mixed" (asymmetric).
        head: Convolutions kept in f32 at the start of the network.
        tail: Convolutions kept in f32 at the end of each stage branch.
        f32_convs: More convolutions kept in f32, by position among the
            graph's convolutions (``bench/bench_int8_recipes.py`` tries sets).
        frames: Calibration frames used, the first of them (0: all; tests
            use a few, to quantize in seconds).
    """

    alpha: float = 0.6
    activations: str = "mean_minmax"
    preset: str = "performance"
    head: int = 6
    tail: int = 8
    f32_convs: tuple[int, ...] = ()
    frames: int = 0

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATION_RANGES or self.preset not in ("performance", "mixed"):
            raise ModelError(f"int8 recipe: unknown activation ranges {self.activations!r} "
                             f"or preset {self.preset!r}")

    def describe(self) -> str:
        """The recipe in words, part of the cache key (the default is recipe v3)."""
        extra = ""
        if self.activations != "mean_minmax":
            extra += f", activation ranges {self.activations}"
        if self.f32_convs:
            extra += f", f32 convolutions {list(self.f32_convs)}"
        if self.frames:
            extra += f", the first {self.frames} calibration frames"
        return (f"nncf ptq {self.preset}, smoothquant conv {self.alpha}, overflow fix first layer{extra}, "
                f"f32: the first {self.head} convolutions, concat consumers and the last {self.tail} "
                f"of each branch; calibration: {CALIBRATION_RECIPE} (v3)")


DEFAULT_RECIPE = Recipe()
INT8_RECIPE = DEFAULT_RECIPE.describe()


SECONDS_AT_432X368 = 25  # a whole build on 2 cores of a 2026 AMD EPYC (AVX2): about 20 s
SAMPLE_SIZE = (432, 368)


def int8_ir(graph: Path, f32: CachedModel, size: tuple[int, int] | None,
            recipe: Recipe | None = None) -> CachedModel:
    """The int8 IR of ``graph`` at network ``size``, quantized on the first call on this machine.

    Keyed by the graph's SHA-256, the size, the recipe's words (which name
    the calibration recipe) and the f32 IR it starts from.

    Args:
        graph: The TensorFlow graph file.
        f32: Its f32 IR at ``size`` (from the model cache).
        size: Network input (width, height); int8 needs a fixed one.
        recipe: How to quantize (default: ``DEFAULT_RECIPE``, the one runs use).

    Raises:
        ModelError: No fixed size, the graph is unreadable, or quantizing failed.
    """
    recipe = recipe or DEFAULT_RECIPE
    if size is None:
        raise ModelError("--precision int8 needs a fixed network size (--resolution WxH)")
    try:
        digest = file_sha256(Path(graph))
    except OSError as exc:
        raise ModelError(f"{graph}: cannot read graph ({exc.strerror})") from exc
    spelled = f"{size[0]}x{size[1]}"
    parts = {"graph": digest, "size": spelled, "recipe": recipe.describe(), "f32_ir": f32.xml.parent.name}
    return cached_ir(f"{Path(graph).stem}-{digest[:12]}-{spelled}-int8", parts,
                     lambda xml: build_in_child(f32.xml, size, xml, recipe))


def build_in_child(f32_xml: Path, size: tuple[int, int], xml: Path, recipe: Recipe) -> None:
    """Quantize in a child process (``quantize_ir``), saying what it does and how long it took.

    Raises:
        ModelError: The child failed (its last line of errors says why).
    """
    w, h = size
    log.warning("int8: quantizing the network at %dx%d with NNCF, once on this machine "
                "(about %d s here); later runs reuse it from the model cache", w, h,
                estimate_seconds(size))
    start = time.monotonic()
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "models.quantize", str(f32_xml), f"{w}x{h}", str(xml),
               json.dumps(asdict(recipe)), str(os.getpid())]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=env, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise ModelError(f"{f32_xml}: int8 quantization failed ({why.removeprefix('posestream: ')})")
    log.warning("int8: the quantized network is ready (%.0f s)", time.monotonic() - start)


def estimate_seconds(size: tuple[int, int]) -> int:
    """About how long a build takes here: measured once, scaled by pixels and cores, in 5 s steps."""
    scale = size[0] * size[1] / (SAMPLE_SIZE[0] * SAMPLE_SIZE[1]) * 2 / max(1, usable_cores())
    return max(10, 5 * round(SECONDS_AT_432X368 * max(scale, 0.3) / 5))


def quantize_ir(f32_xml: Path, size: tuple[int, int], xml: Path, recipe: Recipe = DEFAULT_RECIPE) -> None:
    """Quantize the f32 IR at ``f32_xml`` for network ``size`` and save the int8 IR at ``xml``.

    Raises:
        ModelError: nncf is not installed, or it failed.
    """
    ov = import_openvino()
    nncf = _import_nncf()
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                       AdvancedSmoothQuantParameters, OverflowFix)
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    model = ov.Core().read_model(str(f32_xml))
    frames = calibration_frames(size)
    frames = frames[:recipe.frames] if recipe.frames else frames
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.FIRST_LAYER,
        smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=recipe.alpha, matmul=recipe.alpha),
        activations_range_estimator_params=None if recipe.activations == "mean_minmax"
        else getattr(RangeEstimatorParametersSet, recipe.activations.upper()))
    log.info("quantizing %s to int8 on %d calibration frames (once per machine)", f32_xml.name, len(frames))
    try:
        quantized = nncf.quantize(
            model, nncf.Dataset(frames), preset=getattr(nncf.QuantizationPreset, recipe.preset.upper()),
            target_device=nncf.TargetDevice.CPU, model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(frames), ignored_scope=nncf.IgnoredScope(names=ignored_layers(model, recipe)),
            advanced_parameters=advanced)
    except Exception as exc:  # nncf raises many kinds
        raise ModelError(f"{f32_xml}: int8 quantization failed ({exc})") from exc
    ov.save_model(quantized, str(xml), compress_to_fp16=False)


def ignored_layers(model, recipe: Recipe = DEFAULT_RECIPE) -> list[str]:
    """Names of the layers kept in f32.

    - Those that read a concatenation: each stage of the network starts from
      the backbone's features (range 0..30) joined to the previous stage's
      heatmaps and fields (0..1); one scale for all of it would leave the
      maps a few levels.
    - The first ``recipe.head`` convolutions of the network (at the full input
      resolution, on the raw pixels): f32 here took keypoint agreement from
      92.5% to 96.5% on the packaged photos.
    - The last ``recipe.tail`` convolutions of each branch, up to its output
      head: their inputs hold a few channels hundreds of times wider than
      the rest, and their errors reach the maps unfiltered (all stage layers
      quantized: 75%; the last 4, 6, 8 of each branch in f32: 88.7%, 91.6%,
      92.5%).

    Found from the graph's structure, so the list does not depend on the
    names the front end gives.
    """
    convolutions = [op for op in model.get_ordered_ops() if op.get_type_name() in CONVOLUTIONS]
    names = [op.get_friendly_name() for op in convolutions[:recipe.head]]
    names += [convolutions[i].get_friendly_name() for i in recipe.f32_convs if i < len(convolutions)]
    for op in convolutions:
        if op.input_value(0).get_node().get_type_name() == "Concat":
            names.append(op.get_friendly_name())
        if op.get_type_name() == "Convolution" and _is_head(op):
            names += [o.get_friendly_name() for o in _branch_tail(op, recipe.tail)]
    return list(dict.fromkeys(names))


def _is_head(op) -> bool:
    """A convolution that writes a stage's heatmaps (19) or fields (38)."""
    channels = op.get_output_partial_shape(0)[1]
    return channels.is_static and channels.get_length() in (19, 38)


def _branch_tail(head, count: int) -> list:
    """``head`` and the convolutions before it on its branch, ``count`` in all."""
    found, node = [], head
    while len(found) < count and node.get_type_name() != "Concat":
        if node.get_type_name() in CONVOLUTIONS:
            found.append(node)
        if node.get_input_size() == 0:
            break
        node = node.input_value(0).get_node()
    return found


def main(argv: list[str]) -> int:
    """``python -m models.quantize F32_XML WxH OUT_XML RECIPE_JSON PARENT_PID``: what ``build_in_child`` runs.

    Errors end with one line on stderr and exit status 1. The child ends
    when its parent does (a run stopped by a signal leaves no quantizer
    behind; the cache keeps nothing of an unfinished build).
    """
    try:
        f32_xml, spelled, xml, recipe, parent = argv
        size = tuple(int(v) for v in spelled.split("x"))
        fields = json.loads(recipe)
        recipe = Recipe(**{**fields, "f32_convs": tuple(fields.get("f32_convs", ()))})
        _end_with_parent(int(parent))  # named, not read here: the parent may be gone already
        logging.getLogger("nncf").setLevel(logging.ERROR)
        quantize_ir(Path(f32_xml), size, Path(xml), recipe)
    except Exception as exc:  # one line for the parent, whatever failed
        print(f"posestream: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


def _end_with_parent(parent: int) -> None:
    """Exit at once when the parent process is gone (this process is re-parented)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _import_nncf():
    try:
        import nncf
    except ImportError as exc:
        raise ModelError("--precision int8: quantizing the model needs nncf, one of "
                         "posestream's packages (pip install 'nncf>=3.0' into its environment); "
                         "it is needed once, to build the model cache") from exc
    return nncf


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
