"""Pool scaling with a simulated device, and the host ceiling with a zero-cost one.

Everything here runs the whole pipeline (decode, resize, pool, post-network
step, render, H.264 encode, keypoint log) with bench/simulated_device.py in
place of the network: these figures are about our runtime and the host, not
about any accelerator.

- scaling: N = 1, 2, 4, 8, 16 workers of a 70 ms simulated device (the
  write-up's per-NeuronCore frame time); throughput and efficiency against
  N x the single-worker throughput. Frames are small (320x240 in, 64x48
  network) so the host is not what limits 16 workers on 2 cores.
- ceiling: full pipeline FPS at 1280x720 with a zero-cost device.

Usage: .venv/bin/python bench/bench_host.py [--latency 0.07] [--workers 1,2,4,8,16]
"""

from __future__ import annotations

import _setup  # noqa: F401  (first: sys.path, threads; bench/ holds simulated_device)

import argparse
import os
import tempfile
import time
from pathlib import Path

from stages import JobConfig
from stages.jobs.file_job import FileJob
from stages.outputs.sample import make_sample_clip


def steady_fps(clip: Path, outdir: Path, config: JobConfig) -> float:
    """Results per second from the first result out to the last."""
    stamps: list[float] = []
    FileJob(clip, outdir, config).run(on_result=lambda _r: stamps.append(time.perf_counter()))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def scaling(tmp: Path, latency: float, counts: list[int]) -> None:
    os.environ["POSESTREAM_SIM_LATENCY"] = str(latency)
    frames = max(60, int(max(counts) / latency * 3))
    clip = make_sample_clip(tmp / "small.mp4", seconds=frames / 25, size=(320, 240))
    print(f"pool scaling, simulated device {1000 * latency:.0f} ms/call, {frames} frames 320x240:")
    print("  workers    FPS   ideal  efficiency")
    base = None
    for n in counts:
        config = JobConfig(backend="simulated_device:SimulatedDevice", workers=n,
                           resolution=(64, 48), queue_size=max(8, 2 * n))
        fps = steady_fps(clip, tmp / f"out{n}", config)
        base = base or fps
        print(f"  {n:7d} {fps:6.1f} {n * base:7.1f} {fps / (n * base):10.1%}")


def ceiling(tmp: Path) -> None:
    clip = make_sample_clip(tmp / "hd.mp4", seconds=8, size=(1280, 720))
    config = JobConfig(backend="simulated_device:ZeroCost", workers=1)
    fps = steady_fps(clip, tmp / "ceiling", config)
    print(f"host ceiling, zero-cost device, 1280x720 -> 432x368, whole pipeline: {fps:.1f} FPS")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.070)
    ap.add_argument("--workers", default="1,2,4,8,16")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ceiling(Path(tmp))
        scaling(Path(tmp), args.latency, [int(n) for n in args.workers.split(",")])


if __name__ == "__main__":
    main()
