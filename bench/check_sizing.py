"""Do posestream-size's figures hold in real runs? Its numbers against a batch run and live cameras.

For one engine at 720p (issue 24's acceptance: within 20% of a real run at the
FPS it recommends):

1. sizing: posestream-size's own measurement (``stages.jobs.sizing``): the
   rate in files' and cameras' arrangements, with the video, and what it
   recommends: N cameras at F FPS, hours of video per hour.
2. files: the command line (``run_stream.py``) on a longer 720p clip with
   people, timed from start to exit (model loading included): hours of video
   per hour against the sizing's.
3. cameras: N cameras at F FPS, each a live source that loops an H.264 clip
   with people in real time (``lavfi:movie=CLIP:loop=0,...,realtime``: decoded
   as a camera's stream is, paced to exactly F FPS), run by ``LiveJob`` as
   the command line runs them, recording the annotated segments: each
   camera's processed FPS and drops, and the process's CPU load against the
   load the sizing predicts (N x F / the measured rate). Then more cameras
   than it takes (past the measured rate): the total processed rate against
   the measured one (the frames dropped there still cost their decoding).
   (The RTSP test server, ``tests/support/rtsp_server.py``, sends a clip of a
   few FPS faster than real time, 3.0 FPS for a 2 FPS clip, so it is not used.)

Usage: .venv/bin/python bench/check_sizing.py [--engine openvino:f32] [--camera-fps 5]
       [--clip-seconds 20] [--live-seconds 30]
"""

from __future__ import annotations

import _setup  # noqa: F401  (first: sys.path and threads)

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av

from models.devices import usable_cores
from stages.jobs.live import LiveJob
from stages.jobs.sizing import EngineChoice, Sizing, cameras, measure_machine
from stages.outputs.sample import make_sample_clip, sample_frames
from stages.settings import LiveConfig

ROOT = _setup.ROOT
SIZE = (1280, 720)


