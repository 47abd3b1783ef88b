"""Whole-process wall time of one 720p image, cold and warm, and where the time goes.

Runs ``posestream photo.jpg -o OUT`` as a new process on a 1280x720 picture
with people (scikit-image's photos, as ``stages.outputs.sample`` makes them), with
the model cache ($POSESTREAM_CACHE) in three states, alternating:

- cold: a fresh cache that holds only the fetched graph (nothing converted
  or compiled yet; the one-time download of the graph is not counted);
- warm: the cache as the first run left it (IR and compiled blob in place);
- uncached: a cache that cannot be written (the graph given with --graph),
  which converts and compiles on every run, as every run did before the
  model cache.

Then the engine's two start-up steps alone, each in new processes: reading
the model (TF graph and reshape, or the cached IR) and compiling it (with
and without OpenVINO's compiled-blob cache, ``CACHE_DIR``).

Then one probe run of each of cold and warm, in which the same command runs
in a process that times its phases: interpreter start, imports, model
fetch and check, model load (IR read or conversion, compile, warm-up
inference), decode, network, postprocess, render, and writing the outputs.
Phases of the pool's workers overlap (one copy per core loads at once), so
the probe prints each phase's busy time and when it started and ended.

Last, a batch: N copies of the picture in one run against N runs of one
picture (warm), to show that a batch pays start-up once.

With ``--baseline DIR`` (an older checkout) its CLI runs in each round too,
on the warm cache, so that a change is measured against the code before it;
``--versus REV`` makes that checkout itself, a ``git worktree`` of REV in a
temporary folder (removed at the end; this checkout is not touched). The two
warm runs alternate, in turn first and second (ABBA), after one unmeasured
run of each (which writes the baseline's bytecode); the report gives both
medians and their ratio. ``--warm-only`` leaves out the cold and uncached
runs and the sections after the rounds, for a quick A/B of start-up. The
probe (phases) runs on this checkout only: its module names are this tree's.

Usage: .venv/bin/python bench/bench_startup.py [--rounds 3] [--batch 4] [--backend auto]
       [--baseline DIR | --versus REV] [--warm-only]
"""

from __future__ import annotations

from _setup import ROOT  # first: sys.path and threads

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

PRELOADED = ("numpy", "cv2", "av", "run_stream", "stages.jobs.file_job", "stages.jobs.batch", "stages.sources.stream",
             "stages.options", "stages.display.console", "stages.jobs.builder", "stages.jobs.engine",
             "stages.sources.image", "stages.pose.maps_to_people", "stages.pose.draw",
             "stages.outputs.file_set")


# --- the parent: runs and report ----------------------------------------------------------------

def make_photo(path: Path) -> Path:
    """A 1280x720 JPEG with two people (the astronaut and the cameraman)."""
    import cv2

    from stages.outputs.sample import sample_frames

    cv2.imwrite(str(path), next(sample_frames(1, (1280, 720))))
    return path


def fresh_cache(root: Path, graph: Path) -> Path:
    """A model cache holding only the fetched graph."""
    from models.fetch import model_path
    from models.registry import DEFAULT_MODEL, get_model

    dest = model_path(get_model(DEFAULT_MODEL), root)
    dest.parent.mkdir(parents=True)
    shutil.copy(graph, dest)
    return root


def run_cli(inputs: list[Path], out: Path, cache: Path, extra: list[str], probe: Path | None = None,
            tree: Path = ROOT) -> float:
    """Wall seconds of one ``posestream`` process (or of its probe), run from ``tree``."""
    cmd = [sys.executable, "-m", "run_stream"]
    if probe is not None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", str(probe), "--"]
    cmd += [*map(str, inputs), "-o", str(out), *extra]
    env = {**os.environ, "POSESTREAM_CACHE": str(cache), "POSESTREAM_LAUNCH": repr(time.time())}
    # as a user's runs do, every tree's runs load bytecode (its first run writes it), not source
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"posestream failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return wall


