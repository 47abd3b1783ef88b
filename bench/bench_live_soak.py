"""Live soak: the real model on a looped RTSP stream faster than the model.

Two modes. The default one (below) runs the pipeline in this process on one
camera. ``--operators`` runs posestream as an operator would (4 cameras, one
killed every 2 minutes, --record raw under a low --max-disk, tail -F, SSE and
MQTT consumers, a broker restart; see bench/soak_operators.py)::

    .venv/bin/python bench/bench_live_soak.py --operators --minutes 15
    .venv/bin/python bench/bench_live_soak.py --operators --minutes 2 -- --backend tests.support.fakes:ZeroBackend

(arguments after ``--`` go to posestream). It prints a sample every 10 s
and a report with PASS/FAIL per check, and exits 1 if one failed.

Starts tests/support/rtsp_server.py (GStreamer, Debian's /usr/bin/python3) on
127.0.0.1 serving a 1280x720 25 FPS clip with people, runs the live pipeline
on it for --minutes, and prints once a minute: frames written and dropped in
that minute, arrival-to-written latency p50/p95 of that minute, and the
process's RSS. Both must stay flat: p95 under twice the per-frame processing
time, RSS growth under 5% after the first minute.

Usage: .venv/bin/python bench/bench_live_soak.py [--minutes 10]
       .venv/bin/python bench/bench_live_soak.py --operators [--minutes 15] [options] [-- POSESTREAM ARGS]
"""

from __future__ import annotations

import _setup  # noqa: F401  (first: sys.path and threads)

import argparse
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from soak_operators import add_arguments, run_operators
from stages import JobConfig, LiveConfig
from stages.jobs.live import LiveJob
from stages.outputs.sample import make_sample_clip
from tests.support.live_fixtures import RtspServer, _gstreamer_ready


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=None,
                    help="how long (default: 10; 15 with --operators)")
    ap.add_argument("--operators", action="store_true",
                    help="posestream as a service: 4 cameras, consumers, retention (see above)")
    ops = ap.add_argument_group("--operators")
    add_arguments(ops)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[:len(argv) - len(extra) - (1 if "--" in argv else 0)])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the server below is stopped
    if args.operators:
        args.minutes = 15.0 if args.minutes is None else args.minutes
        sys.exit(run_operators(args, extra))
    args.minutes = 10.0 if args.minutes is None else args.minutes
    if not _gstreamer_ready():
        sys.exit("GStreamer's RTSP server is missing: bash scripts/install_gstreamer.sh")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_sample_clip(Path(tmp) / "people.mp4", seconds=4, size=(1280, 720))
        server = RtspServer("/usr/bin/python3", clip, Path(tmp)).start()
        try:
            soak(server.url(), Path(tmp) / "out", args.minutes)
        finally:
            server.stop()


def soak(url: str, outdir: Path, minutes: float) -> None:
    job = LiveJob([(url, "cam")], outdir, JobConfig(), LiveConfig(segment_minutes=1))
    lat: list[float] = []
    proc: list[float] = []
    lock = threading.Lock()

    def on_result(result):
        with lock:
            lat.append(time.time() - result.frame.wall)
            proc.append(sum(result.timings.values()))

    t = threading.Thread(target=job.run, kwargs={"on_result": on_result}, daemon=True)
    t.start()
    stats = job.stats["cam"]
    print("frame ms: network + post-network step of a frame; work ms: all its stages' mean times")
    print("minute  frames  dropped  p50 ms  p95 ms  frame ms  work ms  RSS MiB")
    first_rss, dropped_before = None, 0
    for minute in range(1, int(minutes) + 1):
        time.sleep(60)
        with lock:
            window, work = lat[:], proc[:]
            lat.clear()
            proc.clear()
        rss = rss_mib()
        first_rss = first_rss or rss
        q = statistics.quantiles(window, n=20) if len(window) > 1 else [0.0] * 19
        stage_ms = sum(row["mean_ms"] for row in job.snapshot()["stages"])
        print(f"{minute:6d} {len(window):7d} {stats.dropped - dropped_before:8d} "
              f"{1000 * statistics.median(window):7.0f} {1000 * q[18]:7.0f} "
              f"{1000 * statistics.median(work):9.0f} {stage_ms:8.0f} {rss:8.0f}", flush=True)
        dropped_before = stats.dropped
    job.cancel()
    t.join(30)
    print(f"RSS growth after minute 1: {100 * (rss - first_rss) / first_rss:+.1f}%")


if __name__ == "__main__":
    main()
