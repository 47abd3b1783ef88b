"""Shared fixtures: tiny media made on the spot in ``tmp_path``."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from stages.outputs.sample import make_test_clip

# the RTSP server fixtures (gstreamer, rtsp_server) for the live-source tests, and
# a Mosquitto broker (mosquitto, mqtt_broker) for the MQTT tests
pytest_plugins = ["tests.support.live_fixtures", "tests.support.preview_fixtures", "tests.support.mqtt_fixtures"]


def pytest_configure(config):
    """Run with SIGHUP's default disposition, whatever started the suite.

    Under ``nohup`` (or a service manager that ignores the signal) SIGHUP is
    ignored and every child inherits that; posestream rightly keeps ignoring
    it then, and the tests of what SIGHUP does (tests/pipeline/test_signals.py,
    tests/program/test_run_stream.py) would see nothing happen.
    """
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture
def tiny_clip(tmp_path):
    """Factory: ``tiny_clip(name="clip.mp4", **make_test_clip_kwargs) -> Path``."""

    def make(name: str = "clip.mp4", **kwargs) -> Path:
        return make_test_clip(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def text_file(tmp_path):
    """Factory: ``text_file(name) -> Path`` of a small text file (not media)."""

    def make(name: str) -> Path:
        path = tmp_path / name
        path.write_text("this is not a video\n" * 20)
        return path

    return make
