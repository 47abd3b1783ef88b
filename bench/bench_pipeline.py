"""End-to-end FPS with and without the video, against bare network FPS, in the same run.

On a 720p clip with people (made from scikit-image's photos unless a file is
given), prints:
- end-to-end FPS: file in, annotated video and keypoint log out;
- end-to-end FPS keypoints only (``--no-video``: nothing drawn or encoded),
  and its ratio to the run with the video (issue 12's target: at least 1.25x);
- per run, each stage's busy time per frame (wall time inside the stage's
  function, summed over its workers) and the process's CPU time per frame in
  the steady state (which a machine loaded by others disturbs less than the
  FPS), and the ratio of those CPU times;
- bare network FPS of the same backend at the same resolution, batch 1,
  timed on the clip's own resized frames, and end-to-end / network.

The two kinds of run alternate, ``--repeat`` times each (default 2); the
ratio is of their medians.

``--versus PRECISION`` compares two precisions instead (issue 14: int8
against f32, target at least 1.5x): runs with the video at ``--precision``
and at PRECISION alternate, and the ratio of their end-to-end FPS and of
their bare network FPS is printed.

Usage: .venv/bin/python bench/bench_pipeline.py [--clip FILE] [--seconds 6] [--workers N]
       [--repeat 2] [--precision int8 --versus f32]
"""

from __future__ import annotations

import _setup  # noqa: F401  (first: sys.path and threads)

import argparse
import dataclasses
import resource
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from bench_backends import cpu_flags
from models.backend import BackendConfig, load_backend
from models.devices import plan_devices
from models.registry import get_model
from stages import JobConfig, JobSummary
from stages.jobs.engine import resolve_graph
from stages.jobs.file_job import FileJob
from stages.outputs.sample import make_sample_clip
from stages.pose.resize import Resizer, parse_resolution
from stages.sources.video import open_source


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


@dataclasses.dataclass(frozen=True)
class Run:
    """One end-to-end run of the clip."""

    video: bool
    summary: JobSummary
    fps: float  # steady state: from the first result out to the last (model loading excluded)
    cpu_per_frame: float  # process CPU seconds (every thread) per frame, steady state

    def stages(self) -> str:
        """Each stage's busy milliseconds per frame (summed over its workers)."""
        stats = self.summary.statistics.stages if self.summary.statistics else ()
        frames = max(1, self.summary.frames_written)
        return "  ".join(f"{s.name} {1000 * s.busy_seconds / frames:.1f}" for s in stats)


def end_to_end(clip: Path, outdir: Path, config: JobConfig) -> Run:
    """Process ``clip`` into ``outdir`` once, as the command line does."""
    stamps: list[tuple[float, float]] = []  # (wall, process CPU) as each result comes out
    summary = FileJob(clip, outdir, config).run(
        on_result=lambda _r: stamps.append((time.perf_counter(), _cpu_seconds())))
    (wall0, cpu0), (wall1, cpu1) = stamps[0], stamps[-1]
    frames = len(stamps) - 1
    return Run(config.video, summary, frames / (wall1 - wall0), (cpu1 - cpu0) / frames)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--workers", type=int, default=0, help="CPU workers (default 0: as the product chooses)")
    ap.add_argument("--resolution", default="432x368")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each kind, alternating")
    ap.add_argument("--versus", help="another precision: compare the two end to end (with video)")
    args = ap.parse_args()
    config = JobConfig(resolution=parse_resolution(args.resolution), workers=args.workers,
                       backend=args.backend, precision=args.precision, preset=args.preset)
    if args.versus:
        versus(config, args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or make_sample_clip(Path(tmp) / "people720p.mp4", seconds=args.seconds,
                                             fps=Fraction(25), size=(1280, 720))
        net = network_fps(config, clip)
        runs = []
        for i in range(max(1, args.repeat)):
            for video in (True, False):
                run = end_to_end(clip, Path(tmp) / f"out-{i}-{video}",
                                 dataclasses.replace(config, video=video))
                runs.append(run)
                print(f"run {i + 1} {'with video' if video else 'no video  '}: {run.fps:6.2f} FPS, "
                      f"CPU {1000 * run.cpu_per_frame:5.1f} ms/frame; stage ms/frame: {run.stages()}",
                      flush=True)
    plan = plan_devices(config.device, workers=config.workers, backend=config.backend)
    print(f"clip: {clip.name if args.clip else '1280x720 sample'}, "
          f"{runs[0].summary.frames_written} frames, network {args.resolution}, "
          f"backend {plan.backend} {args.precision}, workers {plan.workers}")
    print(f"CPU: {cpu_flags()}")
    report(runs, net)


def versus(config: JobConfig, args) -> None:
    """Alternate end-to-end runs (with video) at two precisions; print both and their ratio."""
    precisions = (config.precision, args.versus)
    fps: dict[str, list[float]] = {p: [] for p in precisions}
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or make_sample_clip(Path(tmp) / "people720p.mp4", seconds=args.seconds,
                                             fps=Fraction(25), size=(1280, 720))
        net = {p: network_fps(dataclasses.replace(config, precision=p), clip) for p in precisions}
        for i in range(max(1, args.repeat)):
            for p in precisions:
                run = end_to_end(clip, Path(tmp) / f"out-{i}-{p}", dataclasses.replace(config, precision=p))
                fps[p].append(run.fps)
                print(f"run {i + 1} {p:5s}: {run.fps:6.2f} FPS, CPU {1000 * run.cpu_per_frame:5.1f} ms/frame; "
                      f"stage ms/frame: {run.stages()}; engine {run.summary.engine or ''}", flush=True)
    a, b = precisions
    e2e = {p: statistics.median(v) for p, v in fps.items()}
    print(f"clip: {clip.name if args.clip else '1280x720 sample'}, network {args.resolution}")
    print(f"CPU: {cpu_flags()}")
    for p in precisions:
        print(f"{p:5s}: end-to-end {e2e[p]:6.2f} FPS, bare network {net[p]:6.2f} FPS (batch 1)")
    print(f"ratio {a} / {b}: end to end {e2e[a] / e2e[b]:.2f}x, network {net[a] / net[b]:.2f}x")


def report(runs: list[Run], net: float) -> None:
    """Print the medians of the runs of each kind and their ratios."""
    with_video = [r for r in runs if r.video]
    without = [r for r in runs if not r.video]
    e2e = statistics.median(r.fps for r in with_video)
    e2e_nv = statistics.median(r.fps for r in without)
    cpu = statistics.median(r.cpu_per_frame for r in with_video)
    cpu_nv = statistics.median(r.cpu_per_frame for r in without)
    print(f"whole run FPS (incl. model load):  {statistics.median(r.summary.fps for r in with_video):6.2f}")
    print(f"end-to-end FPS (steady state):     {e2e:6.2f}")
    print(f"end-to-end FPS, --no-video:        {e2e_nv:6.2f}")
    print(f"ratio --no-video / video:          {e2e_nv / e2e:6.3f}  (target >= 1.25)")
    print(f"CPU ms/frame, video / --no-video:  {1000 * cpu:6.1f} / {1000 * cpu_nv:.1f} "
          f"(ratio {cpu / cpu_nv:.3f}; the video's share of the CPU {1 - cpu_nv / cpu:.0%})")
    print(f"bare network FPS (batch 1):        {net:6.2f}")
    print(f"ratio end-to-end / network:        {e2e / net:6.3f}")


if __name__ == "__main__":
    main()
