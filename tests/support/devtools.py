"""Headless Chromium driven over the DevTools protocol, for tests that need real time.

``tests.support.browser.screenshot`` runs a page in virtual time, where ``Date.now()``
jumps as Chromium pleases; a page that measures time (the preview's latency)
needs the real clock, and tests of gestures (a click that asks for full
screen) need input. ``DevTools`` starts Chromium with
``--remote-debugging-pipe`` (JSON messages ended by NUL on file descriptors
3 and 4; no port, no extra package), opens one page, and offers what the
tests use: evaluate, wait for a condition, click, press a key, screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.browser import CHROMIUM


class DevToolsError(RuntimeError):
    """Chromium failed, answered an error, or did not answer in time."""


class DevTools:
    """One headless Chromium with one page, driven over a pipe; a context manager.

    Args:
        binary: The Chromium binary.
        size: The page's viewport (width, height) in CSS pixels.
        timeout: Seconds any one command may take.

    Raises:
        DevToolsError: Chromium did not start or answer.
    """

    def __init__(self, binary: str = CHROMIUM, *, size: tuple[int, int] = (1280, 720),
                 timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        self._next_id = 0
        self._buffer = b""
        self._events: set[str | None] = set()  # methods of the events seen since the last open
        self.requests: list[str] = []  # URLs the page asked for, once Network.enable is called
        to_chromium, self._send_fd = _pipe_above(10)
        self._recv_fd, from_chromium = _pipe_above(10)
        cmd = ["bash", "-c", f'exec "$@" 3<&{to_chromium} 4>&{from_chromium}', "chromium",
               binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--hide-scrollbars", "--remote-debugging-pipe",
               f"--user-data-dir={self._profile.name}", f"--window-size={size[0]},{size[1]}",
               "about:blank"]
        self._proc = subprocess.Popen(cmd, pass_fds=(to_chromium, from_chromium),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"})
        os.close(to_chromium)
        os.close(from_chromium)
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target,
                                      flatten=True)["sessionId"]
            self.call("Page.enable", session=True)
            self.call("Emulation.setDeviceMetricsOverride", session=True, width=size[0],
                      height=size[1], deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, *, session: bool = False, **params) -> dict:
        """Send one command (to the page with ``session``) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._send_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            self._events.add(reply.get("method"))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        """Navigate the page to ``url``; return once its load event fired."""
        self._events.clear()
        self.call("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + self.timeout
        while "Page.loadEventFired" not in self._events:
            self._events.add(self._receive(deadline).get("method"))

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True, awaitPromise=True, userGesture=False)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression!r} threw: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        """Evaluate ``expression`` until it is truthy; return that value.

        Raises:
            DevToolsError: Still falsy after ``timeout`` seconds (its last value is in the message).
        """
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise DevToolsError(f"{expression!r} still {value!r} after {timeout} s")
            time.sleep(0.1)
        return value

    def click(self, x: float, y: float) -> None:
        """A left click at (x, y) CSS pixels: a user gesture for the page."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y,
                      button="left", clickCount=1)

    def move(self, x: float, y: float) -> None:
        """Move the mouse to (x, y) CSS pixels."""
        self.call("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=x, y=y)

    def key(self, key: str) -> None:
        """Press and release one printable key (e.g. ``"o"``)."""
        self.call("Input.dispatchKeyEvent", session=True, type="keyDown", key=key, text=key,
                  code=f"Key{key.upper()}")
        self.call("Input.dispatchKeyEvent", session=True, type="keyUp", key=key,
                  code=f"Key{key.upper()}")

    def screenshot(self, png: Path) -> Path:
        """Write the page's viewport as a PNG to ``png``."""
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        Path(png).write_bytes(base64.b64decode(data))
        return Path(png)

    def close(self) -> None:
        """Close Chromium (killed if it does not go within 10 s); idempotent."""
        if self._proc.poll() is None:
            try:
                os.write(self._send_fd, json.dumps({"id": 0, "method": "Browser.close"}).encode()
                         + b"\0")
                self._proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for fd in (self._send_fd, self._recv_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._send_fd = self._recv_fd = -1
        self._profile.cleanup()

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _receive(self, deadline: float) -> dict:
        """The next message from Chromium (a reply or an event)."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._recv_fd], [], [], left)[0]:
                raise DevToolsError(f"Chromium did not answer within {self.timeout} s")
            chunk = os.read(self._recv_fd, 1 << 20)
            if not chunk:
                raise DevToolsError(f"Chromium exited ({self._proc.poll()})")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        message = json.loads(message)
        if message.get("method") == "Network.requestWillBeSent":
            self.requests.append(message["params"]["request"]["url"])
        return message


def _pipe_above(low: int) -> tuple[int, int]:
    """A pipe (read end, write end) whose descriptors are both >= ``low``."""
    read, write = os.pipe()
    ends = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low) for fd in (read, write))
    os.close(read)
    os.close(write)
    return ends