def camera_clip(path: Path, fps: int, seconds: float = 10.0) -> Path:
    """The sample picture (two people) at ``fps``, a key frame each second (clients join fast)."""
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps),
                                      options={"g": str(fps), "bf": "0", "preset": "veryfast", "crf": "23"})
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for image in sample_frames(round(seconds * fps), SIZE):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float:
    """CPU seconds every program on the machine has used (as ``stages.jobs.sizing``)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - sum(fields[3:5])) / os.sysconf("SC_CLK_TCK")


def live_run(clip: Path, fps: int, count: int, engine: EngineChoice, outdir: Path, *,
             warmup: float, seconds: float) -> dict:
    """``count`` cameras looping ``clip`` at ``fps`` for ``warmup`` + ``seconds``; figures
    over the last ``seconds``."""
    config = engine.config((432, 368), "files", video=True)  # workers 0: LiveJob plans for live
    spec = f"lavfi:movie={clip}:loop=0,setpts=N/({fps}*TB),realtime"
    job = LiveJob([(spec, f"cam{i + 1}") for i in range(count)], outdir, config, LiveConfig())
    thread = threading.Thread(target=job.run, daemon=True)
    thread.start()
    time.sleep(warmup)
    frames0 = {name: m.frames for name, m in job.monitors.items()}
    dropped0 = {name: m.dropped for name, m in job.monitors.items()}
    cpu0, busy0, wall0 = cpu_seconds(), machine_busy(), time.perf_counter()
    time.sleep(seconds)
    cpu1, busy1, wall1 = cpu_seconds(), machine_busy(), time.perf_counter()
    frames = {name: m.frames - frames0[name] for name, m in job.monitors.items()}
    dropped = {name: m.dropped - dropped0[name] for name, m in job.monitors.items()}
    job.cancel()
    thread.join(30)
    took = wall1 - wall0
    return {"fps": {n: f / took for n, f in frames.items()}, "total": sum(frames.values()) / took,
            "dropped": sum(dropped.values()), "load": (cpu1 - cpu0) / took / usable_cores(),
            "elsewhere": ((busy1 - busy0) - (cpu1 - cpu0)) / took / (os.cpu_count() or 1)}


def batch_run(clip: Path, outdir: Path, engine: EngineChoice, video: bool) -> tuple[float, float]:
    """Seconds the command line takes to process ``clip``, start to exit; and the share of
    the machine's CPU other programs used meanwhile."""
    command = [sys.executable, str(ROOT / "run_stream.py"), str(clip), "-o", str(outdir),
               "--backend", engine.backend, "--precision", engine.precision]
    cpu0, busy0, start = cpu_seconds(resource.RUSAGE_CHILDREN), machine_busy(), time.perf_counter()
    subprocess.run(command + ([] if video else ["--no-video"]), check=True, capture_output=True)
    took = time.perf_counter() - start
    mine = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    return took, ((machine_busy() - busy0) - mine) / took / (os.cpu_count() or 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default="openvino:f32", help="BACKEND:PRECISION")
    ap.add_argument("--camera-fps", type=int, default=5)
    ap.add_argument("--headroom", type=float, default=0.2)
    ap.add_argument("--seconds", type=float, default=2.5, help="posestream-size's per run")
    ap.add_argument("--clip-seconds", type=float, default=20.0, help="the batch run's clip")
    ap.add_argument("--live-seconds", type=float, default=30.0)
    ap.add_argument("--skip", default="", help="parts to skip: files,cameras")
    args = ap.parse_args()
    engine = EngineChoice(*args.engine.split(":"))
    fps = args.camera_fps
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        runs = measure_machine([engine], resolution=(432, 368), sizes=["720p"], seconds=args.seconds)
        sizing = Sizing(measurements=tuple(runs), camera_fps=fps, headroom=args.headroom)
        files_rate = sizing.fps(str(engine), "files", "720p", True)
        files_rate_nv = sizing.fps(str(engine), "files", "720p", False)
        live_rate = sizing.fps(str(engine), "cameras", "720p", True)
        n = cameras(live_rate, fps, args.headroom)
        print(f"sizing ({time.perf_counter() - t0:.0f} s, other programs "
              f"{sizing.elsewhere() or 0:.0%}): {engine} 720p: files {files_rate:.2f} FPS "
              f"({files_rate / 25:.3f} h/h), --no-video {files_rate_nv:.2f} FPS "
              f"({files_rate_nv / 25:.3f} h/h); cameras {live_rate:.2f} FPS -> {n} at {fps} FPS "
              f"(predicted load {n * fps / live_rate:.0%})", flush=True)

        if "files" not in args.skip:
            clip = make_sample_clip(tmp / "batch.mp4", seconds=args.clip_seconds, fps=Fraction(25),
                                    size=SIZE)
            for video, rate in ((True, files_rate), (False, files_rate_nv)):
                took, elsewhere = batch_run(clip, tmp / f"batch-{video}", engine, video)
                real = args.clip_seconds / took
                print(f"files{'' if video else ' --no-video'}: {args.clip_seconds:g} s of 720p video in "
                      f"{took:.1f} s: {real:.3f} h/h (sizing {rate / 25:.3f}: "
                      f"{100 * (rate / 25 / real - 1):+.1f}%); other programs {elsewhere:.0%}",
                      flush=True)

        if "cameras" not in args.skip:
            clip = camera_clip(tmp / "camera.mp4", fps)
            over = max(n + 1, math.ceil(1.25 * live_rate / fps))
            for count in [c for c in (n, over) if c > 0]:
                r = live_run(clip, fps, count, engine, tmp / f"live-{count}",
                             warmup=8.0, seconds=args.live_seconds)
                each = " ".join(f"{v:.2f}" for v in r["fps"].values())
                print(f"cameras: {count} at {fps} FPS for {args.live_seconds:g} s: processed "
                      f"{r['total']:.2f} FPS in all (each: {each}), {r['dropped']} dropped, "
                      f"CPU load {r['load']:.0%}, other programs {r['elsewhere']:.0%}", flush=True)
                if count == n:
                    predicted = n * fps / live_rate
                    print(f"  offered {n * fps} FPS: processed {r['total'] / (n * fps):.1%} of it; "
                          f"load {r['load']:.0%} against the predicted {predicted:.0%} "
                          f"({100 * (predicted / r['load'] - 1):+.1f}%)", flush=True)
                else:
                    print(f"  past capacity: {r['total']:.2f} FPS against the measured "
                          f"{live_rate:.2f} ({100 * (live_rate / r['total'] - 1):+.1f}%)",
                          flush=True)


if __name__ == "__main__":
    main()
