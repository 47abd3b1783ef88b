"""What a person watching the terminal sees: progress, live tables, summaries.

On a terminal: a rich progress bar (files) or a live table per source and
per stage (live runs, ``stages.display.dashboard``). Otherwise (a log file, a
service): one plain line every ``interval`` seconds. The final summary on
stdout is the same: box tables on a terminal, plain lines when stdout is a
pipe or a file. Nothing here changes what is processed.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, TextIO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from stages.display.dashboard import plain_lines, tables

if TYPE_CHECKING:
    from stages.settings import JobConfig
    from stages.sources.inputs import BatchItem

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


def print_summary(snapshot: dict, *, tty: bool | None = None) -> None:
    """The final figures on stdout: tables on a terminal, else plain lines (a line per
    source, MQTT broker and stage: ``stages.display.dashboard.plain_lines``).

    Args:
        snapshot: ``{"sources": [...], "stages": [...]}``, as the dashboard reads it.
        tty: Draw tables (default: whether stdout is a terminal).
    """
    if not _stdout_is_terminal(tty):
        _print_lines(plain_lines(snapshot))
        return
    Console().print(tables(snapshot))


def _stdout_is_terminal(tty: bool | None) -> bool:
    if tty is not None:
        return tty
    try:
        return sys.stdout.isatty()
    except ValueError:  # closed
        return False


def _print_lines(lines: Iterable[str]) -> None:
    """Write ``lines`` to stdout as they are (no markup, no wrapping)."""
    text = "".join(f"{line}\n" for line in lines)
    if text:
        sys.stdout.write(text)


def write_summary_json(path: Path, summary: dict) -> None:
    """Write the run's summary as JSON, as what is at ``path`` asks
    (``stages.outputs.target``): a file atomically, a link's target, a FIFO or
    device in place.

    Raises:
        OutputError: The file cannot be written (one line naming it).
    """
    from stages.outputs.target import write_whole

    text = json.dumps(summary, indent=2, default=_jsonable) + "\n"
    write_whole(path, text.encode("utf-8"), what="the summary")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class BatchProgress:
    """Files and frames of a whole batch, with FPS and ETA: bars on a terminal,
    otherwise one plain line on stderr every ``interval`` seconds (no ``-v``
    needed; a line is due when a frame or file finishes, and a timer thread
    catches the case where none does for a while).

    The frames expected are the inputs' declared frame counts
    (``stages.sources.probe.expected_frames``). An input whose count is unknown leaves
    the frame total unknown until it finishes; the ETA then comes from the
    files. When an input finishes, its expected count is replaced by the
    frames it really had, so done and total meet at the end. Inputs settled
    before the run (``settled``: skipped as complete, or failed at planning)
    count as done at once, frames included, and do not enter the FPS.

    Args:
        total_files: Inputs in the batch, skipped ones included.
        total_frames: Frames of the whole batch: the expected count per input
            key (None where unknown), a plain count, or None (unknown).
        settled: Reports (``FileReport.as_dict()``) of inputs settled before the run.
        tty: Draw bars (default: whether stderr is a terminal).
        interval: Seconds between plain lines when not drawing bars.
        clock: Monotonic seconds (tests pass a fake one).
        stream: Where plain lines go (default: ``sys.stderr``).
    """

    def __init__(self, total_files: int, total_frames: Mapping[str, int | None] | int | None = None,
                 *, settled: Iterable[dict] = (), tty: bool | None = None, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, stream: TextIO | None = None) -> None:
        self.total_files = total_files
        self.files_done = 0
        self.frames = 0  # done, settled inputs included
        self.run_frames = 0  # processed by this run: what the FPS counts
        self.run_files = 0
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.interval = interval
        self._clock = clock
        self._stream = stream
        self._lock = threading.Lock()
        self._expected: dict[str, int | None] = {}
        self._known = 0  # expected frames of unsettled inputs with a count, plus settled inputs' frames
        self._unknown = 0  # unsettled inputs without a count
        if isinstance(total_frames, Mapping):
            self._expected = dict(total_frames)
            self._known = sum(n for n in self._expected.values() if n is not None)
            self._unknown = sum(n is None for n in self._expected.values())
        elif total_frames is None:
            self._unknown = 1  # never settles: the total stays unknown
        else:
            self._known = total_frames
        self._seen: dict[str, int] = {}  # frames so far of inputs in flight
        self._settled: set[str] = set()
        self._owed: dict[str, int] = {}
        self._start = self._last = clock()
        self._bar: Progress | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        for report in settled:
            self._settle(report, ran=False)

    # -- figures --------------------------------------------------------
    @property
    def total_frames(self) -> int | None:
        """Frames of the whole batch, if every unsettled input's count is known."""
        return None if self._unknown else max(self._known, self.frames)

    @property
    def elapsed(self) -> float:
        """Seconds since the progress began."""
        return max(self._clock() - self._start, 0.0)

    @property
    def fps(self) -> float:
        """Frames processed by this run per second."""
        return self.run_frames / max(self.elapsed, 1e-9)

    @property
    def eta(self) -> float | None:
        """Seconds left: from the frames when their total is known, else from the files."""
        total, fps = self.total_frames, self.fps
        if self.files_done >= self.total_files:
            return 0.0
        if total is not None and fps > 0:
            return max(total - self.frames, 0) / fps
        if self.run_files:
            return self.elapsed / self.run_files * (self.total_files - self.files_done)
        return None

    def line(self) -> str:
        """The plain progress line: files, frames, FPS, ETA."""
        total, eta = self.total_frames, self.eta
        of = f"/{total}" if total is not None else " (total unknown)"
        return (f"batch: {self.files_done}/{self.total_files} files, {self.frames}{of} frames, "
                f"{self.fps:.1f} FPS, ETA {_clock_time(eta) if eta is not None else 'unknown'}")

    # -- events ---------------------------------------------------------
    def __enter__(self) -> BatchProgress:
        if self.tty:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=True)
            self._bar.start()
            self._files = self._bar.add_task("files", total=self.total_files, note="")
            self._frames = self._bar.add_task("frames", total=None, note="")
            self._draw()
        else:
            self._timer = threading.Thread(target=self._tick_every_interval, name="batch-progress",
                                           daemon=True)
            self._timer.start()
        return self

    def frame_done(self, result: Any = None) -> None:
        """Count one frame written (``result.frame.source`` is its input's key)."""
        key = result.frame.source if result is not None else None
        with self._lock:
            if self._owed.get(key):  # its input finished first and counted it already
                self._owed[key] -= 1
                return
            self.run_frames += 1
            if key in self._settled:  # the rest of a failed input: processed, not expected
                return
            self.frames += 1
            self._seen[key] = self._seen.get(key, 0) + 1
        self._show()

    def file_done(self, report: dict) -> None:
        """Count one input finished (or failed) by this run; ``report`` as ``FileReport.as_dict()``."""
        with self._lock:
            self._settle(report, ran=True)
        if self._bar is None:
            log.info("[%d/%d] %s: %s", self.files_done, self.total_files, report["input"], report["status"])
        self._show()

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._bar is not None:
            self._bar.stop()
        if self._timer is not None:
            self._timer.join(5)

    # -- inside ---------------------------------------------------------
    def _settle(self, report: dict, *, ran: bool) -> None:
        key = report["input"]
        if key in self._settled:
            return
        self._settled.add(key)
        seen = self._seen.pop(key, 0)
        extra = max((report.get("frames") or 0) - seen, 0)  # frames not seen one by one (cluster, skipped)
        self.frames += extra
        self.files_done += 1
        if ran:
            self.run_files += 1
            self.run_frames += extra
            self._owed[key] = extra  # frames whose frame_done may still come (it follows the write)
        if key in self._expected:
            expected = self._expected.pop(key)
            if expected is None:
                self._unknown -= 1
            else:
                self._known -= expected
        self._known += seen + extra

    def _show(self) -> None:
        if self._bar is not None:
            self._draw()
        else:
            self._tick()

    def _draw(self) -> None:
        eta = self.eta
        note = f"{self.fps:.1f} FPS  ETA {_clock_time(eta) if eta is not None else '?'}"
        self._bar.update(self._files, completed=self.files_done)
        self._bar.update(self._frames, completed=self.frames, total=self.total_frames, note=note)

    def _tick(self) -> None:
        with self._lock:  # held while writing, so lines never come out of order
            now = self._clock()
            if now - self._last < self.interval:
                return
            self._last = now
            stream = self._stream or sys.stderr
            stream.write(self.line() + "\n")
            stream.flush()

    def _tick_every_interval(self) -> None:
        while not self._stop.wait(max(self.interval, 1.0)):
            self._tick()


