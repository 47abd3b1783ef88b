"""A real MQTT broker for the tests: Mosquitto on 127.0.0.1, started and stopped by PID.

The session fixture ``mosquitto`` installs Debian's ``mosquitto`` package when
``/usr/sbin/mosquitto`` is missing (``apt-get update`` once if the package is
not found) and skips, saying why, only if that fails. ``mqtt_broker`` starts
brokers on free ports; ``kill``/``start`` simulate a broker that dies and
comes back on the same port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.live_fixtures import free_port
from tests.support.processes import STOP_TIMEOUT, stop

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
READY_TIMEOUT = 10.0


def _apt_install() -> str:
    output = ""
    for step in (["apt-get", "install", "-y", "--no-upgrade", "mosquitto"], ["apt-get", "update"],
                 ["apt-get", "install", "-y", "--no-upgrade", "mosquitto"]):
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600,
                                  env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        output = (done.stdout + done.stderr).strip().splitlines()[-1:]
        if os.access(MOSQUITTO, os.X_OK):
            return ""
    return " | ".join(output)


@pytest.fixture(scope="session")
def mosquitto() -> str:
    """The Mosquitto binary, installed with apt when missing."""
    if not os.access(MOSQUITTO, os.X_OK):
        why = _apt_install()
        if not os.access(MOSQUITTO, os.X_OK):
            pytest.skip(f"Mosquitto unavailable and apt-get could not install it: {why}")
    return MOSQUITTO


class Broker:
    """One Mosquitto process on a fixed port of 127.0.0.1.

    Args:
        binary: The ``mosquitto`` executable.
        folder: Where its configuration, password file and log go.
        user, password: Require these credentials (anonymous clients refused).
    """

    def __init__(self, binary: str, folder: Path, *, user: str | None = None,
                 password: str | None = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.user, self.password = user, password
        self.conf = folder / f"mosquitto_{self.port}.conf"
        self.log_path = folder / f"mosquitto_{self.port}.log"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to the 'mosquitto' user, who cannot read tmp_path
        if user is None:
            lines.append("allow_anonymous true")
        else:
            passwords = folder / f"mosquitto_{self.port}.passwd"
            passwords.touch(mode=0o600)
            subprocess.run([MOSQUITTO_PASSWD, "-b", os.fspath(passwords), user, password or ""],
                           check=True, capture_output=True, timeout=30)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def url(self, prefix: str = "posestream", *, user: str | None = None,
            password: str | None = None) -> str:
        """``mqtt://[user:password@]127.0.0.1:PORT/prefix``, credentials percent-encoded."""
        auth = ""
        if user is not None:
            secret = "" if password is None else ":" + quote(password, safe="")
            auth = f"{quote(user, safe='')}{secret}@"
        return f"mqtt://{auth}127.0.0.1:{self.port}/{prefix}"

    def start(self) -> Broker:
        """Start the broker and wait until it accepts connections."""
        if self.proc is not None:
            raise RuntimeError("broker already running")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", os.fspath(self.conf)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Mosquitto did not start: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would end it."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
            self.proc = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT``; idempotent."""
        if self.proc is None:
            return
        stop(self.proc)
        self.proc = None


@pytest.fixture
def mqtt_broker(mosquitto, tmp_path):
    """Factory: ``mqtt_broker(start=True, user=None, password=None) -> Broker``.

    Every broker is stopped at teardown.
    """
    brokers: list[Broker] = []

    def make(*, start: bool = True, **kwargs) -> Broker:
        broker = Broker(mosquitto, tmp_path, **kwargs)
        brokers.append(broker)
        return broker.start() if start else broker

    yield make
    for broker in brokers:
        broker.stop()


class Subscriber:
    """A paho client subscribed to ``topic`` that keeps every message it gets.

    Attributes:
        messages: (topic, payload bytes, retain flag), in arrival order.
    """

    def __init__(self, broker: Broker, topic: str = "#", *, user: str | None = None,
                 password: str | None = None) -> None:
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-{id(self):x}")
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._subscribed.wait(READY_TIMEOUT):
            raise RuntimeError("the test subscriber could not subscribe")

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[bytes]:
        """The payloads received on ``topic``, in order."""
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
