"""``posestream --http`` on a live source, as an operator runs it: the status URL on
stderr, /healthz and /metrics while it runs, the per-source figures in the
summary JSON after SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.status_fixtures import WAIT, get, scrape, wait_until

ROOT = Path(__file__).resolve().parents[2]
LAVFI = "lavfi:testsrc2=size=64x48:rate=25,realtime"


class Run:
    """``run_stream.py`` in a child process; its stderr lines are collected on a thread."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def line(self, prefix: str) -> str | None:
        return next((line for line in self.lines if line.startswith(prefix)), None)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        out = self.proc.stdout.read()
        self.proc.wait(WAIT * 2)
        self.thread.join(WAIT)
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_http_serves_health_and_metrics_and_the_summary_has_each_sources_figures(tmp_path):
    summary = tmp_path / "summary.json"
    (tmp_path / "sources.txt").write_text(f"{LAVFI} cam1\n")
    run = Run("--sources", str(tmp_path / "sources.txt"), "-o", str(tmp_path / "out"), "--backend", "tests.support.fakes:ZeroBackend",
              "--resolution", "64x48", "--http", "127.0.0.1:0", "--summary-json", str(summary),
              "--preview", "127.0.0.1:0")
    try:
        assert wait_until(lambda: run.line("status: http://") or run.proc.poll() is not None,
                          WAIT * 3), run.lines
        url = run.line("status: ").split()[1]
        assert url.startswith("http://127.0.0.1:")
        name = "cam1"
        key = ("posestream_frames_total", (("source", name),))
        assert wait_until(lambda: scrape(url).get(key, 0) > 5, WAIT * 3), scrape(url)
        code, kind, body = get(url, "/healthz")
        assert code == 200 and json.loads(body)["sources"][name]["state"] == "live"
        code, kind, body = get(url, "/")  # the printed address itself: the index of endpoints
        preview = run.line("preview: ").split()[1]  # printed before the status line
        assert code == 200 and all(path in body.decode() for path in
                                   ("/healthz", "/metrics", "/events?source=cam1", preview))
        started = time.monotonic()
        code, out = run.stop()
    finally:
        run.kill()
    assert code == 128 + signal.SIGTERM, "".join(run.lines)
    assert time.monotonic() - started < WAIT
    row = json.loads(summary.read_text())["sources"][0]
    assert row["source"] == name and row["state"] == "stopped" and row["frames"] > 5
    for field in ("fps", "dropped", "rate_dropped", "reconnect_attempts", "reconnects",
                  "last_error", "latency_p50_ms", "latency_p95_ms"):
        assert field in row, field
    # not a terminal: the final summary in plain lines, with the state and reconnects
    assert re.search(r"^cam1: stopped, .* reconnects \d+/\d+ ", out, re.M), out
    assert "│" not in out
