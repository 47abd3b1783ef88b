"""What a person watching the terminal sees: progress, live tables, summaries.

On a terminal: a rich progress bar (files) or a live table per source and
per stage (live runs). Otherwise (a log file, a service): one plain line every
``interval`` seconds. Nothing here changes what is processed.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.live import Live
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

log = logging.getLogger(__name__)


class FileProgress:
    """Frames done of one file, with FPS and ETA.

    Args:
        label: What is processed (the file name).
        total: Frames expected, if known.
        tty: Draw a bar (default: whether stderr is a terminal).
        interval: Seconds between plain lines when not drawing a bar.
    """

    def __init__(self, label: str, total: int | None, *, tty: bool | None = None,
                 interval: float = 10.0) -> None:
        self.label = label
        self.total = total or None
        self.done = 0
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.interval = interval
        self._start = self._last = time.monotonic()
        self._bar: Progress | None = None

    def __enter__(self) -> FileProgress:
        if self.tty:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[fps]:.1f} FPS"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, fps=0.0)
        return self

    def advance(self, _result: Any = None) -> None:
        """Count one frame done."""
        self.done += 1
        now = time.monotonic()
        fps = self.done / max(now - self._start, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, fps=fps)
        elif now - self._last >= self.interval:
            self._last = now
            eta = f", ETA {(self.total - self.done) / fps:.0f} s" if self.total and fps else ""
            of = f"/{self.total}" if self.total else ""
            log.info("%s: %d%s frames, %.1f FPS%s", self.label, self.done, of, fps, eta)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()


class LiveDashboard:
    """Per-source and per-stage figures of a live run, refreshed about once a second.

    Args:
        snapshot: Returns the rows to show: ``{"sources": [...], "stages": [...]}``
            as produced by ``live_snapshot``.
        tty: Draw a table (default: whether stderr is a terminal).
        interval: Seconds between plain lines when not drawing.
    """

    def __init__(self, snapshot: Callable[[], dict], *, tty: bool | None = None,
                 interval: float = 60.0) -> None:
        self.snapshot = snapshot
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.interval = interval
        self._stop = threading.Event()
        self._live: Live | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LiveDashboard:
        if self.tty:
            self._live = Live(get_renderable=lambda: tables(self.snapshot()), console=Console(stderr=True),
                              refresh_per_second=1, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        else:
            self._thread = threading.Thread(target=self._lines, name="dashboard", daemon=True)
            self._thread.start()
        return self

    def _lines(self) -> None:
        while not self._stop.wait(self.interval):
            for row in self.snapshot()["sources"]:
                log.info("%s: %.1f FPS, %d frames, %d dropped, %d reconnects, latency p50 %.0f ms "
                         "p95 %.0f ms", row["source"], row["fps"], row["frames"], row["dropped"],
                         row["reconnects"], row["latency_p50_ms"], row["latency_p95_ms"])

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
        if self._thread is not None:
            self._thread.join(5)


def stage_rows(statistics, elapsed: float) -> list[dict]:
    """Per stage: items, busy % (of its workers' time), mean ms, and its output queue."""
    queues = {c.name: c for c in statistics.channels}
    rows = []
    for st in statistics.stages:
        q = queues.get(f"{st.name}.out")
        rows.append({"stage": st.name, "workers": st.workers, "items": st.items,
                     "busy_pct": round(100 * st.busy_seconds / max(elapsed * st.workers, 1e-9), 1),
                     "mean_ms": round(1000 * st.mean_seconds, 2),
                     "queue": q.size if q else 0, "queue_capacity": q.capacity if q else 0,
                     "queue_peak": q.peak if q else 0, "dropped": q.dropped if q else 0})
    return rows


def tables(snapshot: dict) -> Table:
    """The dashboard: one table of sources (if any) above one of stages."""
    grid = Table.grid()
    if snapshot.get("sources"):
        src = Table(title="sources", title_justify="left")
        for col in ("source", "FPS", "frames", "dropped", "reconnects", "p50 ms", "p95 ms"):
            src.add_column(col, justify="left" if col == "source" else "right")
        for r in snapshot["sources"]:
            src.add_row(r["source"], f"{r['fps']:.1f}", str(r["frames"]), str(r["dropped"]),
                        str(r["reconnects"]), f"{r['latency_p50_ms']:.0f}", f"{r['latency_p95_ms']:.0f}")
        grid.add_row(src)
    stg = Table(title="stages", title_justify="left")
    for col in ("stage", "workers", "items", "busy %", "mean ms", "queue", "peak"):
        stg.add_column(col, justify="left" if col == "stage" else "right")
    for r in snapshot.get("stages", []):
        stg.add_row(r["stage"], str(r["workers"]), str(r["items"]), f"{r['busy_pct']:.0f}",
                    f"{r['mean_ms']:.1f}", f"{r['queue']}/{r['queue_capacity']}", str(r["queue_peak"]))
    grid.add_row(stg)
    return grid


def print_summary(snapshot: dict) -> None:
    """The final table, on stdout (never cut narrower than its content when redirected)."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(tables(snapshot))


def write_summary_json(path: Path, summary: dict) -> None:
    """Write the run's summary as JSON (atomically).

    Raises:
        OutputError: The file cannot be written (one line naming it).
    """
    from stages.atomic import commit, partial_path, remove_quietly
    from stages.errors import OutputError

    path = Path(path)
    tmp = partial_path(path)
    try:
        tmp.write_text(json.dumps(summary, indent=2, default=_jsonable) + "\n")
        commit(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise OutputError(f"{path}: cannot write the summary ({exc.strerror or exc})") from None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class BatchProgress:
    """Files and frames of a batch: a bar on a terminal, plain lines otherwise.

    Args:
        files: Files to process.
        tty: Draw bars (default: whether stderr is a terminal).
    """

    def __init__(self, files: int, *, tty: bool | None = None) -> None:
        self.files = files
        self.files_done = 0
        self.frames = 0
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._bar: Progress | None = None

    def __enter__(self) -> BatchProgress:
        if self.tty:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._bar.start()
            self._files = self._bar.add_task("files", total=self.files)
            self._frames = self._bar.add_task("frames", total=None)
        return self

    def frame_done(self, result: Any = None) -> None:
        """Count one frame written."""
        self.frames += 1
        if self._bar is not None:
            self._bar.update(self._frames, completed=self.frames,
                             description=f"frames ({result.frame.source})" if result is not None else "frames")

    def file_done(self, report: dict) -> None:
        """Count one file finished (or failed)."""
        self.files_done += 1
        if self._bar is not None:
            self._bar.update(self._files, completed=self.files_done)
        else:
            log.info("[%d/%d] %s: %s", self.files_done, self.files, report["input"], report["status"])

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def print_batch_table(rows: list[dict]) -> None:
    """One line per input: status, frames, mean people per frame, FPS, error."""
    table = Table(title="batch", title_justify="left")
    for col in ("input", "status", "frames", "people/frame", "FPS", "error"):
        table.add_column(col, justify="right" if col in ("frames", "people/frame", "FPS") else "left")
    for r in rows:
        table.add_row(r["input"], r["status"], str(r["frames"]), f"{r['mean_people']:.2f}",
                      f"{r['fps']:.1f}", r["error"])
    Console(width=max(100, Console().width)).print(table)