def timed_rounds(tmp: Path, photo: Path, graph: Path, backend: list[str], rounds: int,
                 baseline: Path | None, warm_only: bool = False) -> dict[str, list[float]]:
    """Cold, warm and uncached runs (and the baseline tree's warm one), alternating."""
    warm = fresh_cache(tmp / "warm-cache", graph)
    run_cli([photo], tmp / "out-first", warm, backend)  # fills the warm cache
    if baseline is not None:  # its bytecode, and the cache in case its layout differs
        check_tree(baseline)
        run_cli([photo], tmp / "out-base-first", warm, backend, tree=baseline)
    blocked = tmp / "blocked-cache"
    blocked.write_text("a file: the cache cannot be written")
    times: dict[str, list[float]] = {} if warm_only else {"cold": [], "uncached": []}
    times["warm"] = []
    for i in range(rounds):
        if not warm_only:
            cold = fresh_cache(tmp / f"cold-cache-{i}", graph)
            times["cold"].append(run_cli([photo], tmp / f"out-cold-{i}", cold, backend))
            times["uncached"].append(run_cli([photo], tmp / f"out-unc-{i}", blocked,
                                             [*backend, "--graph", str(graph)]))
        trees = [("warm", ROOT)] + ([("baseline", baseline)] if baseline is not None else [])
        for kind, tree in trees if i % 2 == 0 else trees[::-1]:
            times.setdefault(kind, []).append(
                run_cli([photo], tmp / f"out-{kind}-{i}", warm, backend, tree=tree))
        print(f"round {i + 1}: " + "  ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
              flush=True)
    return times


def check_tree(tree: Path) -> None:
    """Refuse a baseline whose runs would import this checkout's code (an installed copy first)."""
    found = subprocess.run([sys.executable, "-c", "import run_stream; print(run_stream.__file__)"],
                           cwd=tree, check=True, capture_output=True, text=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"{tree}: `python -m run_stream` there imports {found}, not its own code")


@contextlib.contextmanager
def worktree(rev: str, parent: Path) -> Iterator[Path]:
    """A checkout of ``rev`` (``git worktree add``) under ``parent``, removed afterwards."""
    path = parent / "versus-tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
                   check=True, capture_output=True, text=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                       check=True, capture_output=True, text=True)


def versus_report(times: dict[str, list[float]], label: str) -> None:
    """This tree's warm runs against the baseline's: both medians and their ratio.

    Also the median of each round's own ratio (its two runs ran back to back,
    so a load that drifts over the rounds cancels) and the fastest runs (the
    least disturbed).
    """
    ours, theirs = times["warm"], times["baseline"]
    paired = statistics.median(a / b for a, b in zip(ours, theirs))
    print(f"\nwarm single picture, {len(ours)} alternating runs each: this tree / {label}\n"
          f"  medians  {statistics.median(ours):.3f} s / {statistics.median(theirs):.3f} s, "
          f"ratio {statistics.median(ours) / statistics.median(theirs):.3f}\n"
          f"  fastest  {min(ours):.3f} s / {min(theirs):.3f} s, ratio {min(ours) / min(theirs):.3f}\n"
          f"  median of the rounds' ratios {paired:.3f}")


def probe_report(tmp: Path, photo: Path, graph: Path, backend: list[str]) -> None:
    """One probe run cold and one warm; print their phases."""
    warm = fresh_cache(tmp / "probe-cache", graph)
    for label in ("cold", "warm"):
        spans = tmp / f"spans-{label}.json"
        wall = run_cli([photo], tmp / f"out-probe-{label}", warm, backend, probe=spans)
        print(f"\n{label} run, {wall:.2f} s wall (probe): phase, busy s (calls), from-to s after launch")
        for name, busy, calls, first, last in phases(json.loads(spans.read_text())):
            print(f"  {name:28s} {busy:6.3f} ({calls:2d})  {first:6.3f}-{last:6.3f}")


def phases(spans: list[list]) -> list[tuple[str, float, int, float, float]]:
    """Each phase's busy time, calls, first start and last end, in order of start."""
    by_name: dict[str, list] = {}
    for name, start, end in spans:
        by_name.setdefault(name, []).append((start, end))
    rows = [(name, sum(e - s for s, e in v), len(v), min(s for s, _ in v), max(e for _, e in v))
            for name, v in by_name.items()]
    return sorted(rows, key=lambda r: r[3])


