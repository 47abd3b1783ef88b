"""A local window with the annotated stream (OpenCV HighGUI), for booths: ``--show``.

``ShowWindow.show`` is a pipeline step (``Result -> Result``) that hands the
drawn picture to a one-slot drop-oldest channel and returns at once; the
window's own thread shows the newest picture, so a slow or stuck display
loses frames and never slows the pipeline. FPS (of the frames reaching the
window's step) and the people count are drawn onto the shown copy only,
never into what is recorded.

Every HighGUI call (window creation, ``imshow``, ``waitKey``, destroy) is
made on that one thread: OpenCV's Qt backend creates its QApplication in the
thread of the first call, and its windows live and process events there
(``waitKey`` runs the event loop). opencv-python's Qt has only the X11
(xcb) platform: under Wayland it needs XWayland's ``DISPLAY``.

Keys: ``q`` or Esc in the window, or closing the window, ends the run as
SIGINT does (``attach``: the job's ``cancel``); the command line then exits
0, since the user ended it on purpose.

No display: Qt aborts the whole process when it cannot reach one, so
``check_display`` first opens a window in a child process and turns its
failure into one line, before any model loads.

Load order: OpenCV must be imported before PyAV. Both wheels bundle an X
library under the same name (``libxcb-shm-0be6dfbf``) built against
different ``libxcb`` copies; whichever loads first serves both, and Qt on
PyAV's copy hangs for ever opening its first window (seen with
opencv-python 5.1 and av 18). ``run_stream`` imports ``cv2`` first when
``--show`` is given; ``check_display`` refuses, in one line, a process where
PyAV's copy is loaded.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from pipeline import Cancelled, Channel, EndOfStream, Policy
from stages.errors import InputError
from stages.frames import Result

log = logging.getLogger(__name__)

__all__ = ["HighGui", "Overlay", "ShowWindow", "check_display", "check_load_order", "gui_backend"]

TITLE = "posestream"
QUIT_KEYS = frozenset({ord("q"), ord("Q"), 27})  # 27: Esc
FPS_WINDOW = 3.0  # seconds of arrival times behind the FPS figure
POLL_MS = 15  # waitKey's wait while no new picture came: key and close latency
REPAINT = 0.5  # seconds after which a window's last picture is put in again (a still picture:
# under Xvfb a picture put in before the window was first painted was seen to stay unpainted)
START_TIMEOUT = 10.0  # seconds the first window may take to open
FIRST_SIZE = (640, 480)  # a window opened before its first picture; fitted to it then
JOIN_TIMEOUT = 2.0  # seconds close() waits for a stuck display thread (a daemon) before leaving it
PROBE_TIMEOUT = 20.0  # seconds the child that tries the display may take (it imports cv2)
_PROBE = ("import cv2; cv2.namedWindow('posestream-probe', cv2.WINDOW_NORMAL); cv2.waitKey(1); "
          "cv2.destroyAllWindows(); cv2.waitKey(1)")


def gui_backend() -> str:
    """OpenCV's HighGUI backend as its build information names it ("QT5", "GTK3", "NONE"...)."""
    for line in cv2.getBuildInformation().splitlines():
        name, _, value = line.strip().partition(":")
        if name == "GUI":
            return value.strip() or "NONE"
    return "NONE"


