"""Sizing: how many cameras and how many hours of video this machine takes, measured.

Nothing here is modelled from parts: each figure is the frame rate of the real
pipeline (decode, resize, network, people, tracking, drawing, encoding,
writing), run as ``FileJob`` runs a file, on a clip with people in it
(``stages.outputs.sample.make_sample_clip``) at 720p and 1080p, with and
without the annotated video, for each engine present, a few seconds each.
Model loading and the first frames are left out of the rate (``warmup``).

Each engine is measured in the two arrangements the program runs it in
(``models.devices.plan_devices``):

- files: on the CPU, one single-threaded model copy per core (throughput);
  hours of video per hour = frames per second / the video's frame rate;
- cameras: live streams share one model copy on all cores (each frame is
  done soonest); cameras at F FPS = the rate, less ``headroom``, over F.
  The cameras are taken to send F frames per second and every frame is
  processed; a camera that sends more (``--max-fps`` dropping the rest)
  also costs the decoding of the frames dropped.

Engines whose two arrangements are the same (TensorFlow, one copy either
way; GPUs, one copy per GPU) are measured once.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from models.devices import DevicePlan, plan_devices, usable_cores
from stages.errors import InputError
from stages.jobs.file_job import FileJob
from stages.outputs.sample import make_sample_clip
from stages.settings import JobConfig

log = logging.getLogger(__name__)

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
MODES = ("files", "cameras")
CLIP_FPS = Fraction(25)
WARMUP_FRAMES = 4  # left out of the rate: the first frames through an empty pipeline
WARMUP_SECONDS = 0.3
BUSY_ELSEWHERE = 0.1  # a share of the CPU taken by other programs that makes the figures low


@dataclass(frozen=True, slots=True)
class EngineChoice:
    """One engine to measure: a backend, a precision and a device.

    Attributes:
        backend: "openvino", "tf" or "neuron".
        precision: "f32", "int8", ...
        device: "cpu", "gpu", "neuron".
    """

    backend: str
    precision: str
    device: str = "cpu"

    def __str__(self) -> str:
        where = "" if self.device == "cpu" else f" on {self.device}"
        return f"{self.backend} {self.precision}{where}"

    def config(self, resolution: tuple[int, int], mode: str, *, video: bool) -> JobConfig:
        """The run's settings in ``mode``: "files" lets the program choose the
        workers, "cameras" takes the live streams' plan."""
        workers = 0 if mode == "files" else self.plan(latency=True).workers
        return JobConfig(resolution=resolution, backend=self.backend, precision=self.precision,
                         device=self.device, workers=workers, video=video)

    def plan(self, *, latency: bool) -> DevicePlan:
        """The devices the program gives this engine for files or (``latency``) live streams."""
        return plan_devices(self.device, workers=0, backend=self.backend, latency=latency)

    def modes(self) -> tuple[str, ...]:
        """"files" and "cameras", or "files" alone when both use the same plan."""
        return MODES if self.plan(latency=False) != self.plan(latency=True) else ("files",)


def engines_present() -> tuple[list[EngineChoice], list[str]]:
    """The engines this machine has, fastest family first; and why others are left out."""
    found, missing = [], []
    if importlib.util.find_spec("openvino"):
        found.append(EngineChoice("openvino", "f32"))
        if importlib.util.find_spec("nncf"):
            found.append(EngineChoice("openvino", "int8"))
        else:
            missing.append("openvino int8: needs nncf to build the int8 network once")
    else:
        missing.append("openvino: not installed")
    if importlib.util.find_spec("tensorflow"):
        found.append(EngineChoice("tf", "f32"))
        try:
            plan_devices("gpu")
            found.append(EngineChoice("tf", "f32", "gpu"))
        except InputError:  # TensorFlow sees no GPU
            pass
    else:
        missing.append("tf: not installed")
    from models.neuron import neuron_available

    if neuron_available():
        found.append(EngineChoice("neuron", "auto", "neuron"))
    return found, missing


@dataclass(frozen=True, slots=True)
class Measurement:
    """One engine, arrangement, picture size and video choice, run end to end.

    Attributes:
        engine: The engine (``str(EngineChoice)``).
        mode: "files" or "cameras" (see the module's docstring).
        size: "720p" or "1080p".
        video: Whether the annotated video was drawn and encoded.
        fps: Frames per second, end to end, after the warm-up.
        frames: Frames the rate was measured over.
        seconds: Wall time those frames took.
        load_seconds: From the start of the run to its first result (model loading,
            and building the int8 network the first time on a machine).
        workers: Model copies.
        elsewhere: Share of the machine's CPU that other programs used meanwhile
            (0 to 1; None where /proc/stat cannot be read).
    """

    engine: str
    mode: str
    size: str
    video: bool
    fps: float
    frames: int
    seconds: float
    load_seconds: float
    workers: int
    elsewhere: float | None = None

    def as_dict(self) -> dict:
        """JSON-ready."""
        return dataclasses.asdict(self)


