"""Headless Chromium for tests: Debian's ``chromium`` package, installed on demand.

``chromium_path()`` installs the package with apt-get when the binary is
missing (root, or sudo) and returns the binary, or None with the reason in
``install_log`` when that cannot be done. ``screenshot`` loads one page in a
fresh profile and writes a PNG of it.

Chromium's one-shot ``--screenshot`` waits for the page's load event (an
MJPEG ``<img>`` fires it with its first frame) and then lets the page run for
``--virtual-time-budget`` milliseconds of virtual time before capturing; no
DevTools protocol is needed. A page that measures real time, or a test that
clicks, uses ``tests.support.devtools`` instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
PACKAGE = "chromium"
install_log: list[str] = []


def chromium_path() -> str | None:
    """The Chromium binary, installing Debian's package if needed; None if impossible."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if shutil.which("apt-get") is None:
        install_log.append("apt-get not found")
        return None
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-upgrade", PACKAGE]):
        try:
            done = subprocess.run(sudo + step, capture_output=True, text=True, env=env, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            install_log.append(f"{' '.join(step)}: {exc}")
            return None
        if done.returncode != 0:
            install_log.append(f"{' '.join(step)}: " + " | ".join(done.stderr.strip().splitlines()[-3:]))
            return None
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else None


def screenshot(url: str, png: Path, *, size: tuple[int, int] = (1280, 720),
               budget_ms: int = 3000, timeout: float = 90.0, binary: str = CHROMIUM) -> Path:
    """Load ``url`` in headless Chromium and save a ``size`` screenshot to ``png``.

    Raises:
        RuntimeError: Chromium failed or wrote no picture (its stderr tail is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-extensions", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
               f"--screenshot={png}", f"--virtual-time-budget={budget_ms}", url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"})
    if done.returncode != 0 or not Path(png).is_file():
        tail = " | ".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"chromium exited {done.returncode} without {png}: {tail}")
    return Path(png)
