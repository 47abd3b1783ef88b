"""The live dashboard: its columns, the plain lines without a terminal, and log
lines printed above the live table (in a real terminal: tmux)."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from stages.sources.credentials import CredentialFilter
from stages.display.dashboard import ERROR_WIDTH, LiveDashboard, source_line, tables

ROOT = Path(__file__).resolve().parents[3]
ERROR = "rtsp://***@127.0.0.1:8554/cam1: gave up after 4 failures in a row (max_retries=3): " \
        "Connection refused"
ROW = {"source": "cam1", "state": "given up", "fps": 0.0, "frames": 1200, "dropped": 7,
       "rate_dropped": 30, "reconnect_attempts": 4, "reconnects": 1, "last_error": ERROR,
       "latency_p50_ms": 120.0, "latency_p95_ms": 180.0}
LIVE_ROW = {"source": "door", "state": "live", "fps": 4.96, "frames": 300, "dropped": 0,
            "rate_dropped": 0, "reconnect_attempts": 0, "reconnects": 0, "last_error": "",
            "latency_p50_ms": 80.0, "latency_p95_ms": 95.0}
STAGES = [{"stage": "inference", "workers": 2, "items": 100, "busy_pct": 93.0, "busy_seconds": 9.3,
           "mean_ms": 150.0, "queue": 1, "queue_capacity": 2, "queue_peak": 2}]


def render(snapshot: dict, width: int = 160) -> list[str]:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(tables(snapshot))
    return console.export_text().splitlines()


def test_the_table_has_a_column_per_fact_and_a_row_per_source():
    lines = render({"sources": [ROW, LIVE_ROW], "stages": STAGES})
    header = next(line for line in lines if "source" in line and "state" in line)
    for col in ("state", "FPS", "frames", "dropped", "reconnects", "p50 ms", "p95 ms", "last error"):
        assert col in header, col
    cam = next(line for line in lines if line.startswith("│ cam1"))
    words = cam.split("│")
    assert [w.strip() for w in words[1:9]] == ["cam1", "given up", "0.0", "1200", "7 +30 rate",
                                               "1/4", "120", "180"]
    error = words[9].strip()  # cut to fit, with an ellipsis
    assert error.endswith("…") and ERROR.startswith(error[:-1]) and len(error) <= ERROR_WIDTH
    door = next(line for line in lines if line.startswith("│ door"))
    assert [w.strip() for w in door.split("│")[1:9]] == ["door", "live", "5.0", "300", "0", "0/0",
                                                         "80", "95"]
    assert any(line.startswith("│ inference") for line in lines)


def test_a_narrow_terminal_cuts_the_last_error_not_the_figures():
    lines = render({"sources": [ROW], "stages": STAGES}, width=100)
    cam = next(line for line in lines if line.startswith("│ cam1"))
    assert "7 +30 rate" in cam and "1/4" in cam and "given up" in cam and "180" in cam
    assert cam.split("│")[9].strip().endswith("…")


def test_rows_of_older_snapshots_still_render():
    old = {"source": "cam1", "fps": 12.5, "frames": 100, "dropped": 7, "reconnects": 1,
           "latency_p50_ms": 120.0, "latency_p95_ms": 180.0}
    assert any("cam1" in line and "1/1" in line for line in render({"sources": [old], "stages": []}))


def test_without_a_terminal_the_plain_lines_carry_the_same_facts(caplog):
    caplog.set_level(logging.INFO, logger="stages.display.dashboard")
    with LiveDashboard(lambda: {"sources": [ROW, LIVE_ROW], "stages": []}, tty=False, interval=0.01):
        deadline = time.monotonic() + 5
        while len(caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    line = caplog.records[0].getMessage()
    assert line == source_line(ROW)
    for fact in ("cam1: given up", "0.0 FPS", "1200 frames", "7 +30 rate dropped",
                 "reconnects 1/4 (successes/attempts)", "p50 120 ms p95 180 ms",
                 f"last error: {ERROR}"):
        assert fact in line, fact
    assert "last error" not in source_line(LIVE_ROW)


def test_log_lines_go_through_the_live_console_and_handlers_come_back():
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(CredentialFilter())
    root.addHandler(handler)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    try:
        with LiveDashboard(lambda: {"sources": [LIVE_ROW], "stages": STAGES}, tty=True,
                           console=console):
            assert handler not in root.handlers
            logging.getLogger("stages.sources.stream").warning("cam1: rtsp://admin:s3cret@127.0.0.1/x gave up")
        assert handler in root.handlers
        assert not [h for h in root.handlers if type(h).__name__ == "ConsoleLogHandler"]
    finally:
        root.removeHandler(handler)
    text = out.getvalue()
    assert "WARNING stages.sources.stream: cam1: rtsp://***@127.0.0.1/x gave up" in text  # filter kept
    assert "s3cret" not in text


TMUX = shutil.which("tmux")
DEMO = """
import logging, sys, time
sys.path.insert(0, {root!r})
from stages.display.dashboard import LiveDashboard
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
row = {row!r}
with LiveDashboard(lambda: {{"sources": [row], "stages": []}}):
    time.sleep(1.5)
    logging.getLogger("stages.sources.stream").warning("cam1: gave up after 4 failures")
    time.sleep(3)
    print("DONE", file=sys.stderr)
    time.sleep(30)
"""


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_in_a_terminal_log_lines_stay_above_the_table(tmp_path):
    script = tmp_path / "demo.py"
    script.write_text(DEMO.format(root=str(ROOT), row=LIVE_ROW))
    socket_name = f"posestream-test-{os.getpid()}"
    tmux = [TMUX, "-L", socket_name, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "30", "-s", "demo",
                    f"{sys.executable} {script}"], check=True, timeout=30)
    try:
        screen: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = subprocess.run([*tmux, "capture-pane", "-p", "-t", "demo"], capture_output=True,
                                  text=True, timeout=30)
            screen = done.stdout.splitlines()
            if any("DONE" in line for line in screen):
                break
            time.sleep(0.2)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)
    log_row = next(i for i, line in enumerate(screen) if "gave up after 4 failures" in line)
    table_row = next(i for i, line in enumerate(screen) if line.startswith("sources"))
    assert log_row < table_row, "\n".join(screen)
    assert sum("gave up after 4 failures" in line for line in screen) == 1