class InputReport(Protocol):
    """What ``batch_progress`` reads of one input's report (``stages.jobs.batch.FileReport``)."""

    status: str
    frames: int

    def as_dict(self) -> dict: ...


def batch_progress(items: list[BatchItem], reports: Mapping[str, InputReport], config: JobConfig, *,
                   tty: bool | None = None, interval: float = 30.0,
                   clock: Callable[[], float] = time.monotonic, stream: TextIO | None = None
                   ) -> BatchProgress:
    """The progress of a whole batch (``BatchProgress``, which explains the
    keywords): the frames each input should give (a settled input's own
    count, else what its container declares, under the config's stride and
    range), with the inputs the batch's plan settled (``stages.jobs.batch.plan_batch``)
    counted done at once.

    Args:
        items: The batch's inputs.
        reports: Their reports by key, as the batch job planned them (``BatchJob.reports``).
        config: The run's settings (stride and time range).
    """
    from stages.sources.probe import expected_frames

    expected = {}
    for item in items:
        report = reports.get(item.key)
        if report is not None and report.status != "pending":
            expected[item.key] = report.frames
        else:
            expected[item.key] = expected_frames(item.path, frame_step=config.frame_step,
                                                 start=config.start, end=config.end)
    settled = [r.as_dict() for r in reports.values() if r.status != "pending"]
    return BatchProgress(len(items), expected, settled=settled, tty=tty, interval=interval,
                         clock=clock, stream=stream)


