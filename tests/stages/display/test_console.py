import logging

from rich.console import Console

from stages.display.console import FileProgress, tables


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
