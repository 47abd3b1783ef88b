"""Bare network FPS of every CPU backend present, each in its own process.

For each backend (TensorFlow; OpenVINO in f32, in its native precision,
bf16 on CPUs with AMX, and in int8 when nncf is installed or the int8 IR is
in the model cache), at 432x368 and 656x368, batch 1 and 4: frames per
second over repeated calls on a real frame (scikit-image's astronaut), after
warm-up, and the ratios to TensorFlow and to OpenVINO f32 at the same size
and batch (issue 14's target for int8: at least 1.7x OpenVINO f32 at batch 1).

Each backend runs in a fresh process, so no engine's idle thread pools share
the cores with the one being measured (a TensorFlow session left in the
process slowed OpenVINO by about 6% here). ``--rounds`` repeats the whole set
with the order of the backends rotated; the table gives each median and the
range over rounds, and the ratio of the medians.

``ONEDNN_MAX_CPU_ISA=AVX2`` in the environment makes OpenVINO's CPU plugin
dispatch only AVX2 kernels (no AVX-512, VNNI or AMX): how int8 fares on the
AVX2-only CPUs many people have, emulated on a newer one (its caches and
memory stay the newer CPU's). The first line says when it is set.

Usage: .venv/bin/python bench/bench_backends.py [--seconds 4] [--rounds 3]
"""

from __future__ import annotations

import _setup  # noqa: F401  (first: sys.path and threads)

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from models.backend import BackendConfig, load_backend
from models.fetch import cache_dir, fetch_model
from models.registry import DEFAULT_MODEL, get_model

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


def measure(name: str, precision: str, seconds: float) -> None:
    """Child process: one backend at every size and batch, one JSON line each."""
    spec = get_model(DEFAULT_MODEL)
    graph = fetch_model(spec)
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    for w, h in SIZES:
        backend = load_backend(BackendConfig(backend=name, graph=graph, model=spec,
                                             precision=precision, resolution=(w, h)))
        frame = cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC)
        for b in BATCHES:
            rate = fps(backend, np.stack([frame] * b), seconds)
            print(json.dumps({"size": f"{w}x{h}", "batch": b, "fps": rate,
                              "precision": getattr(backend, "precision", precision)}), flush=True)
        backend.close()


def emulated_isa() -> str | None:
    """The kernel ISA OpenVINO is limited to by ``ONEDNN_MAX_CPU_ISA``, if any.

    OpenVINO still picks bf16 for ``auto`` from the CPU's real flags, and
    then finds no AVX2 kernels for it, so under a limit ``auto`` is not run.
    """
    return os.environ.get("ONEDNN_MAX_CPU_ISA") or None


def cpu_flags() -> str:
    """The CPU's model name and the flags that decide f32, bf16 and int8 speed."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
    limit = emulated_isa()
    limited = f"; OpenVINO's kernels limited to {limit} by ONEDNN_MAX_CPU_ISA" if limit else ""
    return f"{model}; {' '.join(f for f in wanted if f in flags) or 'no AVX2'}{limited}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="time per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="repeats of the whole set, order rotated")
    ap.add_argument("--one", nargs=2, metavar=("BACKEND", "PRECISION"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        measure(*args.one, args.seconds)
        return
    fetch_model(get_model(DEFAULT_MODEL))  # once, before the children race for it
    print(f"CPU: {cpu_flags()}")
    engines = [("tf", "f32")]
    if importlib.util.find_spec("openvino"):
        engines += [("openvino", "f32")] + ([] if emulated_isa() else [("openvino", "auto")])
        if importlib.util.find_spec("nncf") or any((cache_dir() / "ir").glob("*-int8-*/model.xml")):
            engines.append(("openvino", "int8"))
    runs: dict[tuple, list[float]] = {}
    shown: dict[tuple, str] = {}
    for r in range(args.rounds):
        for name, precision in engines[r % len(engines):] + engines[:r % len(engines)]:
            out = subprocess.run([sys.executable, __file__, "--one", name, precision, "--seconds", str(args.seconds)],
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                if line.startswith("{"):
                    row = json.loads(line)
                    key = (name, precision, row["size"], row["batch"])
                    runs.setdefault(key, []).append(row["fps"])
                    shown[key] = row["precision"]
    print(f"{'backend':10s} {'precision':9s} {'size':8s} {'batch':>5s} {'FPS':>7s} {'range':>13s} {'vs tf':>6s} "
          f"{'vs ov f32':>9s}")
    for (name, precision, size, b), rates in runs.items():
        med = statistics.median(rates)
        base = statistics.median(runs[("tf", "f32", size, b)])
        ov = runs.get(("openvino", "f32", size, b))
        versus_ov = f"{med / statistics.median(ov):8.2f}x" if ov else ""
        print(f"{name:10s} {shown[(name, precision, size, b)]:9s} {size:8s} {b:5d} {med:7.2f} "
              f"{min(rates):6.2f}-{max(rates):6.2f} {med / base:5.2f}x {versus_ov}")


if __name__ == "__main__":
    main()
