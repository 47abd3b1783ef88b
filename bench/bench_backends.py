"""Bare network FPS of every CPU backend present, measured in one run.

For each backend (TensorFlow; OpenVINO in f32 and in its native precision,
bf16 on CPUs with AMX), at 432x368 and 656x368, batch 1 and 4: frames per
second over repeated calls on real frames (scikit-image's astronaut), after
warm-up, and the ratio to TensorFlow at the same size and batch.

Usage: .venv/bin/python bench/bench_backends.py [--seconds 4]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.backend import BackendConfig, load_backend  # noqa: E402
from models.fetch import fetch_model  # noqa: E402
from models.registry import DEFAULT_MODEL, get_model  # noqa: E402

SIZES = ((432, 368), (656, 368))
BATCHES = (1, 4)


def fps(backend, batch: np.ndarray, seconds: float) -> float:
    for _ in range(2):
        backend.infer(batch)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        backend.infer(batch)
        n += 1
    return n * len(batch) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    spec = get_model(DEFAULT_MODEL)
    graph = fetch_model(spec)
    engines = [("tf", "f32")]
    if importlib.util.find_spec("openvino"):
        engines += [("openvino", "f32"), ("openvino", "auto")]
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    print(f"{'backend':10s} {'precision':9s} {'size':8s} {'batch':>5s} {'FPS':>7s} {'vs tf':>6s}")
    for name, precision in engines:
        for w, h in SIZES:
            backend = load_backend(BackendConfig(backend=name, graph=graph, model=spec,
                                                 precision=precision, resolution=(w, h)))
            shown = getattr(backend, "precision", precision)
            frame = cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC)
            for b in BATCHES:
                rate = fps(backend, np.stack([frame] * b), args.seconds)
                base = BASE.setdefault((w, h, b), rate)
                print(f"{name:10s} {shown:9s} {w}x{h:<4d} {b:5d} {rate:7.2f} {rate / base:5.2f}x")
            backend.close()


BASE: dict[tuple[int, int, int], float] = {}

if __name__ == "__main__":
    main()
