"""Live keypoints for other programs: one record per processed frame, fanned out.

``LiveFeed.publish`` is the last step of a live pipeline (``Result ->
Result``, after the segment writer). It turns each frame's result into one
record, serialises it once, and offers the line to every consumer: the
append-only ``OUT/<source>/live.jsonl`` (``stages.recording.live_log``), the
Server-Sent Events clients of the status server (``/events``) and MQTT
(``stages.publish.mqtt``). A consumer's ``offer`` must never block: each keeps its
own bounded buffer and thread, so a slow or stuck consumer loses records
(and counts them) while the pipeline and the other consumers go on.

A record is a keypoint-log line (``stages.outputs.keypoint_log``) with the source's
name and the capture time added::

    {"source": "cam1", "frame": 12, "pts": 0.48, "width": 1280, "height": 720,
     "wall": 1764700000.123, "people": [{"score": 1.21, "keypoints": [[x, y, c], ...], "id": 3}]}
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from typing import Protocol

from stages.frames import Result
from stages.outputs.keypoint_log import keypoint_record

log = logging.getLogger(__name__)


def live_record(result: Result) -> dict:
    """The record of one processed live frame (see the module docstring)."""
    record = {"source": result.frame.source, **keypoint_record(result)}
    record["wall"] = round(result.frame.wall, 3)
    return record


def record_line(record: dict) -> bytes:
    """The record as one compact JSON line, newline included."""
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


class Consumer(Protocol):
    """Something that takes live records without ever blocking the pipeline."""

    def offer(self, source: str, line: bytes, record: dict) -> None:
        """Take one record (``line`` is its JSON line); must return at once."""

    def close(self) -> None:
        """Deliver what is buffered if it can, then stop."""


class LiveFeed:
    """Fans each processed frame's record out to the consumers.

    Attributes:
        published: Records published so far, per source.
    """

    def __init__(self) -> None:
        self._consumers: list[Consumer] = []
        self._lock = threading.Lock()
        self.published: Counter[str] = Counter()

    def subscribe(self, consumer: Consumer) -> Consumer:
        """Add ``consumer``; it gets every record published from now on."""
        with self._lock:
            self._consumers.append(consumer)
        return consumer

    def unsubscribe(self, consumer: Consumer) -> None:
        """Remove ``consumer`` (not closed here)."""
        with self._lock:
            if consumer in self._consumers:
                self._consumers.remove(consumer)

    def publish(self, result: Result) -> Result:
        """Offer ``result``'s record to every consumer; return ``result``."""
        with self._lock:
            consumers = list(self._consumers)
            self.published[result.frame.source] += 1
        if consumers:
            record = live_record(result)
            line = record_line(record)
            for consumer in consumers:
                try:
                    consumer.offer(result.frame.source, line, record)
                except Exception:  # one consumer's bug never stops the pipeline
                    log.exception("live feed: %r failed", consumer)
        return result

    def close(self) -> None:
        """Close every consumer (each delivers what it buffered if it can)."""
        with self._lock:
            consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            try:
                consumer.close()
            except Exception:
                log.exception("live feed: closing %r failed", consumer)