def cameras(fps: float, camera_fps: float, headroom: float) -> int:
    """Cameras sending ``camera_fps`` that a pipeline of ``fps`` frames per second
    takes, using at most ``1 - headroom`` of it."""
    if camera_fps <= 0 or not 0 <= headroom < 1:
        raise ValueError(f"camera_fps must be > 0 and headroom in [0, 1): {camera_fps}, {headroom}")
    return max(0, math.floor(fps * (1 - headroom) / camera_fps + 1e-9))


def hours_per_hour(fps: float, video_fps: float) -> float:
    """Hours of a ``video_fps`` video processed per hour at ``fps`` frames per second."""
    if video_fps <= 0:
        raise ValueError(f"video_fps must be > 0: {video_fps}")
    return fps / video_fps


@dataclass(frozen=True, slots=True)
class Row:
    """One engine's figures at one picture size: with and without the annotated video.

    ``None`` where that run was not measured.
    """

    engine: str
    size: str
    video: float | None
    no_video: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Sizing:
    """What the measurements say, for cameras at ``camera_fps`` and videos at ``video_fps``.

    Attributes:
        measurements: The runs.
        camera_fps: Frames per second each camera sends.
        video_fps: Frame rate of the recordings.
        headroom: Share of the live pipeline's rate kept free.
    """

    measurements: tuple[Measurement, ...]
    camera_fps: float = 5.0
    video_fps: float = 25.0
    headroom: float = 0.2

    def __post_init__(self) -> None:
        cameras(1.0, self.camera_fps, self.headroom)  # checks both
        hours_per_hour(1.0, self.video_fps)

    def fps(self, engine: str, mode: str, size: str, video: bool) -> float | None:
        """The measured rate; for "cameras", the files' rate where the engine was
        measured once (the same plan for both: the module's docstring)."""
        if mode == "cameras" and not any(m.engine == engine and m.mode == mode
                                         for m in self.measurements):
            mode = "files"
        return next((m.fps for m in self.measurements
                     if (m.engine, m.mode, m.size, m.video) == (engine, mode, size, video)), None)

    def elsewhere(self) -> float | None:
        """Mean share of the CPU other programs used while measuring (None: not known)."""
        shares = [m.elsewhere for m in self.measurements if m.elsewhere is not None]
        return sum(shares) / len(shares) if shares else None

    def engines(self) -> list[str]:
        """Engines measured, in the order measured."""
        return list(dict.fromkeys(m.engine for m in self.measurements))

    def sizes(self) -> list[str]:
        """Picture sizes measured, in the order measured."""
        return list(dict.fromkeys(m.size for m in self.measurements))

    def camera_rows(self) -> list[Row]:
        """Cameras at ``camera_fps`` per engine and size, with and without the video."""
        def count(engine: str, size: str, video: bool) -> float | None:
            fps = self.fps(engine, "cameras", size, video)
            return None if fps is None else cameras(fps, self.camera_fps, self.headroom)
        return [Row(e, s, count(e, s, True), count(e, s, False))
                for e in self.engines() for s in self.sizes()]

    def hour_rows(self) -> list[Row]:
        """Hours of ``video_fps`` video processed per hour, per engine and size."""
        def hours(engine: str, size: str, video: bool) -> float | None:
            fps = self.fps(engine, "files", size, video)
            return None if fps is None else hours_per_hour(fps, self.video_fps)
        return [Row(e, s, hours(e, s, True), hours(e, s, False))
                for e in self.engines() for s in self.sizes()]

    def as_dict(self) -> dict:
        """JSON-ready: the settings, the figures and the measurements behind them."""
        return {"camera_fps": self.camera_fps, "video_fps": self.video_fps,
                "headroom": self.headroom, "elsewhere": self.elsewhere(),
                "cameras": [dataclasses.asdict(r) for r in self.camera_rows()],
                "hours_per_hour": [dataclasses.asdict(r) for r in self.hour_rows()],
                "measurements": [m.as_dict() for m in self.measurements]}


@dataclass(frozen=True, slots=True)
class Window:
    """What ``measure_run`` saw.

    Attributes:
        fps: Frames per second over the window.
        frames: Frames in it.
        seconds: Its length.
        load_seconds: From the start of the run to its first result.
        elsewhere: Share of the machine's CPU other programs used during the window
            (None where it cannot be told).
    """

    fps: float
    frames: int
    seconds: float
    load_seconds: float
    elsewhere: float | None


