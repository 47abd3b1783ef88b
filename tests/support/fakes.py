"""Fake backends for tests: no model is loaded. Pass as --backend tests.support.fakes:NAME."""

from __future__ import annotations

import os
import time

import numpy as np

from models.backend import BackendConfig


class ZeroBackend:
    """Returns all-zero maps of the right shape: nobody is ever found."""

    name = "zero"

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.calls = 0

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        n, h, w, _ = batch.shape
        return np.zeros((n, h // 8, w // 8, self.config.model.channels), np.float32)

    def close(self) -> None:
        pass


class Bf16Backend(ZeroBackend):
    """A zero backend that reports running in bf16, as an engine choosing its own precision does."""

    precision = "bf16"


class SlowBackend(ZeroBackend):
    """A zero backend that takes $POSESTREAM_FAKE_DELAY seconds (default 0.02) per call."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(float(os.environ.get("POSESTREAM_FAKE_DELAY", "0.02")))
        return super().infer(batch)


class FailingBackend(ZeroBackend):
    """Raises on the call given by $POSESTREAM_FAKE_FAIL_AT (default 3)."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self.calls == int(os.environ.get("POSESTREAM_FAKE_FAIL_AT", "3")):
            raise RuntimeError("fake accelerator fault")
        return super().infer(batch)


class BrokenLoadBackend:
    """Fails to load, like a model that does not fit the device."""

    name = "broken"

    def __init__(self, config: BackendConfig) -> None:
        raise OSError("fake device unavailable")




class SlowLoadBackend(ZeroBackend):
    """A zero backend whose load takes $POSESTREAM_FAKE_LOAD seconds (default 60), as
    TensorFlow's start-up does: descriptor 2 is captured while it loads (TensorFlow's
    chatter is, ``models.tf_backend``), and it first creates the file named by
    $POSESTREAM_FAKE_LOADING, if set, so a test knows the load has begun."""

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        import tempfile
        with tempfile.TemporaryFile() as capture:
            saved = os.dup(2)
            os.dup2(capture.fileno(), 2)
            try:
                if os.environ.get("POSESTREAM_FAKE_LOADING"):
                    open(os.environ["POSESTREAM_FAKE_LOADING"], "w").close()
                time.sleep(float(os.environ.get("POSESTREAM_FAKE_LOAD", "60")))
            finally:
                os.dup2(saved, 2)
                os.close(saved)


class SignalAtBackend(ZeroBackend):
    """A zero backend that sends its own process $POSESTREAM_FAKE_SIGNAL (default SIGINT)
    on the call given by $POSESTREAM_FAKE_SIGNAL_AT (default 1), to the main thread."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = super().infer(batch)
        if self.calls == int(os.environ.get("POSESTREAM_FAKE_SIGNAL_AT", "1")):
            import signal
            import threading
            sig = signal.Signals[os.environ.get("POSESTREAM_FAKE_SIGNAL", "SIGINT")]
            signal.pthread_kill(threading.main_thread().ident, sig)
        return out


class StolenSignalBackend(ZeroBackend):
    """A zero backend whose own thread, not the main one, gets $POSESTREAM_FAKE_SIGNAL (default
    SIGTERM) once the main thread sleeps waiting for results, as the kernel may hand a signal
    sent to the process to any thread; that thread then stays busy a minute. It happens while
    the model loads if $POSESTREAM_FAKE_SIGNAL_AT is "load" (the default), else on that call;
    the file named by $POSESTREAM_FAKE_SIGNALLED, if set, is made once the signal is sent."""

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        if os.environ.get("POSESTREAM_FAKE_SIGNAL_AT", "load") == "load":
            _signal_this_thread_then_hold()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = super().infer(batch)
        if str(self.calls) == os.environ.get("POSESTREAM_FAKE_SIGNAL_AT", "load"):
            _signal_this_thread_then_hold()
        return out


def _signal_this_thread_then_hold() -> None:
    import signal
    import threading

    deadline = time.monotonic() + 60
    while not _main_thread_sleeps_in_channel_get() and time.monotonic() < deadline:
        time.sleep(0.02)
    sig = signal.Signals[os.environ.get("POSESTREAM_FAKE_SIGNAL", "SIGTERM")]
    signal.pthread_kill(threading.get_ident(), sig)
    if os.environ.get("POSESTREAM_FAKE_SIGNALLED"):
        open(os.environ["POSESTREAM_FAKE_SIGNALLED"], "w").close()
    time.sleep(60)


def _main_thread_sleeps_in_channel_get() -> bool:
    """Whether the main thread waits for a channel's next item, asleep in the kernel: twice
    50 ms apart, so it is not merely waiting for the GIL on its way there."""
    import sys
    import threading

    main = threading.main_thread()
    for _ in range(2):
        frame = sys._current_frames().get(main.ident)
        in_get = False
        while frame is not None and not in_get:
            in_get = frame.f_code.co_name == "get" and frame.f_code.co_filename.endswith("channel.py")
            frame = frame.f_back
        stat = open(f"/proc/self/task/{main.native_id}/stat").read()
        if not in_get or stat.rsplit(")", 1)[1].split()[0] != "S":
            return False
        time.sleep(0.05)
    return True


class OnePersonBackend(ZeroBackend):
    """Maps with one synthetic standing person in the middle (no network runs)."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        from tests.support.people_maps import people_maps, person_joints

        n, h, w, _ = batch.shape
        if (h, w) != (368, 432):
            raise ValueError("OnePersonBackend draws for a 432x368 network input")
        # joints off the map's pixel centres, so the upsampled peaks are single pixels
        maps = people_maps(46, 54, [person_joints(27.3, 9.2)])
        return np.repeat(maps[None], n, axis=0)


class BlinkingPersonBackend(OnePersonBackend):
    """``OnePersonBackend``'s person, missing from the frames whose picture's centre has a
    green value under 60 (about one ``make_test_clip`` frame in six, scattered), so that
    with a short ``--track-memory`` they keep coming back under new track ids. Each call
    takes $POSESTREAM_FAKE_DELAY seconds (default 0)."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(float(os.environ.get("POSESTREAM_FAKE_DELAY", "0")))
        maps = super().infer(batch)
        n, h, w, _ = batch.shape
        for i in range(n):
            if batch[i, h // 2, w // 2, 1] < 60:
                maps[i] = 0
        return maps
