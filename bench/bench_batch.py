"""Batch throughput: 20 short clips, one file at a time vs several in flight, same pool.

Makes 20 short clips with people (scikit-image's photos; lengths vary from
0.4 to 2 s so files end at different times), then runs the same batch through
the same inference pool settings twice: with one file decoded at a time
(--files-in-flight 1) and with several (default 4). Prints total frames per
second of each and their ratio. --force so the second run is not skipped.

Usage: .venv/bin/python bench/bench_batch.py [--clips 20] [--lanes 4] [--workers 2]
"""

from __future__ import annotations

import _setup  # noqa: F401  (first: sys.path and threads)

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from stages import JobConfig
from stages.jobs.batch import BatchJob
from stages.outputs.sample import make_sample_clip
from stages.sources.inputs import expand_inputs


def throughput(data: Path, out: Path, config: JobConfig, lanes: int) -> tuple[int, float]:
    items = expand_inputs([str(data)])
    t0 = time.perf_counter()
    reports = BatchJob(items, out, config, lanes=lanes, force=True).run()
    seconds = time.perf_counter() - t0
    return sum(r.frames for r in reports.values()), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    config = JobConfig(workers=args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "clips"
        data.mkdir()
        for i in range(args.clips):
            make_sample_clip(data / f"clip{i:02d}.mp4", seconds=0.4 + 1.6 * (i % 5) / 4,
                             fps=Fraction(25), size=(640, 360))
        throughput(data, Path(tmp) / "warm", config, 1)  # model files, caches
        one_frames, one_s = throughput(data, Path(tmp) / "one", config, 1)
        many_frames, many_s = throughput(data, Path(tmp) / "many", config, args.lanes)
    print(f"{args.clips} clips, {one_frames} frames, {args.workers} workers, default backend")
    print(f"one file at a time:      {one_frames / one_s:6.2f} FPS ({one_s:.1f} s)")
    print(f"{args.lanes} files in flight:      {many_frames / many_s:6.2f} FPS ({many_s:.1f} s)")
    print(f"ratio:                   {(many_frames / many_s) / (one_frames / one_s):6.2f}x")


if __name__ == "__main__":
    main()
