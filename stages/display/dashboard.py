"""The live run's dashboard: a table per source and per stage, or plain lines.

Per source: state (connecting, live, reconnecting, given up, stopped), FPS
over the last 10 s, frames, drops (queue drops, and ``+N rate`` for frames
over ``--max-fps``), reconnects as ``successes/attempts``, latency p50/p95
(capture to written) and the last error (credentials masked by the source),
all read from ``stages.publish.monitor.SourceMonitor`` rows. With ``--mqtt``,
one more row: the broker (credentials masked), its connection's state
(connecting, connected, no answer, down), the messages it has not
acknowledged, the records dropped and how long it has left an answer due.

On a terminal the table is a rich ``Live`` display at the bottom of the
screen. While it is up, the root logger's stream handlers on stderr are
swapped for one that prints through the display's console, so every log
line appears above the table instead of under it or overwritten by it; the
handlers come back when the display stops. Without a terminal, one line per
source every ``interval`` seconds carries the same figures.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Callable

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

log = logging.getLogger(__name__)

ERROR_WIDTH = 48  # characters of the last error shown in the table
_STATE_STYLES = {"live": "green", "connecting": "yellow", "reconnecting": "yellow",
                 "given up": "bold red", "stopped": "dim"}
_MQTT_STYLES = {"connected": "green", "connecting": "yellow", "no answer": "bold red",
                "down": "bold red"}


class LiveDashboard:
    """Per-source and per-stage figures of a live run, refreshed about once a second.

    Args:
        snapshot: Returns the rows to show: ``{"sources": [...], "stages": [...]}``
            as ``LiveJob.snapshot`` makes them.
        tty: Draw a table (default: whether stderr is a terminal).
        interval: Seconds between plain lines when not drawing.
        console: Where to draw (default: a console on stderr).
    """

    def __init__(self, snapshot: Callable[[], dict], *, tty: bool | None = None,
                 interval: float = 60.0, console: Console | None = None) -> None:
        self.snapshot = snapshot
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.interval = interval
        self._console = console
        self._stop = threading.Event()
        self._live: Live | None = None
        self._thread: threading.Thread | None = None
        self._swapped: list[tuple[logging.Handler, logging.Handler]] = []

    def __enter__(self) -> LiveDashboard:
        if self.tty:
            self._live = Live(get_renderable=lambda: tables(self.snapshot()),
                              console=self._console or Console(stderr=True),
                              refresh_per_second=1, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
            self._swapped = route_logs(self._live.console)
        else:
            self._thread = threading.Thread(target=self._lines, name="dashboard", daemon=True)
            self._thread.start()
        return self

    def _lines(self) -> None:
        while not self._stop.wait(self.interval):
            snapshot = self.snapshot()
            for row in snapshot["sources"]:
                log.info("%s", source_line(row))
            if snapshot.get("mqtt"):
                log.info("%s", mqtt_line(snapshot["mqtt"]))

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
            restore_logs(self._swapped)
            self._swapped = []
        if self._thread is not None:
            self._thread.join(5)


class ConsoleLogHandler(logging.Handler):
    """Prints log records through a rich console, above its live display.

    Args:
        console: The live display's console.
        replaced: The handler it stands in for: its level, formatter and
            filters (the credential filter among them) carry over.
    """

    def __init__(self, console: Console, replaced: logging.Handler) -> None:
        super().__init__(replaced.level)
        self.console = console
        self.setFormatter(replaced.formatter)
        for each in replaced.filters:
            self.addFilter(each)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(Text(self.format(record)), highlight=False)
        except Exception:  # noqa: BLE001 - as logging.StreamHandler does
            self.handleError(record)


def route_logs(console: Console) -> list[tuple[logging.Handler, logging.Handler]]:
    """Swap the root logger's stderr stream handlers for ones printing through ``console``.

    Returns:
        (original, stand-in) pairs, for ``restore_logs``.
    """
    root = logging.getLogger()
    swapped = []
    for handler in list(root.handlers):
        if (type(handler) is logging.StreamHandler
                and handler.stream in (sys.stderr, sys.__stderr__)):
            stand_in = ConsoleLogHandler(console, handler)
            root.addHandler(stand_in)
            root.removeHandler(handler)
            swapped.append((handler, stand_in))
    return swapped


def restore_logs(swapped: list[tuple[logging.Handler, logging.Handler]]) -> None:
    """Put the handlers ``route_logs`` swapped back."""
    root = logging.getLogger()
    for handler, stand_in in swapped:
        root.addHandler(handler)
        root.removeHandler(stand_in)


def source_line(row: dict) -> str:
    """One source's figures as a plain line (the dashboard without a terminal)."""
    line = (f"{row['source']}: {row.get('state', '?')}, {row['fps']:.1f} FPS, {row['frames']} frames, "
            f"{_dropped(row)} dropped, reconnects {_reconnects(row)} (successes/attempts), "
            f"latency p50 {row['latency_p50_ms']:.0f} ms p95 {row['latency_p95_ms']:.0f} ms")
    if row.get("last_error"):
        line += f"; last error: {row['last_error']}"
    return line


