"""End-to-end FPS against bare network FPS, measured in the same run.

On a 720p clip with people (made from scikit-image's photos unless a file is
given), prints:
- end-to-end FPS: file in, annotated video and keypoint log out;
- bare network FPS of the same backend at the same resolution, batch 1,
  timed on the clip's own resized frames;
- their ratio (end-to-end / network).

Usage: .venv/bin/python bench/bench_pipeline.py [--clip FILE] [--seconds 6] [--workers N]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as run_stream.py does

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.backend import BackendConfig, load_backend  # noqa: E402
from models.devices import plan_devices  # noqa: E402
from models.registry import get_model  # noqa: E402
from stages.decode import open_source  # noqa: E402
from stages.job import FileJob, JobConfig, resolve_graph  # noqa: E402
from stages.resize import Resizer, parse_resolution  # noqa: E402
from stages.sample import make_sample_clip  # noqa: E402


def network_fps(config: JobConfig, clip: Path, frames: int = 40) -> float:
    """Bare network throughput on resized frames of ``clip`` (median of per-call times)."""
    plan = plan_devices(config.device, workers=1, backend=config.backend)
    backend = load_backend(BackendConfig(backend=plan.backend, graph=resolve_graph(config),
                                         model=get_model(config.model), device=plan.slots[0],
                                         precision=config.precision, resolution=config.resolution))
    resize = Resizer(config.resolution)
    with open_source(clip) as src:
        batch = [resize(f).tensor[None] for _, f in zip(range(frames), src)]
    for x in batch[:3]:
        backend.infer(x)  # warm-up
    times = []
    for x in batch:
        t0 = time.perf_counter()
        backend.infer(x)
        times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--workers", type=int, default=0, help="CPU workers (default 0: as the product chooses)")
    ap.add_argument("--resolution", default="432x368")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--preset", default="veryfast")
    args = ap.parse_args()
    config = JobConfig(resolution=parse_resolution(args.resolution), workers=args.workers,
                       backend=args.backend, precision=args.precision, preset=args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or make_sample_clip(Path(tmp) / "people720p.mp4", seconds=args.seconds,
                                             fps=Fraction(25), size=(1280, 720))
        net = network_fps(config, clip)
        stamps: list[float] = []
        summary = FileJob(clip, Path(tmp) / "out", config).run(
            on_result=lambda _r: stamps.append(time.perf_counter()))
    # steady state: from the first result out to the last (model loading excluded)
    e2e = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    plan = plan_devices(config.device, workers=config.workers, backend=config.backend)
    print(f"clip: {clip.name if args.clip else '1280x720 sample'}, {summary.frames_written} frames, "
          f"network {args.resolution}, backend {plan.backend} {args.precision}, workers {plan.workers}")
    print(f"whole run FPS (incl. model load):  {summary.fps:6.2f}")
    print(f"end-to-end FPS (steady state):     {e2e:6.2f}")
    print(f"bare network FPS (batch 1):        {net:6.2f}")
    print(f"ratio end-to-end / network:        {e2e / net:6.3f}")


if __name__ == "__main__":
    main()
