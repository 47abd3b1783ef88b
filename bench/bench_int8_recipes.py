"""int8 recipes side by side: each one's accuracy gate and speed, to choose the recipe runs use.

For each recipe of ``models.quantize.Recipe`` listed below (or named with
``--recipes``), at each network size: the f32 IR is quantized with it into a
temporary folder (the model cache is not touched), and its maps on
``bench_precision``'s pictures are compared with TensorFlow f32's by the same
figures and gate (``models.precision``: keypoint agreement >= 96%, full
skeletons within 2%); recipes other than v2 are variants of v3. The
bare network's FPS at batch 1 is measured in this process against OpenVINO
f32's, alternating, so the ratio holds even where the absolute speed does not
(issue 14's target: 1.7x).

The differences between recipes are often below the pictures' own noise (a
JPEG-95 re-encoding moves 1.9% of keypoints): a recipe that passes at one
size and not the other has not passed.

Usage: .venv/bin/python bench/bench_int8_recipes.py [--recipes v2 histogram ...]
       [--sizes 432x368 656x368] [--seconds 2]
"""

from __future__ import annotations

import _setup  # noqa: F401  (first: sys.path and threads)

import argparse
import importlib
import logging
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench_precision import pictures
from models.backend import BackendConfig, load_backend
from models.fetch import fetch_model
from models.openvino_backend import f32_ir
from models.precision import GATE_AGREEMENT, GATE_SKELETONS
from models.quantize import Recipe, quantize_ir
from models.registry import DEFAULT_MODEL, get_model
from stages import PostprocessConfig
from tests.support.agreement import compare, skeletons
from stages.pose.maps_to_people import PafDecoder

BACKBONE_1X1 = tuple(range(6, 23, 2))  # the backbone's pointwise convolutions (most of the arithmetic)
RECIPES = {
    "v3": Recipe(),
    "v2": Recipe(alpha=0.5, head=5),
    "histogram": Recipe(activations="histogram"),
    "mixed": Recipe(preset="mixed"),
    "histogram+mixed": Recipe(activations="histogram", preset="mixed"),
    "minmax": Recipe(activations="minmax"),
    "v2 alpha 0.6": Recipe(head=5),
    "alpha 0.7": Recipe(alpha=0.7),
    "v2 head 6": Recipe(alpha=0.5),
    "tail 10": Recipe(tail=10),
    "late 1x1 f32": Recipe(f32_convs=BACKBONE_1X1[-3:]),
    "backbone f32": Recipe(f32_convs=tuple(range(5, 23))),
}


class _Compiled:
    """An OpenVINO IR compiled as the backend compiles int8 (layers left in float run f32)."""

    def __init__(self, xml: Path) -> None:
        import openvino as ov

        compiled = ov.Core().compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                             "INFERENCE_PRECISION_HINT": "f32"})
        self._request = compiled.create_infer_request()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.array(self._request.infer({0: batch.astype(np.float32)})[0])


def alternating_fps(a, b, frame: np.ndarray, seconds: float, rounds: int = 4) -> tuple[float, float]:
    """Median FPS of ``a`` and ``b`` over ``rounds`` alternating rounds of ``seconds / rounds`` each."""
    rates = ([], [])
    for backend in (a, b):
        backend.infer(frame)
    for _ in range(rounds):
        for backend, out in zip((a, b), rates):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / rounds:
                backend.infer(frame)
                n += 1
            out.append(n / (time.perf_counter() - t0))
    return float(np.median(rates[0])), float(np.median(rates[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--sizes", nargs="*", default=["432x368", "656x368"])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per FPS comparison")
    args = ap.parse_args()
    importlib.import_module("nncf")  # nncf sets its logger's level on import; quiet it after that

    logging.getLogger("nncf").setLevel(logging.WARNING)
    spec = get_model(DEFAULT_MODEL)
    graph = fetch_model(spec)
    images = pictures([])
    decoder = PafDecoder(PostprocessConfig())
    print(f"{len(images)} pictures; gate: agreement >= {GATE_AGREEMENT}%, skeletons within "
          f"{100 * GATE_SKELETONS:.0f}%")
    print(f"{'size':8s} {'recipe':16s} {'build s':>7s} {'heat bias':>9s} {'paf bias':>8s} {'skeletons':>9s} "
          f"{'kp agree':>8s} {'int8/f32':>8s} gate")
    for size in (tuple(int(v) for v in s.split("x")) for s in args.sizes):
        resize = lambda im: cv2.resize(im, size, interpolation=cv2.INTER_CUBIC)[None]  # noqa: E731
        config = BackendConfig(backend="tf", graph=graph, model=spec, precision="f32", resolution=size)
        reference = load_backend(config)
        ref = {k: reference.infer(resize(im))[0] for k, im in images.items()}
        reference.close()
        people_ref = {k: decoder(ref[k], (im.shape[1], im.shape[0])) for k, im in images.items()}
        n_ref = sum(skeletons(ppl) for ppl in people_ref.values())
        f32 = f32_ir(BackendConfig(backend="openvino", graph=graph, model=spec, precision="f32", resolution=size))
        f32_engine = _Compiled(f32.xml)
        frame = resize(images[next(iter(images))])
        for name in args.recipes:
            with tempfile.TemporaryDirectory() as tmp:
                xml = Path(tmp) / "model.xml"
                t0 = time.perf_counter()
                quantize_ir(f32.xml, size, xml, RECIPES[name])
                built = time.perf_counter() - t0
                engine = _Compiled(xml)
            maps = {k: engine.infer(resize(im))[0] for k, im in images.items()}
            m = compare(ref, maps, people_ref, images, decoder)
            fast, slow = alternating_fps(engine, f32_engine, frame, args.seconds)
            change = abs(m["found"] - n_ref) / max(n_ref, 1)
            ok = m["agree"] >= GATE_AGREEMENT and change <= GATE_SKELETONS
            print(f"{size[0]}x{size[1]:<4d} {name:16s} {built:7.0f} {m['heat_bias']:+9.4f} {m['paf_bias']:+8.4f} "
                  f"{m['found']:4d}/{n_ref:<4d} {m['agree']:7.2f}% {fast / slow:7.2f}x "
                  f"{'PASS' if ok else 'FAIL'}", flush=True)


if __name__ == "__main__":
    main()
