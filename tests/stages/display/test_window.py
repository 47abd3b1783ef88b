"""--show: the local window (stages.display.window).

Unit tests drive ``ShowWindow`` with a fake HighGUI (no display needed): the
newest picture only, the figures drawn on the shown copy, keys and closing
ending the run, and a stuck display that never slows the pipeline. The
end-to-end tests run the command line under Xvfb (``tests.support.display_fixtures``)
with a fake network that finds one person: a screenshot of the window shows
the skeleton's colours, and ``q`` or the window's close request ends the run
with exit 0 and playable outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import run_stream
from stages.errors import InputError
from stages.frames import Frame, Result
from stages.jobs.base import Views
from stages.jobs.file_job import FileJob
from stages.settings import JobConfig
from stages.pose.draw import COLORS
from stages.outputs.sample import make_test_clip
from stages.display.window import ShowWindow, check_display
from tests.support.display_fixtures import xvfb, xvfb_with_window_manager  # noqa: F401

ROOT = Path(__file__).resolve().parents[3]
ONE_PERSON = "tests.support.fakes:OnePersonBackend"
DARK_LIVE = "lavfi:color=c=black:s=320x240:r=10"
SHOTS = os.environ.get("POSESTREAM_TEST_SHOTS")  # keep the screenshots there, to look at


class FakeGui:
    """HighGUI calls recorded; ``keys`` are pressed one per poll once a picture was shown."""

    def __init__(self, keys: tuple[int, ...] = (), block: threading.Event | None = None) -> None:
        self.keys = list(keys)
        self.block = block
        self.opened: list[tuple] = []
        self.fitted: list[tuple] = []
        self.images: list[tuple[str, np.ndarray]] = []
        self.threads: set[int] = set()
        self.open_titles: set[str] = set()
        self.closed: list[str] = []
        self.showed = threading.Event()

    def open(self, title, size, fullscreen):
        self.threads.add(threading.get_ident())
        self.opened.append((title, size, fullscreen))
        self.open_titles.add(title)

    def fit(self, title, size, fullscreen):
        self.threads.add(threading.get_ident())
        self.fitted.append((title, size, fullscreen))

    def show(self, title, image):
        self.threads.add(threading.get_ident())
        if self.block is not None:
            self.block.wait()
        self.images.append((title, image))
        self.showed.set()

    def key(self, wait_ms):
        self.threads.add(threading.get_ident())
        time.sleep(wait_ms / 1000)
        return self.keys.pop(0) if self.keys and self.images else -1

    def visible(self, title):
        return title in self.open_titles

    def close(self, title):
        self.threads.add(threading.get_ident())
        self.closed.append(title)
        self.open_titles.discard(title)


def _result(source: str = "cam", index: int = 0, people: int = 0) -> Result:
    image = np.full((48, 64, 3), 40, np.uint8)
    frame = Frame(source=source, index=index, pts=index / 10, image=image, wall=time.time())
    return Result(frame=frame, people=(), image=image.copy())


def _wait(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_newest_picture_is_shown_with_its_figures_on_a_copy():
    gui = FakeGui()
    with ShowWindow(gui=gui, fullscreen=True) as window:
        result = _result()
        assert window.show(result) is result
        assert gui.showed.wait(5)
    title, shown = gui.images[0]
    assert title == "posestream" and gui.opened == [("posestream", (640, 480), True)]
    assert gui.fitted == [("posestream", (64, 48), True)]  # opened before any picture came
    assert (shown[:8, :20] != 40).any()  # the FPS and people box, top left
    assert (result.image == 40).all()  # what is recorded has no figures drawn
    assert gui.closed == ["posestream"]
    assert len(gui.threads) == 1 and threading.get_ident() not in gui.threads  # one display thread


@pytest.mark.parametrize("key", [ord("q"), 27])
def test_q_or_esc_ends_the_run(key):
    gui = FakeGui(keys=(ord("x"), key))
    cancelled = threading.Event()
    with ShowWindow(gui=gui) as window:
        window.attach(cancelled.set)
        window.show(_result())
        assert cancelled.wait(5)
        window.wait()
    assert window.quit


def test_closing_the_window_ends_the_run():
    gui = FakeGui()
    cancelled = threading.Event()
    with ShowWindow(gui=gui) as window:
        window.attach(cancelled.set)
        window.show(_result())
        assert gui.showed.wait(5)
        gui.open_titles.clear()  # the user closed it
        assert cancelled.wait(5)
    assert window.quit
    late = threading.Event()
    window.attach(late.set)  # attached after the quit: called at once
    assert late.is_set()


def test_one_window_per_source_when_asked():
    gui = FakeGui()
    with ShowWindow(gui=gui, per_source=True) as window:
        window.show(_result("door"))
        window.show(_result("hall"))
        _wait(lambda: len(gui.opened) == 3)
    assert [title for title, _, _ in gui.opened] == ["posestream: starting", "posestream: door",
                                                     "posestream: hall"]
    assert gui.closed[0] == "posestream: starting"  # Qt set up before the run, then closed


def test_a_window_that_does_not_open_fails_open_in_one_line(monkeypatch):
    class Hung(FakeGui):
        def open(self, title, size, fullscreen):
            threading.Event().wait(5)

    monkeypatch.setattr("stages.display.window.START_TIMEOUT", 0.2)
    with pytest.raises(InputError, match=r"^--show: the window did not open within 0.2 s$"):
        ShowWindow(gui=Hung()).open()


def test_a_stuck_display_drops_pictures_and_never_waits():
    block = threading.Event()
    gui = FakeGui(block=block)
    window = ShowWindow(gui=gui).open()
    try:
        window.show(_result(index=0))
        _wait(lambda: window._slots["posestream"].statistics().size == 0)  # taken: now stuck
        for index in range(1, 101):
            window.show(_result(index=index))  # returns at once though nothing is shown
        assert window.dropped == 99 and gui.images == []
    finally:
        block.set()
        window.close()


def test_a_stuck_display_never_holds_up_the_pipeline(tmp_path):
    block = threading.Event()
    gui = FakeGui(block=block)
    clip = make_test_clip(tmp_path / "clip.mp4", frames=40, size=(64, 48))
    window = ShowWindow(gui=gui).open()
    try:
        job = FileJob(clip, tmp_path / "out", JobConfig(backend="tests.support.fakes:ZeroBackend",
                                                        resolution=(64, 48)))
        summary = job.run(views=Views(show=window.show))
        assert summary.frames_written == 40 and not summary.interrupted
        assert gui.images == [] and window.dropped >= 38  # the display never took more than one
    finally:
        block.set()
        window.close()


def test_no_display_is_one_line(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(InputError, match=r"^--show: no display \(DISPLAY and WAYLAND_DISPLAY"):
        check_display()
    monkeypatch.setattr("stages.display.window.gui_backend", lambda: "NONE")
    with pytest.raises(InputError, match="built without windows"):
        check_display()


def test_a_display_that_does_not_answer_is_one_line(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":1999")  # no server there: Qt would abort the process
    monkeypatch.setattr("stages.display.window.check_load_order", lambda option: None)  # pytest loaded av
    with pytest.raises(InputError) as caught:
        check_display()
    text = str(caught.value)
    assert text.startswith("--show: cannot open a window on display :1999") and "\n" not in text
    assert "could not connect to display" in text, text


@pytest.mark.parametrize("imports,clash", [("cv2, av", False), ("av, cv2", True)])
def test_pyav_loaded_before_opencv_is_refused_not_hung(imports, clash):
    # both wheels ship libxcb-shm-0be6dfbf; Qt hangs on PyAV's (stages.display.window's docstring)
    code = f"import {imports}\nfrom stages.display.window import check_load_order\ncheck_load_order()"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode != 0) == clash, done.stderr
    assert ("PyAV was loaded before OpenCV" in done.stderr) == clash


def test_the_command_line_fails_at_start_without_a_display(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code = run_stream.main([DARK_LIVE, "--show", "-o", str(tmp_path / "out"),  # a model load
                            "--backend", "tests.support.fakes:BrokenLoadBackend"])  # would fail
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("posestream: error: --show: no display"), err
    assert not (tmp_path / "out").exists()


# -- under Xvfb: the real window -----------------------------------------------------------------

def _cli(display, *args: str, tmp_path: Path) -> subprocess.Popen:
    """The command line on ``display``; its output goes to files (a full pipe would stall it)."""
    env = dict(display.env, PYTHONPATH=str(ROOT))
    with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-X", "faulthandler", str(ROOT / "run_stream.py"),
                                 *args, "--backend", ONE_PERSON, "-o", str(tmp_path / "out")],
                                cwd=tmp_path, env=env, stdout=out, stderr=err)
    proc.stderr_path = tmp_path / "stderr.txt"
    return proc


def _skeleton_colours(image: np.ndarray) -> int:
    """How many of the skeleton palette's colours cover at least 5 pixels of ``image``."""
    found = 0
    for colour in COLORS:
        near = (np.abs(image.astype(int) - colour).max(axis=2) <= 30).sum()
        found += near >= 5
    return found


