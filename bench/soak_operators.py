"""The operators' soak (``bench_live_soak.py --operators``): posestream as a service would run.

Four looping RTSP cameras (``tests/live_fixtures.RtspServer``, GStreamer, on
127.0.0.1, basic auth) and a Mosquitto broker (``tests/mqtt_fixtures.Broker``,
a password required); posestream runs as a child
process of the real command line with ``--sources`` (cam1..cam4),
``--record raw``, small segments, a low ``--max-disk``, a small
``--live-log-size``, ``--http`` and ``--mqtt`` (with a user and password).
Attached: a ``tail -F`` per camera's ``live.jsonl``, an SSE client on
``/events`` and an MQTT subscriber (``bench/soak_consumers.py``). One camera
is killed and restarted every ``--kill-every`` seconds (in turn), the broker
once mid-run. Every ``--sample`` seconds: the process's RSS
(``/proc/PID/status``), the output folder's disk use, ``/metrics`` and
``/healthz``. At the end: SIGTERM, wait for the exit, then the report
(``bench/soak_report.py``).

Records logged: retention deletes old segments with their logs, so the
bench hard-links every finished segment log out of the folder as it appears
(``SegmentKeeper``) and counts the records of those; the summary JSON's
frames per source is the process's own count, shown beside it.
"""

from __future__ import annotations

from _setup import ROOT  # first: sys.path and threads

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from soak_consumers import MqttConsumer, SegmentKeeper, SseConsumer, TailConsumer
from soak_report import histogram_buckets, print_report
from stages.outputs.sample import make_sample_clip
from tests.support.live_fixtures import RtspServer, _gstreamer_ready, free_port
from tests.support.mqtt_fixtures import MOSQUITTO, Broker

CAMERA_USER, CAMERA_PASSWORD = "soak", "cam-s3cret"
BROKER_USER, BROKER_PASSWORD = "soak", "mqtt-s3cret"
PREFIX = "soak"
STOP_WAIT = 30.0  # seconds posestream has to exit after SIGTERM (the unit's TimeoutStopSec)


def add_arguments(ap) -> None:
    """The options of the operators' soak."""
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--size", default="1280x720", help="the cameras' picture (default: 1280x720)")
    ap.add_argument("--kill-every", type=float, default=None,
                    help="seconds between camera kills (default: 120, or a third of a "
                         "shorter run)")
    ap.add_argument("--camera-down", type=float, default=10.0, help="seconds a killed camera stays down")
    ap.add_argument("--broker-down", type=float, default=15.0, help="seconds the broker stays down "
                    "(0: never killed)")
    ap.add_argument("--segment", type=float, default=0.25, help="--segment MINUTES (default: 0.25)")
    ap.add_argument("--max-disk", default=None, help="--max-disk (default: about 2 segments "
                    "of every camera, from the clip's bit rate, and their live logs)")
    ap.add_argument("--live-log-size", default="256K", help="--live-log-size (default: 256K)")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--outage-margin", type=float, default=5.0,
                    help="records captured this long before the broker died, or after it came "
                    "back, count as its outage's (default: 5)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")


@dataclass
class Run:
    """Everything one soak started and saw."""

    work: Path
    out: Path
    cameras: dict = field(default_factory=dict)  # name -> RtspServer
    broker: Broker | None = None
    proc: subprocess.Popen | None = None
    http_port: int = 0
    cap: int = 0
    consumers: dict = field(default_factory=dict)
    keeper: SegmentKeeper | None = None
    samples: list = field(default_factory=list)
    chaos: list = field(default_factory=list)  # (time, what)
    errors: list = field(default_factory=list)
    started: float = 0.0
    exit_code: int | None = None
    stop_seconds: float | None = None
    metrics_text: str = ""
    summary: dict | None = None


def run_operators(args, extra: list[str]) -> int:
    """Run the soak; return 0 when every check passed, 1 otherwise."""
    if not _gstreamer_ready():
        sys.exit("GStreamer's RTSP server is missing: bash scripts/install_gstreamer.sh")
    if not os.access(MOSQUITTO, os.X_OK):
        sys.exit(f"Mosquitto is missing ({MOSQUITTO}): apt-get install -y mosquitto")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run = Run(work=work, out=work / "out")
        try:
            _soak(run, args, extra)
        finally:
            _tear_down(run)
        return print_report(run, args)


