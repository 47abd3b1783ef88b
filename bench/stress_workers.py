"""Stress the two-worker start-up: many short runs of the real command, each in its own process.

Each run is ``posestream a/x.mp4 b/x.mp4 -o OUT --workers 2`` on two tiny
clips (3 frames at 160x120, network at 160x120): the real model on the real
engine, two CPU workers loading and running their first inference at the
same time, which is where a hang showed (issue 11, item 9). A run that does
not end within ``--timeout`` seconds is a hang: its whole process group is
killed and it is counted; a run that exits non-zero or leaves an output
missing is a failure. ``--jobs`` runs several at once (each still has its
two workers), so a few hundred runs fit in minutes.

Prints one line per hang or failure (with the tail of its stderr) and a
summary line: ``200 runs, 0 hangs, 0 failures, median 2.1 s``.

Usage: .venv/bin/python bench/stress_workers.py [--runs 200] [--jobs 2] [--timeout 60]
                                                 [--backend openvino]
"""

from __future__ import annotations

from _setup import ROOT  # first: sys.path and threads

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from stages.outputs.sample import make_test_clip

SIZE = (160, 120)
FRAMES = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run ended."""

    index: int
    status: str  # "ok", "hang" or "failure"
    seconds: float
    detail: str = ""


def make_inputs(folder: Path) -> list[Path]:
    """Two clips with the same name in two folders (the reported command line)."""
    clips = []
    for sub in ("a", "b"):
        (folder / sub).mkdir()
        clips.append(make_test_clip(folder / sub / "x.mp4", frames=FRAMES, size=SIZE))
    return clips


def command(inputs: list[Path], outdir: Path, backend: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_stream.py"), *map(str, inputs), "-o", str(outdir),
            "--device", "cpu", "--workers", "2", "--backend", backend,
            "--resolution", f"{SIZE[0]}x{SIZE[1]}"]


def run_once(index: int, inputs: list[Path], work: Path, backend: str, timeout: float) -> Outcome:
    """One run in its own process group (so a hang can be killed whole)."""
    outdir = work / f"out{index}"
    t0 = time.monotonic()
    proc = subprocess.Popen(command(inputs, outdir, backend), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        return Outcome(index, "hang", time.monotonic() - t0, _tail(err))
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        return Outcome(index, "failure", seconds, f"exit {proc.returncode}: {_tail(err)}")
    videos = sorted(outdir.rglob("*.mp4"))
    logs = sorted(outdir.rglob("*.jsonl"))
    if len(videos) != 2 or len(logs) != 2 or any(p.stat().st_size == 0 for p in videos + logs):
        return Outcome(index, "failure", seconds, f"outputs {[str(p) for p in videos + logs]}")
    return Outcome(index, "ok", seconds)


def _tail(err: bytes) -> str:
    lines = err.decode(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:])


def summary(outcomes: list[Outcome]) -> str:
    hangs = sum(o.status == "hang" for o in outcomes)
    failures = sum(o.status == "failure" for o in outcomes)
    done = [o.seconds for o in outcomes if o.status == "ok"]
    median = f"median {statistics.median(done):.1f} s" if done else "no run finished"
    return f"{len(outcomes)} runs, {hangs} hangs, {failures} failures, {median}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a run is a hang")
    parser.add_argument("--backend", default="openvino")
    args = parser.parse_args(argv)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="stress_workers_") as tmp:
        work = Path(tmp)
        inputs = make_inputs(work)
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = [pool.submit(run_once, i, inputs, work, args.backend, args.timeout)
                    for i in range(args.runs)]
            for future in runs:
                outcome = future.result()
                outcomes.append(outcome)
                if outcome.status != "ok":
                    print(f"run {outcome.index}: {outcome.status} after {outcome.seconds:.1f} s "
                          f"{outcome.detail}", flush=True)
                if len(outcomes) % 25 == 0:
                    print(f"... {summary(outcomes)}", flush=True)
    print(summary(outcomes), flush=True)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
