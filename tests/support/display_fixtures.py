"""Fixtures for the --show tests: a virtual X display (Xvfb) and tools to drive it.

The session fixture ``xvfb`` installs Debian's ``xvfb`` (the X server),
``xdotool`` (key presses), ``imagemagick`` (``import``, screenshots) and
``python3-xlib`` (a window manager's close request, sent by Debian's
``/usr/bin/python3``) when one is missing, starts ``Xvfb`` on a free display
number and stops it, by its PID, at the end. It skips, saying why, only if
they cannot be installed. ``xvfb_with_window_manager`` is one display per
test with Debian's ``openbox`` running on it, for full screen.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = {"Xvfb": "xvfb", "xdotool": "xdotool", "import": "imagemagick"}
SCREEN = "1280x720x24"
START_TIMEOUT = 10.0
_CLOSE_SCRIPT = """
import sys
from Xlib import X, display, protocol
d = display.Display()
w = d.create_resource_object("window", int(sys.argv[1]))
kind, delete = d.intern_atom("WM_PROTOCOLS"), d.intern_atom("WM_DELETE_WINDOW")
event = protocol.event.ClientMessage(window=w, client_type=kind,
                                     data=(32, [delete, X.CurrentTime, 0, 0, 0]))
w.send_event(event, event_mask=X.NoEventMask)
d.flush()
"""


def _xlib_ready() -> bool:
    return subprocess.run([SYSTEM_PYTHON, "-c", "import Xlib"], capture_output=True).returncode == 0


def _install(packages: list[str]) -> str:
    """apt-get install ``packages``; the last lines of its output."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "--no-upgrade",
                   *packages]
        done = subprocess.run(install, capture_output=True, text=True, timeout=600, env=env)
        if done.returncode != 0:  # the package lists may be missing
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env)
            done = subprocess.run(install, capture_output=True, text=True, timeout=600, env=env)
        return " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)


class Display:
    """One running Xvfb, and what the tests do on it."""

    def __init__(self, number: int, proc: subprocess.Popen) -> None:
        self.name = f":{number}"
        self.proc = proc
        self.env = dict(os.environ, DISPLAY=self.name)
        self.env.pop("WAYLAND_DISPLAY", None)

    def windows(self, title: str) -> list[str]:
        """Ids of the mapped windows whose title matches the regex ``title``."""
        done = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title],
                              capture_output=True, text=True, env=self.env, timeout=10)
        return done.stdout.split()

    def wait_window(self, title: str, timeout: float = 30.0) -> str:
        """The id of the first window titled ``title``, once it is shown."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.windows(title)
            if found:
                return found[0]
            time.sleep(0.2)
        raise TimeoutError(f"no window {title!r} on {self.name} within {timeout:g} s")

    def describe(self) -> str:
        """Every window with a name: id, name, whether mapped, geometry (for failures)."""
        lines = []
        for window in self.windows_any("."):
            name = self._xdotool("getwindowname", window)
            geometry = " ".join(self._xdotool("getwindowgeometry", window).split()[2:])
            mapped = window in self.windows(".")
            lines.append(f"{window} {name!r} {'mapped' if mapped else 'unmapped'} {geometry}")
        return "; ".join(lines)

    def windows_any(self, title: str) -> list[str]:
        """Ids of every window (mapped or not) whose title matches ``title``."""
        return self._xdotool("search", "--name", title).split()

    def _xdotool(self, *args: str) -> str:
        return subprocess.run(["xdotool", *args], capture_output=True, text=True, env=self.env,
                              timeout=10).stdout.strip()

    def key(self, window: str, key: str) -> None:
        """Press ``key`` in ``window`` (focused first: there is no window manager)."""
        subprocess.run(["xdotool", "windowfocus", "--sync", window, "key", key], env=self.env,
                       check=True, timeout=10, capture_output=True)

    def close(self, window: str) -> None:
        """Ask ``window`` to close, as a window manager's close button does."""
        subprocess.run([SYSTEM_PYTHON, "-c", _CLOSE_SCRIPT, window], env=self.env, check=True,
                       timeout=10, capture_output=True)

    def screenshot(self, path: Path) -> Path:
        """The whole screen as a PNG at ``path``."""
        subprocess.run(["import", "-window", "root", str(path)], env=self.env, check=True,
                       timeout=20, capture_output=True)
        return path


def _start_display(packages: dict[str, str]):
    """Install what is missing, start Xvfb on a free number; (Display, its process) or a skip."""
    missing = [package for tool, package in packages.items() if shutil.which(tool) is None]
    if os.access(SYSTEM_PYTHON, os.X_OK) and not _xlib_ready():
        missing.append("python3-xlib")
    said = _install(missing) if missing else ""
    if any(shutil.which(tool) is None for tool in packages) or not _xlib_ready():
        pytest.skip(f"{', '.join(packages.values())} or python3-xlib unavailable: {said}")
    # Xvfb picks a free number itself and says which (-displayfd): choosing one here
    # raced with another test session starting its display at the same moment, and
    # the loser then drew on the winner's display until the winner's session ended it
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", SCREEN,
                             "-nolisten", "tcp"], pass_fds=(write_end,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        number = _read_display_number(read_end, proc)
    finally:
        os.close(read_end)
    return Display(number, proc), proc


def _read_display_number(fd: int, proc: subprocess.Popen) -> int:
    """The display number Xvfb writes to ``fd`` once it listens; a skip if it does not."""
    deadline = time.monotonic() + START_TIMEOUT
    text = b""
    while not text.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 64) if ready else b""
        if not chunk:
            proc.kill()
            proc.wait(5)
            pytest.skip("Xvfb did not start (no display number from -displayfd)")
        text += chunk
    return int(text)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="session")
def xvfb():
    """A virtual X display for the session (``Display``); skips if Xvfb cannot be had."""
    display, proc = _start_display(PACKAGES)
    try:
        yield display
    finally:
        _stop(proc)


@pytest.fixture
def xvfb_with_window_manager():
    """A display of its own with a window manager (Debian's ``openbox``), which full
    screen needs: Xvfb alone has nobody to grant it."""
    display, proc = _start_display({**PACKAGES, "openbox": "openbox"})
    manager = subprocess.Popen(["openbox"], env=display.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        yield display
    finally:
        _stop(manager)
        _stop(proc)