def _soak(run: Run, args, extra: list[str]) -> None:
    total = args.minutes * 60
    kill_every = args.kill_every or min(120.0, total / 3)
    _start_cameras(run, args)
    run.broker = Broker(MOSQUITTO, run.work, user=BROKER_USER, password=BROKER_PASSWORD).start()
    run.cap = _cap(args, run)
    run.http_port = free_port()
    run.keeper = SegmentKeeper(run.out, run.work / "kept", cap=run.cap)
    run.consumers["tail"] = {name: TailConsumer(run.out, name) for name in run.cameras}
    run.proc = _start_posestream(run, args, extra)
    run.started = time.time()
    run.consumers["sse"] = SseConsumer("127.0.0.1", run.http_port)
    run.consumers["mqtt"] = MqttConsumer("127.0.0.1", run.broker.port, PREFIX, user=BROKER_USER,
                                         password=BROKER_PASSWORD)
    chaos = threading.Thread(target=_chaos, args=(run, args, total, kill_every), daemon=True)
    chaos.start()
    _sample_until(run, total, args.sample)
    _stop_posestream(run)
    chaos.join(60)


def _start_cameras(run: Run, args) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    clip = make_sample_clip(run.work / "people.mp4", seconds=4, size=(width, height))
    for index in range(1, args.cameras + 1):
        name = f"cam{index}"
        run.cameras[name] = RtspServer("/usr/bin/python3", clip, run.work, mount=f"/{name}",
                                       user=CAMERA_USER, password=CAMERA_PASSWORD).start()


def _cap(args, run: Run) -> int:
    """--max-disk in bytes: given, or about 2 segments of every camera at the clip's
    rate plus room for the live logs (live.jsonl and live.jsonl.1 of each camera)."""
    from stages.values import parse_size

    if args.max_disk:
        return parse_size(args.max_disk, "--max-disk")
    clip = run.work / "people.mp4"
    rate = clip.stat().st_size / 4.0  # bytes per second of one camera (a 4 s clip)
    logs = 2 * parse_size(args.live_log_size, "--live-log-size")
    return int((2 * rate * args.segment * 60 + logs) * len(run.cameras))


