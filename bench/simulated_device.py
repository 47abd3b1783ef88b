"""A SIMULATED accelerator for benchmarks: no network runs, nothing is computed.

``SimulatedDevice`` sleeps a fixed time per call (releasing the GIL, as a
real device call does) and returns all-zero maps. It measures how the worker
pool and the pipeline scale, never how fast any hardware is. Load it with
``--backend simulated_device:SimulatedDevice`` with bench/ on sys.path.
"""

from __future__ import annotations

import os
import time

import numpy as np


class SimulatedDevice:
    """Fixed latency per call ($POSESTREAM_SIM_LATENCY seconds, default 0.070)."""

    name = "simulated"

    def __init__(self, config) -> None:
        self.channels = config.model.channels
        self.latency = float(os.environ.get("POSESTREAM_SIM_LATENCY", "0.070"))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.latency)
        n, h, w, _ = batch.shape
        return np.zeros((n, h // 8, w // 8, self.channels), np.float32)

    def close(self) -> None:
        pass


class ZeroCost(SimulatedDevice):
    """No latency at all: what the host alone can sustain."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        n, h, w, _ = batch.shape
        return np.zeros((n, h // 8, w // 8, self.channels), np.float32)
