"""The inference step: network plus PAF assembly, one model copy per pool worker."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import numpy as np

from models.backend import Backend, BackendConfig, load_backend
from stages.frames import Result
from stages.pose.maps_to_people import PafDecoder
from stages.settings import PostprocessConfig
from stages.pose.resize import NetInput


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
        return self.batch([item])[0]

    def batch(self, items: list[NetInput]) -> list[Result]:
        """Run the network once on several frames of the same network size."""
        t0 = time.perf_counter()
        maps = self.backend.infer(np.stack([item.tensor for item in items]))
        t1 = time.perf_counter()
        results = []
        for item, m in zip(items, maps):
            t2 = time.perf_counter()
            people = self.decoder(m, item.frame.size)
            timings = {"network": (t1 - t0) / len(items), "postprocess": time.perf_counter() - t2}
            results.append(Result(item.frame, tuple(people), timings))
        return results


def worker_initializer(backend: BackendConfig, slots: tuple[str, ...], postprocess: PostprocessConfig,
                       *, batch: int = 1, on_load: Callable[[Backend], None] | None = None
                       ) -> Callable[[int], Callable]:
    """Return the pool initializer: slot i loads one model copy on ``slots[i]``.

    With ``batch`` > 1 the worker's function takes lists of frames.
    ``on_load`` is called (on the worker's thread) with each loaded copy.
    """
    def init(slot: int) -> Callable:
        model = load_backend(replace(backend, device=slots[slot]))
        if on_load is not None:
            on_load(model)
        worker = PoseWorker(model, PafDecoder(postprocess))
        return worker.batch if batch > 1 else worker
    return init