def batch_report(tmp: Path, photo: Path, graph: Path, backend: list[str], n: int,
                 rounds: int) -> None:
    """N pictures in one run against N runs of one picture, warm, alternating."""
    cache = fresh_cache(tmp / "batch-cache", graph)
    run_cli([photo], tmp / "out-b0", cache, backend)
    photos = []
    for i in range(n):
        photos.append(tmp / f"photo{i}.jpg")
        shutil.copy(photo, photos[-1])
    batches, singles = [], []
    for r in range(rounds):
        singles.append(sum(run_cli([p], tmp / f"out-single-{r}-{i}", cache, backend)
                           for i, p in enumerate(photos)))
        batches.append(run_cli(photos, tmp / f"out-batch-{r}", cache, backend))
    batch, single = statistics.median(batches), statistics.median(singles)
    print(f"\n{n} pictures (medians of {rounds}): one batch run {batch:.2f} s, {n} runs of one "
          f"{single:.2f} s ({single / batch:.1f}x); per extra picture in the batch "
          f"{(batch - single / n) / max(1, n - 1):.2f} s")


ENGINE_STEP = """
import sys, time
import numpy as np
from models.offline import import_openvino
mode, graph, xml, blobs, w, h = sys.argv[1:7]
ov = import_openvino()
core = ov.Core()
props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
t0 = time.perf_counter()
if mode == "tf graph":
    model = core.read_model(graph)
    model.reshape({model.inputs[0]: ov.PartialShape([-1, int(h), int(w), 3])})
else:
    model = xml  # the plugin reads the IR itself (or, with CACHE_DIR, only the blob)
    if mode == "IR + CACHE_DIR":
        props["CACHE_DIR"] = blobs
t1 = time.perf_counter()
compiled = core.compile_model(model, "CPU", props)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def engine_steps(tmp: Path, graph: Path, rounds: int) -> None:
    """Read and compile in new processes: TF graph vs cached IR vs IR with OpenVINO's CACHE_DIR."""
    from models.model_cache import IR_FOLDER

    cache = tmp / "warm-cache"
    xml = next((cache / IR_FOLDER).glob("*432x368*/model.xml"))
    blobs = tmp / "steps-blobs"
    args = [str(graph), str(xml), str(blobs), "432", "368"]
    modes = ("tf graph", "IR", "IR + CACHE_DIR")
    subprocess.run([sys.executable, "-c", ENGINE_STEP, modes[2], *args], cwd=ROOT, check=True,
                   capture_output=True)  # fills the blob cache
    seen: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    for _ in range(rounds):
        for mode in modes:
            out = subprocess.run([sys.executable, "-c", ENGINE_STEP, mode, *args], cwd=ROOT,
                                 check=True, capture_output=True, text=True).stdout.split()
            seen[mode].append((float(out[0]), float(out[1])))
    print("\nmodel read and compile, new process each (432x368, f32), medians:")
    for mode, values in seen.items():
        read = statistics.median(v[0] for v in values)
        comp = statistics.median(v[1] for v in values)
        print(f"  {mode:15s} read {read:.3f} s  compile {comp:.3f} s  sum {read + comp:.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="cold/warm/uncached rounds")
    ap.add_argument("--batch", type=int, default=4, help="pictures in the batch comparison")
    ap.add_argument("--backend", default="auto")
    versus = ap.add_mutually_exclusive_group()
    versus.add_argument("--baseline", type=Path,
                        help="another checkout (e.g. `git archive` of an older commit): its CLI runs "
                             "in each round too, on the warm cache")
    versus.add_argument("--versus", metavar="REV",
                        help="as --baseline, on a temporary `git worktree` of REV (e.g. 65db4fa)")
    ap.add_argument("--warm-only", action="store_true",
                    help="only the warm runs (and the baseline's): no cold, uncached, engine steps, "
                         "probe or batch")
    args = ap.parse_args()
    from models.fetch import fetch_model
    from models.registry import DEFAULT_MODEL, get_model

    graph = fetch_model(get_model(DEFAULT_MODEL))
    backend = ["--backend", args.backend]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name, contextlib.ExitStack() as stack:
        tmp = Path(name)
        baseline = stack.enter_context(worktree(args.versus, tmp)) if args.versus else args.baseline
        label = args.versus or (str(args.baseline) if args.baseline else "")
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start", flush=True)
        photo = make_photo(tmp / "photo.jpg")
        times = timed_rounds(tmp, photo, graph, backend, args.rounds, baseline, args.warm_only)
        print("\nmedian wall time of `posestream photo.jpg -o OUT` (1280x720, new process):")
        for kind, values in times.items():
            print(f"  {kind:9s} {statistics.median(values):.2f} s, fastest {min(values):.2f} s  (runs: "
                  f"{', '.join(f'{v:.2f}' for v in values)})")
        if baseline is not None:
            versus_report(times, label)
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end", flush=True)
        if args.warm_only:
            return
        if args.backend in ("auto", "openvino"):
            engine_steps(tmp, graph, args.rounds)
        probe_report(tmp, photo, graph, backend)
        batch_report(tmp, photo, graph, backend, args.batch, max(1, args.rounds // 2))


# --- the child: the CLI with its phases timed ---------------------------------------------------

class Spans:
    """Records (phase, start, end) in seconds after the process was launched."""

    def __init__(self, launch: float) -> None:
        self.offset = launch - time.time() + time.perf_counter()
        self.items: list[list] = []

    def add(self, name: str, start: float, end: float) -> None:
        self.items.append([name, start - self.offset, end - self.offset])

    def wrap(self, owner, attr: str, name: str | None = None, first: str | None = None) -> None:
        """Time every call of ``owner.attr``; the first call per instance as ``first``."""
        real, seen = getattr(owner, attr), set()
        spans = self

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                key = id(args[0]) if args else None
                label = first if first and key not in seen else name or attr
                seen.add(key)
                spans.add(label, start, time.perf_counter())

        setattr(owner, attr, timed)


class TimedCore:
    """OpenVINO's Core with ``compile_model`` timed."""

    def __init__(self, core, spans: Spans) -> None:
        self._core, self._spans = core, spans

    def compile_model(self, model, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._core.compile_model(model, *args, **kwargs)
        finally:
            name = "compile" if isinstance(model, str) else "compile (one-op statics model)"
            self._spans.add(name, start, time.perf_counter())

    def __getattr__(self, name):
        return getattr(self._core, name)


def probe(out: Path, argv: list[str]) -> int:
    """Run the CLI with ``argv``, timing its phases into ``out`` (JSON)."""
    spans = Spans(float(os.environ["POSESTREAM_LAUNCH"]))
    spans.add("python start", spans.offset, time.perf_counter())
    start = time.perf_counter()
    import importlib

    for module in PRELOADED:
        importlib.import_module(module)
    spans.add("imports (CLI, numpy, cv2, av)", start, time.perf_counter())
    _instrument(spans)
    import run_stream

    start = time.perf_counter()
    try:
        return run_stream.main(argv)
    finally:
        spans.add("CLI main (all of the run)", start, time.perf_counter())
        out.write_text(json.dumps(spans.items))


def _instrument(spans: Spans) -> None:
    import stages.jobs.engine
    import stages.sources.image
    import stages.pose.network
    from stages.outputs.file_set import FileOutputs
    from stages.pose.maps_to_people import PafDecoder
    from stages.pose.draw import Renderer

    spans.wrap(stages.jobs.engine, "fetch_model", "model fetch/verify")
    spans.wrap(stages.pose.network, "load_backend", "model load (per copy)")
    spans.wrap(stages.sources.image, "_read_image", "decode")
    spans.wrap(PafDecoder, "__call__", "postprocess")
    spans.wrap(Renderer, "__call__", "render")
    spans.wrap(FileOutputs, "write", "write")
    spans.wrap(FileOutputs, "close", "write (commit outputs)")
    try:
        import models.openvino_backend as ovb
    except ImportError:
        return
    spans.wrap(ovb, "import_openvino", "openvino import (again)", first="openvino import")
    spans.wrap(ovb, "_converted", "IR (cache or conversion)")
    core = ovb._core
    ovb._core = lambda: TimedCore(core(), spans)
    spans.wrap(ovb.OpenVINOBackend, "infer", "network", first="network (a copy's first frame)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--probe":
        sys.exit(probe(Path(sys.argv[2]), sys.argv[4:]))
    main()