def _clock_time(seconds: float) -> str:
    """``h:mm:ss``."""
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


STATUSES = ("done", "skipped", "failed", "interrupted", "pending")


def batch_totals(rows: list[dict], seconds: float) -> dict:
    """What a batch's rows add up to.

    Args:
        rows: One ``FileReport.as_dict()`` per input (skipped ones included).
        seconds: Wall time of this run.

    Returns:
        ``files`` and a count per status (``done``, ``skipped``, ``failed``,
        ``interrupted``, ``pending`` = never started, e.g. after a stop), which
        add up to ``files``; ``frames`` (the sum of the rows' frames);
        ``people_per_frame`` over the rows whose people are known (absent when
        none is); ``seconds`` (this run's wall time) and ``fps`` (frames this
        run processed, i.e. of rows not skipped less those resumed from a
        checkpoint, per second of it).
    """
    totals: dict[str, Any] = {"files": len(rows), **{status: 0 for status in STATUSES}}
    for r in rows:
        totals[r["status"]] = totals.get(r["status"], 0) + 1
    totals["frames"] = sum(r["frames"] for r in rows)
    known = [r for r in rows if r.get("people") is not None]
    counted = sum(r["frames"] for r in known)
    if counted:
        totals["people_per_frame"] = round(sum(r["people"] for r in known) / counted, 3)
    ran = sum(r.get("frames_processed", r["frames"]) for r in rows if r["status"] != "skipped")
    totals["seconds"] = round(seconds, 3)
    totals["fps"] = round(ran / seconds, 2) if seconds > 0 else 0.0
    return totals


def batch_summary(rows: list[dict], seconds: float) -> dict:
    """``batch-summary.json``: ``{"files": rows, "totals": batch_totals(rows, seconds)}``."""
    return {"files": rows, "totals": batch_totals(rows, seconds)}


def print_batch_table(rows: list[dict], totals: dict | None = None, *,
                      tty: bool | None = None) -> None:
    """One line per input (status, frames, mean people per frame, FPS, error),
    then a totals row when ``totals`` (``batch_totals``) is given: a table on a
    terminal, plain lines otherwise (``batch_lines``; ``tty`` as ``print_summary``).
    Figures not known (inputs completed by a version that did not record them)
    show as -."""
    if not _stdout_is_terminal(tty):
        _print_lines(batch_lines(rows, totals))
        return
    table = Table(title="batch", title_justify="left")
    for col in ("input", "status", "frames", "people/frame", "FPS", "error"):
        table.add_column(col, justify="right" if col in ("frames", "people/frame", "FPS") else "left")
    for r in rows:
        table.add_row(r["input"], r["status"], str(r["frames"]), _figure(r.get("mean_people"), 2),
                      _figure(r.get("fps"), 1), r["error"])
    if totals is not None:
        table.add_section()
        counts = ", ".join(f"{totals[s]} {s}" for s in STATUSES if totals.get(s))
        table.add_row(f"total: {totals['files']} files", counts or "-", str(totals["frames"]),
                      _figure(totals.get("people_per_frame"), 2),
                      _figure(totals.get("fps"), 1), f"{totals['seconds']:.1f} s wall time")
    Console(width=max(100, Console().width)).print(table)


def batch_lines(rows: list[dict], totals: dict | None = None) -> list[str]:
    """``print_batch_table`` as plain lines: one per input, then the totals."""
    lines = []
    for r in rows:
        line = (f"{r['input']}: {r['status']}, {r['frames']} frames, "
                f"{_figure(r.get('mean_people'), 2)} people/frame, {_figure(r.get('fps'), 1)} FPS")
        lines.append(line + (f"; error: {r['error']}" if r.get("error") else ""))
    if totals is not None:
        counts = ", ".join(f"{totals[s]} {s}" for s in STATUSES if totals.get(s))
        lines.append(f"total: {totals['files']} files: {counts or '-'}, {totals['frames']} frames, "
                     f"{_figure(totals.get('people_per_frame'), 2)} people/frame, "
                     f"{_figure(totals.get('fps'), 1)} FPS, {totals['seconds']:.1f} s wall time")
    return lines


def _figure(value: float | None, places: int) -> str:
    return "-" if value is None else f"{value:.{places}f}"
