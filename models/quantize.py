"""The int8 model: the f32 IR quantized once with NNCF, kept in the model cache.

NNCF's post-training quantization with its defaults breaks this graph (about
6% of keypoints agree with f32; ten times the skeletons): the inputs of the
pointwise convolutions that follow each depthwise one carry a few channels
with hundreds of times the range of the others, and one int8 scale per
tensor rounds the small channels away. The recipe here:

- SmoothQuant on the convolutions (NNCF migrates each input channel's range
  into the weights, which are quantized per output channel anyway);
- the layers that still hurt stay in f32 (``ignored_layers``): the first
  five of the network, the first of each stage branch and the last eight
  before each output head (the backbone's wide 1x1 convolutions, most of the
  arithmetic, stay int8);
- overflow fix ``FIRST_LAYER`` (NNCF's default): the first quantized layer
  gets 7-bit weights, so its u8 x s8 products summed in pairs cannot
  saturate the int16 of AVX2's ``vpmaddubsw`` on CPUs without VNNI. Later
  layers read sparse ReLU outputs, where a saturating pair is rare;
  ``ENABLE`` (7-bit weights everywhere) cost 7.6 points of keypoint
  agreement on the gate's pictures (88.9% against 96.4%), so it is not used.
  CPUs with VNNI or AMX accumulate in int32 and never saturate.

Calibration frames come from ``models.calibration`` (packaged photos, never
the user's). nncf is imported only when the IR is built: a run that finds
the IR in the cache does not need it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from models.calibration import CALIBRATION_RECIPE, calibration_frames
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
    """

    alpha: float = 0.5
    activations: str = "mean_minmax"
    preset: str = "performance"
    head: int = 5
    tail: int = 8
    f32_convs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATION_RANGES or self.preset not in ("performance", "mixed"):
            raise ModelError(f"int8 recipe: unknown activation ranges {self.activations!r} "
                             f"or preset {self.preset!r}")

    def describe(self) -> str:
        """The recipe in words (recipe v2, the default, keeps its words of the last release)."""
        extra = ""
        if self.activations != "mean_minmax":
            extra += f", activation ranges {self.activations}"
        if self.f32_convs:
            extra += f", f32 convolutions {list(self.f32_convs)}"
        return (f"nncf ptq {self.preset}, smoothquant conv {self.alpha}, overflow fix first layer{extra}, "
                f"f32: the first {self.head} convolutions, concat consumers and the last {self.tail} "
                f"of each branch; calibration: {CALIBRATION_RECIPE} (v2)")


DEFAULT_RECIPE = Recipe()
INT8_RECIPE = DEFAULT_RECIPE.describe()


def int8_ir(graph: Path, f32: CachedModel, size: tuple[int, int] | None,
            recipe: Recipe = DEFAULT_RECIPE) -> CachedModel:
    """The int8 IR of ``graph`` at network ``size``, quantized on the first call on this machine.

    Keyed by the graph's SHA-256, the size, the recipe's words (which name
    the calibration recipe) and the f32 IR it starts from.

    Args:
        graph: The TensorFlow graph file.
        f32: Its f32 IR at ``size`` (from the model cache).
        size: Network input (width, height); int8 needs a fixed one.
        recipe: How to quantize (the default is the one runs use).

    Raises:
        ModelError: No fixed size, the graph is unreadable, or quantizing failed.
    """
    if size is None:
        raise ModelError("--precision int8 needs a fixed network size (--resolution WxH)")
    try:
        digest = file_sha256(Path(graph))
    except OSError as exc:
        raise ModelError(f"{graph}: cannot read graph ({exc.strerror})") from exc
    spelled = f"{size[0]}x{size[1]}"
    parts = {"graph": digest, "size": spelled, "recipe": recipe.describe(), "f32_ir": f32.xml.parent.name}
    return cached_ir(f"{Path(graph).stem}-{digest[:12]}-{spelled}-int8", parts,
                     lambda xml: quantize_ir(f32.xml, size, xml, recipe))


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


def _import_nncf():
    try:
        import nncf
    except ImportError as exc:
        raise ModelError("--precision int8: quantizing the model needs nncf "
                         "(pip install 'posestream[int8]'); it is needed once, to build the "
                         "model cache") from exc
    return nncf
