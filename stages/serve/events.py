"""Server-Sent Events of the live keypoints: what ``/events`` sends to one client.

Each client is a ``LiveFeed`` consumer with its own bounded drop-oldest
queue (``EventClient``): the pipeline's ``offer`` never waits, a client
that reads slowly loses its oldest records (counted in ``dropped``) and the
other clients are untouched. ``send_events`` drains that queue onto the
client's socket on the client's own HTTP thread; a send that blocks longer
than the socket's timeout (a client that stopped reading) raises and ends
that thread.

Wire format (``text/event-stream``), one event per record::

    id: cam1:1234
    data: {"source":"cam1","frame":5012,"pts":200.48,"wall":1764700000.123,"people":[...]}

The id is the source's name and the record's number in this run's feed of
that source (1, 2, ...), so a client sees from a gap in the numbers how many
records it missed; ``frame`` in the record is the camera's frame number, as
in the segment logs. A comment line (``: keep-alive``) goes out after
``HEARTBEAT`` seconds without a record so that proxies keep the connection.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter

from pipeline import Cancelled, Channel, EndOfStream, Policy
from stages.serve.server import hung_up

EVENT_QUEUE = 256  # records held per client before its oldest is dropped
HEARTBEAT = 15.0  # seconds without a record before a keep-alive comment
_HANGUP_CHECK = 1.0  # seconds between checks that an idle client is still there
_SEND_BUFFER = 64 << 10  # bytes the kernel holds per client: a stuck client shows within its timeout
_BATCH = 64  # records written at once when a client is behind


class EventClient:
    """One ``/events`` client's queue; a ``LiveFeed`` consumer that never blocks.

    Args:
        published: The feed's per-source record counts (``LiveFeed.published``),
            already counting the record being offered: the events' ids.
        source: Only this source's records (None: every source).
        capacity: Records held before the oldest is dropped.
    """

    def __init__(self, published: Counter, source: str | None = None,
                 capacity: int = EVENT_QUEUE) -> None:
        self.source = source
        self._published = published
        self._lock = threading.Lock()
        self.dropped = 0
        self._channel: Channel[bytes] = Channel(capacity, policy=Policy.DROP_OLDEST,
                                                name="events client", on_drop=self._drop)

    def offer(self, source: str, line: bytes, record: dict) -> None:
        """Queue one record's event (the feed's call; returns at once)."""
        if self.source is not None and source != self.source:
            return
        event = b"id: %s:%d\ndata: %s\n\n" % (source.encode(), self._published[source],
                                              line.rstrip(b"\n"))
        try:
            self._channel.put(event)
        except (Cancelled, EndOfStream):
            pass  # this client is leaving

    def close(self) -> None:
        """End of the feed: the client gets what is queued, then the stream ends."""
        self._channel.close()

    def cancel(self) -> None:
        """Drop what is queued and end the stream now."""
        self._channel.cancel()

    def take(self, timeout: float) -> list[bytes]:
        """The next events, oldest first, waiting at most ``timeout`` seconds for one.

        Raises:
            EndOfStream: The feed closed and every event was taken.
            Cancelled: ``cancel`` was called.
            TimeoutError: Nothing came within ``timeout``.
        """
        events = [self._channel.get(timeout=timeout)]
        while len(events) < _BATCH:
            try:
                events.append(self._channel.get(timeout=0))
            except (TimeoutError, EndOfStream):
                break
        return events

    def _drop(self, _event: bytes) -> None:
        with self._lock:
            self.dropped += 1


def send_events(wfile, connection: socket.socket, client: EventClient, *,
                heartbeat: float = HEARTBEAT) -> None:
    """Send ``client``'s events on ``wfile`` until the feed ends or the client goes.

    The response's headers are already sent. While no record comes the
    socket is checked every ``_HANGUP_CHECK`` seconds, so a client that left
    frees its place.

    Raises:
        OSError: The client went away, or stopped reading for longer than the
            socket's timeout (``TimeoutError``).
        Cancelled: The server is closing.
    """
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
    wfile.write(b": posestream live keypoints\nretry: 2000\n\n")
    quiet_since = time.monotonic()
    while True:
        try:
            events = client.take(_HANGUP_CHECK)
        except EndOfStream:
            return
        except TimeoutError:
            if hung_up(connection):
                return
            if time.monotonic() - quiet_since >= heartbeat:
                wfile.write(b": keep-alive\n\n")
                quiet_since = time.monotonic()
            continue
        wfile.write(b"".join(events))
        quiet_since = time.monotonic()
