"""Stopping a run on SIGINT/SIGTERM, within a deadline whatever a thread is blocked in.

The first signal cancels the attached jobs (on a helper thread, never inside a
lock the interrupted code may hold) and arms a deadline: if the context has not
been left ``grace`` seconds later, or the process has not exited ``grace``
seconds after it was left (a thread or child process holding it), the process
is ended with exit status 128 + signal. A second signal ends it at once.
Ending early skips every ``finally`` and ``atexit``: what was committed stays,
unfinished outputs stay under their partial names.

Child processes never run these handlers: ``os.fork`` children get the
default ones back, and a handler that finds itself in another process (a
child forked by C code, which skips Python's fork hooks) restores the default
and re-raises the signal.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEFAULT_GRACE = 1.5  # seconds; with the flush and exit the run ends within 2 s

_ROOT = Path(__file__).resolve().parents[1]
_installed: list = []  # the handlers installed now, so a forked child can drop them
_fork_hook_registered = False


class StopOnSignals:
    """Context manager: SIGINT/SIGTERM stop the attached jobs within ``grace`` seconds.

    Handlers are installed only on the main thread (the only one Python
    delivers signals to); elsewhere the manager does nothing.

    Args:
        grace: Seconds the jobs (then the process) have before the process is ended.
        prog: Prefix of the lines written to stderr.

    Attributes:
        received: The first signal received, or None.
    """

    def __init__(self, *, grace: float = DEFAULT_GRACE, prog: str = "posestream") -> None:
        self.grace = grace
        self.prog = prog
        self.received: int | None = None
        self._cancels: list[Callable[[], None]] = []
        self._cancelled = False
        self._lock = threading.Lock()
        self._returned = threading.Event()
        self._previous: dict[int, object] = {}
        self._pid = os.getpid()

    def attach(self, cancel: Callable[[], None]) -> None:
        """Have a stop signal call ``cancel`` (at once if one came already)."""
        with self._lock:
            self._cancels.append(cancel)
            cancelled = self._cancelled
        if cancelled:
            cancel()

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        _register_fork_hook()
        self._pid = os.getpid()
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        _installed.append(self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._returned.set()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._previous:
            _installed.remove(self._handle)
        self._previous = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked child that kept our handler
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            os._exit(128 + signum)  # only if the default action did not end it
        name = signal.Signals(signum).name
        if self.received is not None:
            self._say(f"{name} again: exiting now, unfinished outputs stay partial")
            self._leave(signum)
            return
        self.received = signum
        self._say(f"{name}: stopping, keeping what is done")
        threading.Thread(target=self._cancel_all, name="cancel", daemon=True).start()
        threading.Thread(target=self._watch, args=(signum,), name="stop-deadline",
                         daemon=True).start()

    def _cancel_all(self) -> None:
        with self._lock:
            self._cancelled = True
            cancels = list(self._cancels)
        for cancel in cancels:
            cancel()

    def _watch(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._returned.wait(self.grace):
            self._say(f"{name}: still blocked {self.grace:g} s later in {_main_thread_place()}; "
                      "exiting now, unfinished outputs stay partial")
            self._leave(signum)
            return
        time.sleep(self.grace)  # the run returned; the process should be gone by now
        self._say(f"{name}: the run stopped but the process did not exit within {self.grace:g} s "
                  "(a thread or child process holds it); exiting now")
        self._leave(signum)

    def _leave(self, signum: int) -> None:
        _flush_std_streams(timeout=0.2)
        os._exit(128 + signum)  # not sys.exit: the thread it would unwind may be the one stuck

    def _say(self, text: str) -> None:
        # os.write: no buffer lock, so neither a handler nor a watchdog can deadlock on it
        try:
            os.write(2, f"{self.prog}: {text}\n".encode(errors="replace"))
        except OSError:
            pass


def _main_thread_place() -> str:
    """Where the main thread is: the innermost frame of our own code (file:line function)."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    innermost = None
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        innermost = innermost or frame
        if _ROOT in path.parents and "site-packages" not in path.parts:
            return f"{path.relative_to(_ROOT)}:{frame.f_lineno} {frame.f_code.co_name}"
        frame = frame.f_back
    if innermost is None:
        return "an unknown place"
    return f"{innermost.f_code.co_filename}:{innermost.f_lineno} {innermost.f_code.co_name}"


def _flush_std_streams(timeout: float) -> None:
    """Flush stdout and stderr, giving up after ``timeout`` (a writer blocked on a full
    pipe holds the buffer's lock; waiting for it would defeat the deadline)."""
    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed or broken stream is nothing to flush
                pass

    helper = threading.Thread(target=flush, name="flush", daemon=True)
    helper.start()
    helper.join(timeout)


def _register_fork_hook() -> None:
    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_default_handlers_in_child)
        _fork_hook_registered = True


def _default_handlers_in_child() -> None:
    """In a forked child: SIGINT/SIGTERM do what they do by default again."""
    if not _installed:
        return
    _installed.clear()
    for sig in STOP_SIGNALS:
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (ValueError, OSError):  # not the main thread: cannot happen after fork; be safe
            pass
