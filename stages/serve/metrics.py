"""``/metrics``: a live run's figures in the Prometheus text format.

A custom collector reads the sources' monitors and the pipeline's stage
figures at each scrape (nothing is counted twice, nothing is kept in the
library's global registry). Every series is labelled by the source's or
the stage's name only, never by a URL, so no credential can reach a label.

Series (``posestream_`` prefix):

==========================================  =========  ===================================
name                                        type       labels
==========================================  =========  ===================================
``frames_total``                            counter    source: frames processed and written
``dropped_frames_total``                    counter    source, reason (``queue``: the
                                                       pipeline was behind; ``rate``:
                                                       over ``--max-fps``)
``reconnect_attempts_total``                counter    source: every retry
``reconnects_total``                        counter    source: retries that got a picture
``source_state``                            gauge      source, state: 1 for the current
                                                       state, 0 for the others
``source_fps``                              gauge      source: frames per second, last 10 s
``seconds_since_last_frame``                gauge      source (absent once given up)
``latency_seconds``                         histogram  source: capture to written
``stage_busy_seconds_total``                counter    stage: time inside the stage
``stage_items_total``                       counter    stage
``events_clients``                          gauge      ``/events`` clients connected
``events_dropped_total``                    counter    records ``/events`` clients were
                                                       too slow to take
``mqtt_state``                              gauge      state (``--mqtt`` only): 1 for the
                                                       broker connection's state
                                                       (connecting, connected, no
                                                       answer, down), 0 for the others
``mqtt_seconds_without_answer``             gauge      how long the broker has left an
                                                       open connection or a message
                                                       unanswered (0: nothing awaited)
``mqtt_unacknowledged_messages``            gauge      messages the broker has not
                                                       acknowledged
``mqtt_dropped_total``                      counter    records dropped on a full queue
==========================================  =========  ===================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from stages.publish.monitor import STATES, SourceMonitor
from stages.publish.mqtt import STATES as MQTT_STATES

CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "posestream_"


class LiveCollector:
    """Collects a live run's series at each scrape (a ``prometheus_client`` collector).

    Args:
        monitors: The sources' monitors, by name.
        snapshot: The run's figures (``LiveJob.snapshot``): per-source rows
            and per-stage rows with ``busy_seconds``.
        events: (clients connected, records dropped) of ``/events``, or None.
    """

    def __init__(self, monitors: Mapping[str, SourceMonitor], snapshot: Callable[[], dict],
                 events: Callable[[], tuple[int, int]] | None = None) -> None:
        self.monitors = monitors
        self.snapshot = snapshot
        self.events = events

    def collect(self) -> Iterator[Metric]:
        """Every series, read now."""
        snap = self.snapshot()
        yield from self._sources(snap["sources"])
        yield self._latency()
        yield from self._stages(snap["stages"])
        if snap.get("mqtt") is not None:
            yield from _mqtt(snap["mqtt"])
        if self.events is not None:
            clients, dropped = self.events()
            yield GaugeMetricFamily(PREFIX + "events_clients", "/events clients connected",
                                    value=clients)
            yield CounterMetricFamily(PREFIX + "events_dropped",
                                      "records /events clients were too slow to take",
                                      value=dropped)

    def _sources(self, rows: list[dict]) -> Iterator[Metric]:
        frames = _counter("frames", "frames processed and written", ["source"])
        dropped = _counter("dropped_frames", "frames dropped: queue (pipeline behind) or "
                           "rate (over --max-fps)", ["source", "reason"])
        attempts = _counter("reconnect_attempts", "reconnect attempts", ["source"])
        reconnects = _counter("reconnects", "reconnects that delivered a picture", ["source"])
        state = GaugeMetricFamily(PREFIX + "source_state", "1 for the source's current state",
                                  labels=["source", "state"])
        fps = GaugeMetricFamily(PREFIX + "source_fps", "frames processed per second, last 10 s",
                                labels=["source"])
        age = GaugeMetricFamily(PREFIX + "seconds_since_last_frame", "seconds since the last "
                                "processed frame (since the start before the first)",
                                labels=["source"])
        for row in rows:
            name = row["source"]
            frames.add_metric([name], row["frames"])
            dropped.add_metric([name, "queue"], row["dropped"])
            dropped.add_metric([name, "rate"], row["rate_dropped"])
            attempts.add_metric([name], row["reconnect_attempts"])
            reconnects.add_metric([name], row["reconnects"])
            for each in STATES:
                state.add_metric([name, each], 1.0 if each == row["state"] else 0.0)
            fps.add_metric([name], row["fps"])
            stalled = self.monitors[name].stalled_for()
            if stalled is not None:
                age.add_metric([name], stalled)
        yield from (frames, dropped, attempts, reconnects, state, fps, age)

    def _latency(self) -> Metric:
        family = HistogramMetricFamily(PREFIX + "latency_seconds",
                                       "capture to written, per processed frame",
                                       labels=["source"])
        for name, monitor in self.monitors.items():
            buckets, total = monitor.histogram()
            family.add_metric([name], [(_bound(le), count) for le, count in buckets], total)
        return family

    def _stages(self, rows: list[dict]) -> Iterator[Metric]:
        busy = _counter("stage_busy_seconds", "seconds spent inside the stage, all its workers",
                        ["stage"])
        items = _counter("stage_items", "items the stage finished", ["stage"])
        for row in rows:
            busy.add_metric([row["stage"]], row["busy_seconds"])
            items.add_metric([row["stage"]], row["items"])
        yield from (busy, items)


def _mqtt(status: dict) -> Iterator[Metric]:
    """The broker connection's series (``MqttPublisher.status``)."""
    state = GaugeMetricFamily(PREFIX + "mqtt_state", "1 for the MQTT broker connection's state",
                              labels=["state"])
    for each in MQTT_STATES:
        state.add_metric([each], 1.0 if each == status["state"] else 0.0)
    yield state
    yield GaugeMetricFamily(PREFIX + "mqtt_seconds_without_answer",
                            "seconds the MQTT broker has left a connection or a message "
                            "unanswered (0: nothing awaited)",
                            value=status["seconds_without_answer"] or 0.0)
    yield GaugeMetricFamily(PREFIX + "mqtt_unacknowledged_messages",
                            "messages the MQTT broker has not acknowledged",
                            value=status["unacknowledged"])
    yield CounterMetricFamily(PREFIX + "mqtt_dropped", "records dropped because the MQTT queue "
                              "was full", value=status["dropped"])


def exposition(collector: LiveCollector) -> bytes:
    """The collector's series in the text format (``CONTENT_TYPE``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)


def _counter(name: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, documentation, labels=labels)


def _bound(le: float) -> str:
    return "+Inf" if le == float("inf") else repr(float(le))
