"""Stopping a run on SIGINT/SIGTERM/SIGHUP, within a deadline whatever a thread is blocked in.

SIGHUP (a closed terminal or ssh session) is a stop like SIGTERM, unless it
was ignored when the handlers were installed (``nohup``): then it stays ignored.

The first signal cancels the attached jobs (on a helper thread, never inside a
lock the interrupted code may hold) and arms a deadline: if the context has not
been left ``grace`` seconds later, or the process has not exited ``grace``
seconds after it was left (a thread or child process holding it), the process
is ended with exit status 128 + signal. A second signal ends it at once.
Ending early skips every ``finally`` and ``atexit``: what was committed stays,
unfinished outputs stay under their partial names.

The lines are written to the standard error the process had when the
handlers were installed (a duplicate of its descriptor), so a library that
points descriptor 2 elsewhere for a while (TensorFlow's start-up, captured)
never swallows them.

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

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())
DEFAULT_GRACE = 1.5  # seconds; with the flush and exit the run ends within 2 s

_ROOT = Path(__file__).resolve().parents[1]
_installed: list = []  # (handler, its signals) installed now, so a forked child can drop them
_fork_hook_registered = False


class StopOnSignals:
    """Context manager: SIGINT/SIGTERM/SIGHUP stop the attached jobs within ``grace`` seconds.

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
        self._stderr = 2  # a duplicate of the standard error once entered

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
        self._stderr = _duplicate(2)
        for sig in STOP_SIGNALS:
            if sig == getattr(signal, "SIGHUP", None) and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # nohup: the user asked to outlive the terminal
            self._previous[sig] = signal.signal(sig, self._handle)
        _installed.append((self._handle, tuple(self._previous)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._returned.set()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._previous:
            _installed.remove((self._handle, tuple(self._previous)))
        self._previous = {}
        if self._stderr != 2 and self.received is None:  # else the deadline may still write
            os.close(self._stderr)
            self._stderr = 2

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
            os.write(self._stderr, f"{self.prog}: {text}\n".encode(errors="replace"))
        except OSError:
            pass


def _duplicate(fd: int) -> int:
    """A duplicate of ``fd`` (not inherited by child processes), or ``fd`` itself if it is closed."""
    try:
        return os.dup(fd)
    except OSError:
        return fd


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
    """In a forked child: the stop signals do what they do by default again."""
    if not _installed:
        return
    signals = {sig for _, installed in _installed for sig in installed}
    _installed.clear()
    for sig in signals:
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (ValueError, OSError):  # not the main thread: cannot happen after fork; be safe
            pass