def check_display(option: str = "--show") -> None:
    """A window can be opened here: OpenCV has a GUI and a display answers.

    Raises:
        InputError: One line saying what is missing (no GUI in this OpenCV,
            no ``DISPLAY``/``WAYLAND_DISPLAY``, or the display's own refusal).
    """
    backend = gui_backend()
    if backend.upper() == "NONE":
        raise InputError(f"{option}: this OpenCV was built without windows (GUI: NONE, e.g. "
                         "opencv-python-headless); install opencv-python, or use --preview PORT")
    where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not where:
        raise InputError(f"{option}: no display (DISPLAY and WAYLAND_DISPLAY are unset); "
                         "use --preview PORT to watch in a browser")
    check_load_order(option)
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InputError(f"{option}: opening a window on display {where} took over "
                         f"{PROBE_TIMEOUT:g} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit status {done.returncode}"
        raise InputError(f"{option}: cannot open a window on display {where} ({backend}): {reason}")


def check_load_order(option: str = "--show") -> None:
    """OpenCV's X libraries, not PyAV's, serve Qt in this process (see the module docstring).

    Raises:
        InputError: PyAV's ``libxcb-shm`` is loaded: a window would hang.
    """
    try:
        with open("/proc/self/maps") as maps:
            clash = any("av.libs/libxcb-shm" in line for line in maps)
    except OSError:  # not Linux: no such wheels
        return
    if clash:
        raise InputError(f"{option}: PyAV was loaded before OpenCV, and Qt hangs on PyAV's X "
                         "libraries: import cv2 before av")


class HighGui:
    """The HighGUI calls a ``ShowWindow`` makes, all on its display thread (tests fake it)."""

    def open(self, title: str, size: tuple[int, int], fullscreen: bool) -> None:
        """Create the window ``title`` for pictures of ``size`` (width, height)."""
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        if fullscreen:
            cv2.setWindowProperty(title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        else:
            cv2.resizeWindow(title, *size)

    def fit(self, title: str, size: tuple[int, int], fullscreen: bool) -> None:
        """Size the window to pictures of ``size`` (unless it is full screen)."""
        if not fullscreen:
            cv2.resizeWindow(title, *size)

    def show(self, title: str, image: np.ndarray) -> None:
        """Put ``image`` (BGR) in the window."""
        cv2.imshow(title, image)

    def key(self, wait_ms: int) -> int:
        """Run the window's events for ``wait_ms``; the key pressed, or -1."""
        return cv2.waitKey(wait_ms)

    def visible(self, title: str) -> bool:
        """Whether the window is still open (False once the user closed it)."""
        try:  # Qt deletes its GUI object with the last window: asking then is an error
            return cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def close(self, title: str) -> None:
        """Destroy the window if it is still there."""
        try:
            cv2.destroyWindow(title)
            cv2.waitKey(1)
        except cv2.error:
            pass


class Overlay:
    """Draws the frame rate and people count in the top-left corner of a shown picture.

    Args:
        colour: BGR text colour.
        background: BGR colour of the box behind the text.
    """

    def __init__(self, *, colour: tuple[int, int, int] = (255, 255, 255),
                 background: tuple[int, int, int] = (32, 32, 32)) -> None:
        self.colour = colour
        self.background = background

    def annotate(self, image: np.ndarray, fps: float, people: int) -> np.ndarray:
        """Draw onto ``image`` in place and return it."""
        text = f"{people} {'person' if people == 1 else 'people'}"
        if fps > 0:  # none until two pictures came (a still picture has none)
            text = f"{fps:.1f} FPS  {text}"
        scale = max(0.5, image.shape[1] / 1280)
        thickness = max(1, round(2 * scale))
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        pad = max(2, round(6 * scale))
        cv2.rectangle(image, (0, 0), (w + 2 * pad, h + base + 2 * pad), self.background, -1)
        cv2.putText(image, text, (pad, pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, self.colour,
                    thickness, cv2.LINE_AA)
        return image


@dataclass(frozen=True, slots=True)
class _Picture:
    """What the pipeline hands the display: the drawn picture and its figures."""

    image: np.ndarray
    fps: float
    people: int


class _Arrivals:
    """Arrival times of one window's pictures, for its FPS figure."""

    def __init__(self) -> None:
        self.times: deque[float] = deque(maxlen=512)

    def fps(self, now: float) -> float:
        self.times.append(now)
        while self.times and self.times[0] < now - FPS_WINDOW:
            self.times.popleft()
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(now - self.times[0], 1e-6)


class ShowWindow:
    """A window (one per source with ``per_source``) showing the newest annotated picture.

    A context manager: ``open`` checks the display (``check_display``) and
    starts the display thread; ``close`` ends it and destroys the windows.

    Args:
        fullscreen: Open the windows full screen.
        per_source: One window per source (several live sources), titled
            "posestream: NAME"; else one window for every picture (files).
        title: The window title (prefix, with ``per_source``).
        gui: The HighGUI calls (None: OpenCV's, after ``check_display``).
        overlay: Draws the figures onto the shown copy.

    Attributes:
        quit: The user ended the run from the window (key or close).
        shown: Pictures put in a window.
        dropped: Pictures replaced by a newer one before the display took them.
        error: What stopped the display thread, if it failed.
    """

    def __init__(self, *, fullscreen: bool = False, per_source: bool = False, title: str = TITLE,
                 gui: HighGui | None = None, overlay: Overlay | None = None) -> None:
        self.fullscreen = fullscreen
        self.per_source = per_source
        self.title = title
        self.gui = gui
        self.overlay = overlay or Overlay()
        self.quit = False
        self.shown = self.dropped = 0
        self.error: BaseException | None = None
        self._slots: dict[str, Channel[_Picture]] = {}
        self._arrivals: dict[str, _Arrivals] = {}
        self._on_quit: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ended = threading.Event()
        self._opened = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> ShowWindow:
        """Check the display and start the display thread.

        Raises:
            InputError: No window can be opened here (one line).
        """
        if self.gui is None:
            check_display()
            # Qt warns at exit that the main thread stops the display thread's timers: noise
            os.environ.setdefault("QT_LOGGING_RULES", "default.warning=false")
            self.gui = HighGui()
        self._thread = threading.Thread(target=self._run, name="show-window", daemon=True)
        self._thread.start()
        if not self._opened.wait(START_TIMEOUT):
            self.stop()
            raise InputError(f"--show: the window did not open within {START_TIMEOUT:g} s")
        if self.error is not None:
            raise InputError(f"--show: the window did not open: {self.error}")
        return self

    def attach(self, cancel: Callable[[], None]) -> None:
        """Have the user's quit call ``cancel`` (at once if the user quit already)."""
        with self._lock:
            self._on_quit.append(cancel)
            quit = self.quit
        if quit:
            cancel()

    def show(self, result: Result) -> Result:
        """Pipeline step: hand ``result``'s picture to its window; never blocks."""
        title = self._title(result.frame.source)
        with self._lock:
            slot = self._slots.get(title)
            if slot is None:
                slot = self._slots[title] = Channel(1, policy=Policy.DROP_OLDEST,
                                                    name=f"window {title}", on_drop=self._drop)
                self._arrivals[title] = _Arrivals()
            fps = self._arrivals[title].fps(time.monotonic())
        image = result.image if result.image is not None else result.frame.image
        try:
            slot.put(_Picture(image, fps, len(result.people)))
        except (Cancelled, EndOfStream):
            pass  # the window is closing
        return result

    def wait(self) -> None:
        """Block until the user quits the window, ``stop`` is called or the display fails
        (at once if the window was never opened)."""
        if self._thread is not None:
            self._ended.wait()

    def stop(self) -> None:
        """Ask the display thread to end (any thread; does not wait)."""
        self._stopping.set()

    def close(self) -> None:
        """End the display thread and destroy its windows; idempotent."""
        self.stop()
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            slot.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
            if self._thread.is_alive():
                log.warning("show: the display did not return within %g s; leaving it",
                            JOIN_TIMEOUT)

    def __enter__(self) -> ShowWindow:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the display thread
    def _run(self) -> None:
        """The display loop. The first window (every window's, with ``per_source``: a
        start window, closed at once) opens before any picture comes, while no pipeline
        thread runs yet: Qt's X connection was seen to hang now and then when made
        during a run, and a hang here fails ``open`` rather than the run."""
        opened: dict[str, tuple[np.ndarray, float] | None] = {}  # title -> last picture, when
        try:
            first = self.title if not self.per_source else f"{self.title}: starting"
            self.gui.open(first, FIRST_SIZE, self.fullscreen)
            if self.per_source:
                self.gui.close(first)
            else:
                opened[first] = None
            self._opened.set()
            while not self._stopping.is_set():
                shown = self._show_newest(opened)
                self._repaint(opened)
                key = self.gui.key(1 if shown else POLL_MS)
                closed = any(not self.gui.visible(title) for title in opened)
                if (key != -1 and key & 0xFF in QUIT_KEYS) or closed:
                    self._user_quit("closed" if closed else "key")
                    return
        except Exception as exc:  # the run goes on without its window
            self.error = exc
            log.error("show: the window failed: %s", exc)
        finally:
            for title in opened:
                self.gui.close(title)
            self._opened.set()
            self._ended.set()

    def _show_newest(self, opened: dict[str, tuple[np.ndarray, float] | None]) -> bool:
        """Show each window's newest picture, if one came; whether any was shown."""
        with self._lock:
            slots = list(self._slots.items())
        shown = False
        for title, slot in slots:
            try:
                picture = slot.get(timeout=0)
            except (TimeoutError, Cancelled, EndOfStream):
                continue
            height, width = picture.image.shape[:2]
            if title not in opened:
                self.gui.open(title, (width, height), self.fullscreen)
            if opened.get(title) is None:
                self.gui.fit(title, (width, height), self.fullscreen)
                log.info("show: window %r opened for %dx%d pictures%s", title, width, height,
                         " (full screen)" if self.fullscreen else "")
            image = self.overlay.annotate(picture.image.copy(), picture.fps, picture.people)
            self.gui.show(title, image)
            opened[title] = (image, time.monotonic())
            self.shown += 1
            shown = True
        return shown

    def _repaint(self, opened: dict[str, tuple[np.ndarray, float] | None]) -> None:
        """Put a window's last picture in again when no new one came for ``REPAINT`` s."""
        now = time.monotonic()
        for title, last in opened.items():
            if last is None:
                continue
            image, when = last
            if now - when >= REPAINT:
                self.gui.show(title, image)
                opened[title] = (image, now)

    def _user_quit(self, how: str) -> None:
        log.info("show: window %s by the user: ending the run", how)
        with self._lock:
            self.quit = True
            cancels = list(self._on_quit)
        for cancel in cancels:
            cancel()

    def _drop(self, _picture: _Picture) -> None:
        with self._lock:
            self.dropped += 1

    def _title(self, source: str) -> str:
        return f"{self.title}: {source}" if self.per_source else self.title
