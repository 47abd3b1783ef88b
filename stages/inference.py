"""The inference step: network plus PAF assembly, one model copy per pool worker."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

from models.backend import Backend, BackendConfig, load_backend
from stages.frames import Result
from stages.postprocess import PafDecoder, PostprocessConfig
from stages.resize import NetInput


class PoseWorker:
    """Turns a network-sized frame into a Result; owned by one pool worker.

    Args:
        backend: This worker's model copy.
        decoder: This worker's post-network step.
    """

    def __init__(self, backend: Backend, decoder: PafDecoder) -> None:
        self.backend = backend
        self.decoder = decoder

    def __call__(self, item: NetInput) -> Result:
        """Run the network and assemble people in original frame pixels."""
        t0 = time.perf_counter()
        maps = self.backend.infer(item.tensor[None])[0]
        t1 = time.perf_counter()
        people = self.decoder(maps, item.frame.size)
        t2 = time.perf_counter()
        return Result(item.frame, tuple(people), {"network": t1 - t0, "postprocess": t2 - t1})


def worker_initializer(backend: BackendConfig, devices: list[str],
                       postprocess: PostprocessConfig) -> Callable[[int], PoseWorker]:
    """Return the pool initializer: slot i loads one model copy on ``devices[i % len]``."""
    def init(slot: int) -> PoseWorker:
        config = replace(backend, device=devices[slot % len(devices)])
        return PoseWorker(load_backend(config), PafDecoder(postprocess))
    return init

