import logging
import sys

import pytest
from rich.console import Console

from stages.display.console import FileProgress, print_summary, tables


def test_plain_progress_lines_when_not_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="stages.display.console")
    with FileProgress("clip.mp4", 10, tty=False, interval=0) as progress:
        for _ in range(3):
            progress.advance()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and lines[-1].startswith("clip.mp4: 3/10 frames") and "ETA" in lines[-1]


def test_progress_bar_on_a_terminal_counts_frames():
    with FileProgress("clip.mp4", 5, tty=True) as progress:
        for _ in range(5):
            progress.advance()
    assert progress.done == 5


def test_dashboard_tables_show_sources_and_stages():
    snapshot = {"sources": [{"source": "cam1", "fps": 12.5, "frames": 100, "dropped": 7, "reconnects": 1,
                             "latency_p50_ms": 120.0, "latency_p95_ms": 180.0}],
                "stages": [{"stage": "inference", "workers": 2, "items": 100, "busy_pct": 93.0,
                            "mean_ms": 150.0, "queue": 1, "queue_capacity": 2, "queue_peak": 2}]}
    console = Console(record=True, width=120)
    console.print(tables(snapshot))
    text = console.export_text()
    for word in ("cam1", "12.5", "180", "inference", "93", "1/2"):
        assert word in text


# -- the final summary on stdout: tables on a terminal, plain lines in a pipe or a file

BOX = set("┏┓┗┛┃│━─┡┩└┘┌┐")
SNAPSHOT = {
    "sources": [{"source": "cam1", "state": "stopped", "fps": 12.5, "frames": 100, "dropped": 7,
                 "rate_dropped": 3, "reconnects": 1, "reconnect_attempts": 2,
                 "latency_p50_ms": 120.0, "latency_p95_ms": 180.0, "last_error": "[timeout]"}],
    "mqtt": {"broker": "mqtt://127.0.0.1:1883/posestream", "state": "connected",
             "unacknowledged": 0, "dropped": 0, "seconds_without_answer": None},
    "stages": [{"stage": "inference", "workers": 2, "items": 100, "busy_pct": 93.0,
                "mean_ms": 150.0, "queue": 1, "queue_capacity": 2, "queue_peak": 2},
               {"stage": "write", "workers": 1, "items": 100, "busy_pct": 4.0,
                "mean_ms": 1.5, "queue": 0, "queue_capacity": 4, "queue_peak": 3}]}


def test_the_final_summary_is_plain_lines_when_stdout_is_not_a_terminal(capsys):
    print_summary(SNAPSHOT)  # pytest's captured stdout is no terminal
    out = capsys.readouterr().out
    assert not BOX & set(out), out
    assert out.splitlines() == [
        "cam1: stopped, 12.5 FPS, 100 frames, 7 +3 rate dropped, reconnects 1/2 "
        "(successes/attempts), latency p50 120 ms p95 180 ms; last error: [timeout]",
        "mqtt mqtt://127.0.0.1:1883/posestream: connected, 0 unacknowledged, 0 dropped",
        "stage inference: 2 workers, 100 items, 93% busy, 150.0 ms mean, queue 1/2 (peak 2)",
        "stage write: 1 worker, 100 items, 4% busy, 1.5 ms mean, queue 0/4 (peak 3)"]


def test_the_final_summary_is_tables_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    print_summary(SNAPSHOT)
    out = capsys.readouterr().out
    assert BOX & set(out) and "stages" in out and "inference" in out and "cam1" in out
    assert "stage inference:" not in out


@pytest.mark.parametrize("tty", [True, False])
def test_the_caller_may_say_whether_to_draw_tables(capsys, tty):
    print_summary({"stages": SNAPSHOT["stages"]}, tty=tty)
    out = capsys.readouterr().out
    assert bool(BOX & set(out)) is tty
    assert ("stage write: 1 worker," in out) is not tty