def measure_run(clip: Path, outdir: Path, config: JobConfig, *, seconds: float,
                warmup_frames: int = WARMUP_FRAMES, warmup_seconds: float = WARMUP_SECONDS
                ) -> Window:
    """Run ``clip`` through the pipeline as a file run does, for ``seconds`` after the warm-up.

    The rate is taken from the first result past both warm-ups to the last
    one, when ``seconds`` have passed (the run is then stopped) or the clip
    ended; a clip that ends within the warm-up is measured over its second half.

    Raises:
        RuntimeError: Too few frames came out to measure a rate.
    """
    stamps: list[float] = []
    start: int | None = None  # the result the window starts at
    cpu: list[tuple[float, float] | None] = []  # (machine busy, this process) at its start and end
    job = FileJob(clip, outdir, config)
    begin = time.perf_counter()

    def on_result(_result) -> None:
        nonlocal start
        now = time.perf_counter()
        stamps.append(now)
        if start is None and len(stamps) > warmup_frames and now - stamps[0] >= warmup_seconds:
            start = len(stamps) - 1
            cpu[:] = [_cpu_seconds()]
        elif start is not None and now - stamps[start] >= seconds and len(cpu) == 1:
            cpu.append(_cpu_seconds())
            job.cancel()

    job.run(on_result=on_result)
    if len(cpu) == 1:  # the clip ended first
        cpu.append(_cpu_seconds())
    if start is None:
        start = len(stamps) // 2
    frames = len(stamps) - 1 - start
    if frames < 2:
        raise RuntimeError(f"{clip.name}: only {len(stamps)} frames came out; too few to measure")
    took = stamps[-1] - stamps[start]
    return Window(frames / took, frames, took, stamps[0] - begin, _elsewhere(cpu, took))


def _cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds every program on the machine has used, those of this process), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = sum(fields[3:5])  # idle, iowait; steal (another VM) counts as used elsewhere
    busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return busy, usage.ru_utime + usage.ru_stime


def _elsewhere(cpu: list, seconds: float) -> float | None:
    """Share of the machine's CPU other programs used between the two readings."""
    if len(cpu) != 2 or None in cpu or seconds <= 0:
        return None
    (busy0, mine0), (busy1, mine1) = cpu
    return min(1.0, max(0.0, (busy1 - busy0) - (mine1 - mine0)) / (seconds * (os.cpu_count() or 1)))


def make_clips(folder: Path, sizes: Iterable[str], seconds: float) -> dict[str, Path]:
    """A clip with two people per size, ``seconds`` long at 25 FPS, in ``folder``."""
    return {size: make_sample_clip(folder / f"people-{size}.mp4", seconds=seconds, fps=CLIP_FPS,
                                   size=SIZES[size]) for size in sizes}


def measure_machine(engines: Sequence[EngineChoice], *, resolution: tuple[int, int],
                    sizes: Sequence[str] = tuple(SIZES), seconds: float = 2.5,
                    on_measured: Callable[[Measurement], None] | None = None,
                    workdir: Path | None = None) -> list[Measurement]:
    """Measure every engine in its arrangements, at each size, with and without the video.

    Args:
        engines: What to measure (``engines_present()``).
        resolution: Network input (width, height).
        sizes: Keys of ``SIZES``.
        seconds: Length of each measurement, after the warm-up.
        on_measured: Called with each measurement as it is made.
        workdir: Where the clips and outputs go (default: a temporary folder, removed).
    """
    with tempfile.TemporaryDirectory(prefix="posestream-size-", dir=workdir) as tmp:
        # enough frames for a CPU run to fill its window (a faster engine's ends with the clip)
        clips = make_clips(Path(tmp), sizes, seconds=max(3.0, seconds + 1.0))
        found = []
        for engine in engines:
            for mode in engine.modes():
                for size in sizes:
                    for video in (True, False):
                        config = engine.config(resolution, mode, video=video)
                        out = Path(tmp) / f"out-{len(found)}"
                        w = measure_run(clips[size], out, config, seconds=seconds)
                        m = Measurement(str(engine), mode, size, video, w.fps, w.frames, w.seconds,
                                        w.load_seconds, engine.plan(latency=mode == "cameras").workers,
                                        w.elsewhere)
                        found.append(m)
                        if on_measured is not None:
                            on_measured(m)
    return found


def machine_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """This machine: usable cores, the CPU's model and the flags that decide its speed."""
    from models.precision import cpu_flags

    model = "unknown"
    try:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    except OSError:
        pass
    flags = sorted(f for f in cpu_flags(cpuinfo)
                   if f == "avx2" or f.startswith(("avx512", "amx")))
    return {"cores": usable_cores(), "cpu": model, "flags": flags}
