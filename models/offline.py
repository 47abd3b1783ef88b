"""Import the engines with their telemetry off: no network connection at run time.

OpenVINO's Python package sends usage events to Google Analytics through
``openvino_telemetry``: at ``import openvino`` (``openvino.tools.ovc``
starts a session and sends an "import" event) and again in every
``convert_model``. Each event forks a process that resolves the analytics host
and connects to it. The package's only opt-outs are a consent file in the
user's home (``opt_in_out --opt_out``) and detecting a CI job; it reads no
environment variable. OpenVINO itself runs without the package: every module
that uses it falls back to its built-in no-op stub when the import fails. So
before OpenVINO is first imported we make ``openvino_telemetry`` unimportable
in this process, and load graphs with ``Core.read_model`` rather than
``convert_model``, which also starts a telemetry session (and whose module
we leave out of ``import openvino``: it costs 0.1 s of each start).

TensorFlow sends nothing; its import is quieted in ``models.tf_backend``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import threading

from pipeline.errors import ModelError

log = logging.getLogger(__name__)

TELEMETRY_MODULE = "openvino_telemetry"
# ``import openvino`` also imports its model converter (``ov.convert_model``,
# with absl and importlib.metadata): 0.1 s of every run's start, for a function
# we never call. ``openvino/__init__.py`` skips it when it cannot be imported;
# it can still be imported explicitly afterwards.
CONVERTER_MODULE = "openvino.tools.ovc"
_lock = threading.Lock()


def block_openvino_telemetry() -> bool:
    """Make ``import openvino_telemetry`` fail in this process, so OpenVINO uses its stub.

    Returns:
        False when the telemetry module was already imported (by the
        embedding program), so it can no longer be kept out.
    """
    loaded = sys.modules.get(TELEMETRY_MODULE, None)
    if loaded is not None:
        log.debug("openvino: %s was imported before posestream; its telemetry may run",
                  TELEMETRY_MODULE)
        return False
    sys.modules[TELEMETRY_MODULE] = None  # the import system's "not importable" marker
    return True


def import_openvino():
    """Import OpenVINO with its telemetry blocked.

    Raises:
        ModelError: OpenVINO is not installed.
    """
    with _lock:
        block_openvino_telemetry()
        try:
            if "openvino" in sys.modules:
                return sys.modules["openvino"]
            with _without(CONVERTER_MODULE):
                return importlib.import_module("openvino")
        except ImportError as exc:
            raise ModelError("--backend openvino: OpenVINO is not installed "
                             "(pip install openvino)") from exc


@contextlib.contextmanager
def _without(module: str):
    """``module`` cannot be imported inside the block (unless it already was); it can after."""
    if module in sys.modules:
        yield
        return
    sys.modules[module] = None
    try:
        yield
    finally:
        if sys.modules.get(module, 0) is None:
            del sys.modules[module]
