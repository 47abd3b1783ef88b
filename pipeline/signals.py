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

The kernel may hand a signal sent to the process to any thread that does not
block it (a thread starting up, or creating one, takes it before the woken main
thread runs), and Python runs handlers only in the main thread, when it next
runs bytecode or a signal interrupts its wait: a main thread asleep in a wait
without a timeout would never see it. So every caught signal's number also goes
to a wakeup socket, and a relay thread reading it interrupts the main thread
with SIGURG (a handler that does nothing) unless the main thread ran the handler
soon by itself: it then runs the pending handlers, as if the signal had reached
it first.

Child processes never run these handlers: ``os.fork`` children get the
default ones back, and a handler that finds itself in another process (a
child forked by C code, which skips Python's fork hooks) restores the default
and re-raises the signal. Such a child shares the wakeup socket: what it
catches only makes this process's main thread run the handlers it has pending.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())
DEFAULT_GRACE = 1.5  # seconds; with the flush and exit the run ends within 2 s
NUDGE = getattr(signal, "SIGURG", None)  # ignored by default, so a late nudge does nothing
NUDGE_AFTER = 0.1  # seconds the main thread has to run a handler itself before it is nudged

_ROOT = Path(__file__).resolve().parents[1]
_installed: list = []  # (handler, its signals) installed now, so a forked child can drop them
_fork_hook_registered = False


class StopOnSignals:
    """Context manager: SIGINT/SIGTERM/SIGHUP stop the attached jobs within ``grace`` seconds.

    Handlers are installed only on the main thread (the only one Python runs
    handlers in); elsewhere the manager does nothing. Whichever thread the
    kernel gives a signal to, the main thread runs the handler (``_Relay``).

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
        self._relay: _Relay | None = None

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
        if self._previous and _Relay.possible():
            self._relay = _Relay(self._previous)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._returned.set()
        if self._relay is not None:
            self._relay.close()
            self._relay = None
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
            if self._relay is not None:
                self._relay.ran()
            self._say(f"{name} again: exiting now, unfinished outputs stay partial")
            self._leave(signum)
            return
        self.received = signum
        if self._relay is not None:
            self._relay.ran()
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


class _Relay:
    """Has the main thread run the handlers of the signals another thread caught.

    The C-level handler, in whichever thread caught the signal, marks it pending
    and writes its number to the wakeup socket; the relay thread reads it and,
    unless the main thread ran a handler for it within ``NUDGE_AFTER`` (it caught
    the signal itself), interrupts it with ``NUDGE``, whose handler does nothing:
    the interrupted wait runs the pending handlers, then goes on. The main
    thread's own waits are thus interrupted once per signal, as without a relay.
    Ends at ``close``.

    Args:
        signals: The signals whose numbers make the relay interrupt the main thread.
    """

    def __init__(self, signals: object) -> None:
        self._signals = frozenset(signals)
        self._main = threading.main_thread().ident
        self._runs = 0  # handlers the main thread ran; no lock: a handler must never wait for one
        self._read, self._write = socket.socketpair()  # not inherited by child processes
        self._write.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._previous_nudge = signal.signal(NUDGE, _nudged)
        _installed.append((_nudged, (NUDGE,)))
        self._thread = threading.Thread(target=self._run, name="signal-relay", daemon=True)
        self._thread.start()

    @staticmethod
    def possible() -> bool:
        """Whether this platform can interrupt one thread (POSIX)."""
        return NUDGE is not None and hasattr(signal, "pthread_kill")

    def ran(self) -> None:
        """Count a handler run (called by the main thread's handler)."""
        self._runs += 1

    def _run(self) -> None:
        expected = 0
        while caught := self._read.recv(64):  # empty: ``close`` shut the socket
            expected += sum(sig in self._signals for sig in caught)
            if self._ran(expected):
                continue
            signal.pthread_kill(self._main, NUDGE)
            self._ran(expected)
            expected = self._runs  # signals that came together ran one handler; a child's, none

    def _ran(self, expected: int) -> bool:
        """Whether the main thread ran ``expected`` handlers, waiting ``NUDGE_AFTER`` at most."""
        deadline = time.monotonic() + NUDGE_AFTER
        while self._runs < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._runs >= expected

    def close(self) -> None:
        """Stop relaying; the main thread's previous wakeup descriptor and SIGURG handler return."""
        signal.set_wakeup_fd(self._previous_fd)
        self._write.shutdown(socket.SHUT_WR)  # the relay reads the end even if a child holds a copy
        self._thread.join(1.0)
        signal.signal(NUDGE, self._previous_nudge)
        _installed.remove((_nudged, (NUDGE,)))
        self._read.close()
        self._write.close()


def _nudged(_signum: int, _frame: FrameType | None) -> None:
    """SIGURG from the relay: its work was interrupting the main thread's wait."""


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
    try:
        signal.set_wakeup_fd(-1)  # the relay thread is not in the child
    except (ValueError, OSError):
        pass
    for sig in signals:
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (ValueError, OSError):  # not the main thread: cannot happen after fork; be safe
            pass
