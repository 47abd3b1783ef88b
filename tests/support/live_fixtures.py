"""Fixtures for live-source tests: a real RTSP server (GStreamer) in a child process.

``tests/support/rtsp_server.py`` runs under Debian's ``/usr/bin/python3``, which has
``gi``; the venv does not. The session fixture ``gstreamer`` installs the
packages with ``scripts/install_gstreamer.sh`` when they are missing (a quick
no-op when present) and skips, saying why, only if that fails.

Import the fixtures into a test module::

    from tests.support.live_fixtures import gstreamer, rtsp_server  # noqa: F401
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import av
import numpy as np
import pytest

from stages.outputs.sample import frame_colour
from tests.support.processes import STOP_TIMEOUT, stop

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = ROOT / "tests" / "support" / "rtsp_server.py"
INSTALL_SCRIPT = ROOT / "scripts" / "install_gstreamer.sh"
_PROBE = "import gi; gi.require_version('GstRtspServer', '1.0')"
READY_TIMEOUT = 15.0


def run_in_thread(job, **run_options) -> tuple[threading.Thread, dict]:
    """Run ``job.run(**run_options)`` on a daemon thread; the dict gets ``stats`` (what it
    returned) or ``error`` (what it raised), for the test to look at."""
    out: dict = {}

    def target() -> None:
        try:
            out["stats"] = job.run(**run_options)
        except BaseException as exc:  # noqa: BLE001 - looked at by the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    """Poll ``predicate`` until true.

    Raises:
        AssertionError: Still false after ``timeout`` seconds, naming ``what``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_live_clip(path: Path, *, size: tuple[int, int] = (320, 240), seconds: float = 2.0,
                   fps: int = 25, gop: int = 5) -> Path:
    """A small H.264 mp4 with frequent key frames, so a client joins fast.

    Same flat colour frames as ``stages.outputs.sample.make_test_clip``, which has no
    GOP setting; a client joining a shared RTSP stream waits for a key frame.
    """
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps),
                                      options={"g": str(gop), "preset": "ultrafast"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(round(seconds * fps)):
            image = np.empty((size[1], size[0], 3), np.uint8)
            image[:] = frame_colour(index)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def _gstreamer_ready() -> bool:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, timeout=60)
    return probe.returncode == 0


@pytest.fixture(scope="session")
def gstreamer() -> str:
    """Make sure the GStreamer RTSP server is importable by /usr/bin/python3."""
    if _gstreamer_ready():
        return SYSTEM_PYTHON
    try:
        done = subprocess.run(["bash", os.fspath(INSTALL_SCRIPT)], capture_output=True,
                              text=True, timeout=600)
        output = (done.stdout + done.stderr).strip().splitlines()[-3:]
    except (OSError, subprocess.TimeoutExpired) as exc:
        output = [str(exc)]
    if not _gstreamer_ready():
        pytest.skip("GStreamer RTSP server unavailable for /usr/bin/python3 and "
                    f"scripts/install_gstreamer.sh could not install it: {' | '.join(output)}")
    return SYSTEM_PYTHON


class RtspServer:
    """One ``tests/support/rtsp_server.py`` child process on a fixed port.

    ``kill``/``restart`` simulate a camera that drops and comes back on the
    same port; ``freeze``/``thaw`` (SIGSTOP/SIGCONT) one that hangs. Only the
    process this object started is ever signalled.
    """

    def __init__(self, python: str, clip: Path, log_dir: Path, *, mount: str = "/cam1",
                 user: str | None = None, password: str | None = None) -> None:
        self.python = python
        self.clip = clip
        self.mount = mount
        self.user, self.password = user, password
        self.port = free_port()
        self.log_path = log_dir / f"rtsp_server_{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.frozen = False

    def url(self, *, user: str | None = None, password: str | None = None,
            port: int | None = None, mount: str | None = None) -> str:
        """The stream URL, with percent-encoded credentials when given."""
        auth = ""
        if user is not None:
            auth = quote(user, safe="")
            if password is not None:
                auth += ":" + quote(password, safe="")
            auth += "@"
        return f"rtsp://{auth}127.0.0.1:{port or self.port}{mount or self.mount}"

    def start(self, clip: Path | None = None) -> RtspServer:
        """Start serving (``clip`` replaces the current one); wait for READY."""
        if self.proc is not None:
            raise RuntimeError("server already running")
        self.clip = clip or self.clip
        args = [self.python, os.fspath(SERVER_SCRIPT), os.fspath(self.clip),
                "--port", str(self.port), "--mount", self.mount]
        if self.user is not None:
            args += ["--user", self.user, "--password", self.password or ""]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if sel.select(left):
                    line = self.proc.stdout.readline().decode(errors="replace")
                    if line.startswith("READY"):
                        return
                    if not line:
                        break
        self.stop()
        raise RuntimeError(f"RTSP server did not start: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crashing camera would go."""
        if self.proc is not None:
            self.thaw()
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
            self.proc.stdout.close()
            self.proc = None

    def restart(self, clip: Path | None = None) -> RtspServer:
        """Kill and start again on the same port."""
        self.kill()
        return self.start(clip)

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open but nothing flows."""
        if self.proc is not None and not self.frozen:
            self.proc.send_signal(signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        """SIGCONT a frozen server."""
        if self.proc is not None and self.frozen:
            self.proc.send_signal(signal.SIGCONT)
            self.frozen = False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT``; idempotent."""
        if self.proc is None:
            return
        self.thaw()
        stop(self.proc)
        self.proc.stdout.close()
        self.proc = None


@pytest.fixture
def rtsp_server(gstreamer, tmp_path):
    """Factory: ``rtsp_server(clip=None, **RtspServer_kwargs) -> RtspServer`` (started).

    Without ``clip`` a 320x240, 25 fps, 2 s clip is made. Every server is
    stopped at teardown.
    """
    servers: list[RtspServer] = []

    def start(clip: Path | None = None, **kwargs) -> RtspServer:
        clip = clip or make_live_clip(tmp_path / f"live{len(servers)}.mp4")
        server = RtspServer(gstreamer, clip, tmp_path, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