def mqtt_line(status: dict) -> str:
    """The MQTT broker connection as a plain line (``MqttPublisher.status``)."""
    line = (f"mqtt {status['broker']}: {status['state']}, {status['unacknowledged']} "
            f"unacknowledged, {status['dropped']} dropped")
    if status.get("seconds_without_answer") is not None:
        line += f", no answer for {status['seconds_without_answer']:.0f} s"
    return line


def stage_line(row: dict) -> str:
    """One stage's figures as a plain line (the stages table without a terminal)."""
    workers = f"{row['workers']} worker{'s' if row['workers'] != 1 else ''}"
    return (f"stage {row['stage']}: {workers}, {row['items']} items, {row['busy_pct']:.0f}% busy, "
            f"{row['mean_ms']:.1f} ms mean, queue {row['queue']}/{row['queue_capacity']} "
            f"(peak {row['queue_peak']})")


def plain_lines(snapshot: dict) -> list[str]:
    """What ``tables`` shows, as plain lines: a line per source, the MQTT broker, each stage."""
    lines = [source_line(row) for row in snapshot.get("sources") or ()]
    if snapshot.get("mqtt"):
        lines.append(mqtt_line(snapshot["mqtt"]))
    return lines + [stage_line(row) for row in snapshot.get("stages", ())]


def tables(snapshot: dict) -> Table:
    """The dashboard: one table of sources (if any), the MQTT broker (if any), and stages."""
    grid = Table.grid()
    if snapshot.get("sources"):
        grid.add_row(_sources_table(snapshot["sources"]))
    if snapshot.get("mqtt"):
        grid.add_row(_mqtt_table(snapshot["mqtt"]))
    stg = Table(title="stages", title_justify="left")
    for col in ("stage", "workers", "items", "busy %", "mean ms", "queue", "peak"):
        stg.add_column(col, justify="left" if col == "stage" else "right")
    for r in snapshot.get("stages", []):
        stg.add_row(r["stage"], str(r["workers"]), str(r["items"]), f"{r['busy_pct']:.0f}",
                    f"{r['mean_ms']:.1f}", f"{r['queue']}/{r['queue_capacity']}", str(r["queue_peak"]))
    grid.add_row(stg)
    return grid


def _sources_table(rows: list[dict]) -> Table:
    src = Table(title="sources", title_justify="left")
    for col in ("source", "state", "FPS", "frames", "dropped", "reconnects", "p50 ms", "p95 ms"):
        src.add_column(col, justify="left" if col in ("source", "state") else "right",
                       no_wrap=True)
    src.add_column("last error", max_width=ERROR_WIDTH)  # the one column a narrow screen shrinks
    for r in rows:
        state = r.get("state", "")
        src.add_row(r["source"], Text(state, style=_STATE_STYLES.get(state, "")),
                    f"{r['fps']:.1f}", str(r["frames"]), _dropped(r), _reconnects(r),
                    f"{r['latency_p50_ms']:.0f}", f"{r['latency_p95_ms']:.0f}",
                    Text(r.get("last_error", ""), no_wrap=True, overflow="ellipsis"))
    return src


def _mqtt_table(status: dict) -> Table:
    table = Table(title="mqtt", title_justify="left")
    for col in ("broker", "state", "unacknowledged", "dropped", "no answer for"):
        table.add_column(col, justify="left" if col in ("broker", "state") else "right",
                         no_wrap=col != "broker")
    waiting = status.get("seconds_without_answer")
    state = status["state"]
    table.add_row(status["broker"], Text(state, style=_MQTT_STYLES.get(state, "")),
                  str(status["unacknowledged"]), str(status["dropped"]),
                  "" if waiting is None else f"{waiting:.0f} s")
    return table


def _dropped(row: dict) -> str:
    rate = row.get("rate_dropped", 0)
    return f"{row['dropped']} +{rate} rate" if rate else str(row["dropped"])


def _reconnects(row: dict) -> str:
    return f"{row['reconnects']}/{row.get('reconnect_attempts', row['reconnects'])}"