def _start_posestream(run: Run, args, extra: list[str]) -> subprocess.Popen:
    sources = run.work / "cameras.txt"
    sources.write_text("".join(
        f"{server.url(user=CAMERA_USER, password=CAMERA_PASSWORD)} {name}\n"
        for name, server in run.cameras.items()))
    command = [sys.executable, os.fspath(ROOT / "run_stream.py"), "--sources", os.fspath(sources),
               "-o", os.fspath(run.out), "--record", "raw", "--segment", str(args.segment),
               "--max-disk", str(run.cap), "--live-log-size", args.live_log_size,
               "--http", f"127.0.0.1:{run.http_port}",
               "--mqtt", run.broker.url(PREFIX, user=BROKER_USER, password=BROKER_PASSWORD),
               "--summary-json", os.fspath(run.work / "summary.json"), *extra]
    print("posestream:", " ".join(command).replace(CAMERA_PASSWORD, "***")
          .replace(BROKER_PASSWORD, "***"), flush=True)
    with open(run.work / "posestream.log", "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def _chaos(run: Run, args, total: float, kill_every: float) -> None:
    """Kill and restart one camera every ``kill_every`` s (in turn), the broker once."""
    events = []
    names = list(run.cameras)
    for k, at in enumerate(_times(kill_every, total - args.camera_down - 20)):
        name = names[k % len(names)]
        events += [(at, "kill", name), (at + args.camera_down, "start", name)]
    if args.broker_down > 0:  # mid-run, half-way between two camera kills
        at = (int(total / 2 / kill_every) + 0.5) * kill_every
        events += [(at, "kill", "broker"), (at + args.broker_down, "start", "broker")]
    for at, what, name in sorted(events):
        while time.time() - run.started < at:
            if run.proc.poll() is not None:
                return
            time.sleep(0.2)
        _act(run, what, name)


def _times(every: float, until: float) -> list[float]:
    times, at = [], every
    while at <= until:
        times.append(at)
        at += every
    return times


def _act(run: Run, what: str, name: str) -> None:
    target = run.broker if name == "broker" else run.cameras[name]
    try:
        target.kill() if what == "kill" else target.start()
    except Exception as exc:  # noqa: BLE001 - a camera that cannot restart is a finding
        run.errors.append(f"{what} {name}: {exc}")
    run.chaos.append((time.time(), what, name))
    print(f"  {time.time() - run.started:6.0f} s  {what} {name}", flush=True)


def _sample_until(run: Run, total: float, every: float) -> None:
    print("     s  RSS MiB  segments MiB / cap  frames  p50 ms  p95 ms  healthz  "
          "tail  sse  mqtt", flush=True)
    previous = None
    while (elapsed := time.time() - run.started) < total:
        time.sleep(min(every, max(total - elapsed, 0.1)))
        if run.proc.poll() is not None:
            run.errors.append(f"posestream exited early ({run.proc.returncode})")
            return
        sample = _sample(run, previous)
        run.samples.append(sample)
        previous = sample
        _print_sample(run, sample)


def _sample(run: Run, previous: dict | None) -> dict:
    sample = {"t": time.time() - run.started, "rss": _rss_mib(run.proc.pid),
              "segments": run.keeper.last_segments, "total": run.keeper.last_total}
    try:
        text = _get(run, "/metrics")[1]
        run.metrics_text = text
        sample["buckets"], sample["frames"] = histogram_buckets(text)
    except (OSError, ValueError) as exc:
        run.errors.append(f"/metrics at {sample['t']:.0f} s: {exc}")
        sample["buckets"], sample["frames"] = {}, None
    try:
        sample["healthz"] = _get(run, "/healthz")[0]
    except OSError as exc:
        sample["healthz"] = f"error: {exc}"
    sample["window"] = _window(sample["buckets"], previous["buckets"] if previous else {})
    sample["counts"] = {kind: _count(run.consumers.get(kind)) for kind in ("tail", "sse", "mqtt")}
    return sample


def _window(now: dict, before: dict) -> dict:
    return {le: count - before.get(le, 0) for le, count in now.items()}


def _count(consumer) -> int:
    if consumer is None:
        return 0
    if isinstance(consumer, dict):
        return sum(len(c.received.keys) for c in consumer.values())
    return len(consumer.received.keys)


def _print_sample(run: Run, s: dict) -> None:
    from soak_report import quantile
    p50, p95 = quantile(s["window"], 0.5), quantile(s["window"], 0.95)
    c = s["counts"]
    print(f"{s['t']:6.0f} {s['rss']:8.0f} {s['segments'] / 2**20:13.1f} / {run.cap / 2**20:.0f} "
          f"{s['frames'] if s['frames'] is not None else '-':>7} "
          f"{_ms(p50):>7} {_ms(p95):>7} {s['healthz']!s:>8} {c['tail']:5d} {c['sse']:4d} "
          f"{c['mqtt']:5d}", flush=True)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.0f}"


def _get(run: Run, path: str) -> tuple[int, str]:
    """(status, body) of GET ``path`` on the status server; 4xx/5xx are answers too."""
    url = f"http://127.0.0.1:{run.http_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _stop_posestream(run: Run) -> None:
    """SIGTERM, as systemd stops a service; wait for the exit, then stop the consumers."""
    if run.proc.poll() is None:
        began = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        try:
            run.exit_code = run.proc.wait(STOP_WAIT)
            run.stop_seconds = time.monotonic() - began
        except subprocess.TimeoutExpired:
            run.errors.append(f"posestream still running {STOP_WAIT:.0f} s after SIGTERM: killed")
            run.proc.kill()
            run.proc.wait(10)
    else:
        run.exit_code = run.proc.returncode
    run.keeper.stop()
    run.consumers["sse"].stop()
    run.consumers["mqtt"].stop()
    for tail in run.consumers["tail"].values():
        tail.stop()


def _tear_down(run: Run) -> None:
    """Stop whatever is still running, each by its own handle."""
    if run.proc is not None and run.proc.poll() is None:
        run.proc.kill()
        run.proc.wait(10)
    for tail in run.consumers.get("tail", {}).values():
        tail.end()
    for server in run.cameras.values():
        server.stop()
    if run.broker is not None:
        run.broker.stop()
    summary = run.work / "summary.json"
    run.summary = json.loads(summary.read_text()) if summary.exists() else None