def _shot_with_skeleton(display, tmp_path: Path, name: str, proc: subprocess.Popen,
                        timeout: float = 30.0) -> np.ndarray:
    """A screenshot once the skeleton shows (kept under $POSESTREAM_TEST_SHOTS when set).

    Raises:
        AssertionError: No skeleton within ``timeout``, naming the windows there are and
            where the run's threads were (``proc`` is ended with SIGABRT: faulthandler).
    """
    path = tmp_path / f"{name}.png"
    deadline = time.monotonic() + timeout
    while True:
        image = cv2.imread(str(display.screenshot(path)))
        if _skeleton_colours(image) >= 8 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        (Path(SHOTS) / path.name).write_bytes(path.read_bytes())
    if _skeleton_colours(image) < 8:
        windows = display.describe()
        if shutil.which("gdb"):  # the native stacks too, beside the test's files
            native = subprocess.run(["gdb", "-p", str(proc.pid), "-batch", "-ex",
                                     "thread apply all bt 14"], capture_output=True, text=True,
                                    timeout=60).stdout
            (tmp_path / "native.txt").write_text(native)
        proc.send_signal(signal.SIGABRT)
        proc.wait(10)
        raise AssertionError(f"no skeleton on the screen; windows: {windows}; the run: "
                             f"{proc.stderr_path.read_text()[-6000:]}")
    return image


def _finish(proc: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str]:
    """The run's exit status and what it wrote to stderr, once it ended."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the run did not end: {proc.stderr_path.read_text()[-2000:]}")
    return proc.returncode, proc.stderr_path.read_text()


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.slow
def test_live_window_shows_the_skeleton_and_q_ends_the_run(xvfb, tmp_path):
    proc = _cli(xvfb, DARK_LIVE, "--show", tmp_path=tmp_path)
    try:
        window = xvfb.wait_window("^posestream$")
        _shot_with_skeleton(xvfb, tmp_path, "live-window", proc)
        xvfb.key(window, "q")
        code, err = _finish(proc)
    finally:
        proc.kill()
    assert code == 0, err
    assert xvfb.windows("^posestream$") == []
    segments = sorted((tmp_path / "out").glob("*/*.mkv"))  # segments are Matroska
    assert segments and _decoded_frames(segments[0]) > 0, err
    logs = sorted((tmp_path / "out").glob("*/*.jsonl"))
    records = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    assert any(r.get("people") for r in records)


@pytest.mark.slow
def test_a_picture_stays_shown_until_its_window_is_closed(xvfb, tmp_path):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((240, 320, 3), np.uint8))
    proc = _cli(xvfb, str(photo), "--show", tmp_path=tmp_path)
    try:
        _shot_with_skeleton(xvfb, tmp_path, "picture-window", proc)
        window = xvfb.wait_window("^posestream$")
        time.sleep(1.0)
        assert proc.poll() is None  # the run is done, the picture still shown
        xvfb.close(window)
        code, err = _finish(proc)
    finally:
        proc.kill()
    assert code == 0, err
    drawn = cv2.imread(str(tmp_path / "out" / "photo.png"))
    assert drawn is not None and _skeleton_colours(drawn) >= 8  # complete outputs


@pytest.mark.slow
def test_esc_in_a_file_window_keeps_a_playable_partial_video(xvfb, tmp_path):
    # --show fullscreen asks the window manager: this Xvfb has none (see the test below)
    clip = make_test_clip(tmp_path / "clip.mp4", frames=1000, fps=Fraction(25), size=(320, 240))
    proc = _cli(xvfb, str(clip), "--show", "fullscreen", tmp_path=tmp_path)
    try:
        window = xvfb.wait_window("^posestream$")
        _shot_with_skeleton(xvfb, tmp_path, "file-window", proc)
        xvfb.key(window, "Escape")
        code, err = _finish(proc)
    finally:
        proc.kill()
    assert code == 0, err
    kept = sorted((tmp_path / "out").glob("clip*.mp4*"))
    assert kept and _decoded_frames(kept[0]) > 0, (kept, err)


@pytest.mark.slow
def test_fullscreen_fills_the_screen_under_a_window_manager(xvfb_with_window_manager, tmp_path):
    display = xvfb_with_window_manager
    proc = _cli(display, DARK_LIVE, "--show", "fullscreen", tmp_path=tmp_path)
    try:
        window = display.wait_window("^posestream$")
        image = _shot_with_skeleton(display, tmp_path, "fullscreen-window", proc)
        geometry = ""
        deadline = time.monotonic() + 10
        while "1280x720" not in geometry and time.monotonic() < deadline:
            geometry = display._xdotool("getwindowgeometry", window)
            time.sleep(0.2)
        display.key(window, "q")
        code, err = _finish(proc)
    finally:
        proc.kill()
    assert "1280x720" in geometry, geometry  # the whole Xvfb screen (display_fixtures.SCREEN)
    assert image.shape[:2] == (720, 1280) and code == 0, err
