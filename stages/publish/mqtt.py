"""MQTT: live keypoints and source states pushed to a broker (``--mqtt``).

``--mqtt mqtt://[USER:PASS@]HOST[:PORT]/PREFIX`` (``mqtts://`` for TLS, port
8883 by default, else 1883) publishes, per source:

- ``PREFIX/<source>/pose``: every record of the live feed
  (``stages.publish.feed``), the JSON line without its newline; QoS 1, not
  retained.
- ``PREFIX/<source>/state``: the source's ``SourceMonitor`` row (``state``:
  connecting, live, reconnecting, given up, stopped; fps, frames, drops,
  reconnects, last error...) at every change of state, and again for every
  source each time the broker connection is made, so the retained value is
  right after any outage; QoS 1, retained.

Delivery: paho-mqtt's own network thread (``loop_start``) connects
(``connect_async``: a broker down at start neither blocks nor stops the
run), reconnects on its own (every ``RECONNECT_DELAY`` seconds, doubling)
and sends. Publishing only puts a message on paho's outgoing queue, bounded
at ``MQTT_QUEUE`` messages, so the pipeline never waits for the broker and a
dead broker never grows memory. QoS 1 (at least once) keeps each message in
that queue until the broker acknowledges it: records published while the
broker is briefly away are sent after the reconnect, in order, and a record
in flight when the connection broke may arrive twice (flagged ``dup``; the
source and frame identify it). When the queue is full (about ``MQTT_QUEUE``
frames of all sources together: 40 s of one 25 FPS camera), new records are
dropped and counted (``dropped``) with one warning, and the older queued
ones are still delivered. QoS 0 would lose every record of an outage; QoS 2
would add a round trip per record for nothing a consumer could not dedupe.

A broker that accepts the connection and never answers (no CONNACK), or
stops acknowledging what it is sent, is the one failure paho reports late
(at its keep-alive, 30 s on). So the time since the publisher began waiting
for an answer is watched: after ``ANSWER_TIMEOUT`` seconds without one, one
WARNING says so, and ``status`` (the dashboard, ``/healthz``'s ``mqtt``
detail and ``/metrics``) shows the state ``no answer`` until the broker
answers again (an INFO line then).

Credentials: the password is only handed to paho (``username_pw_set``);
every URL shown (log lines, errors) is masked with
``stages.sources.credentials.mask_url`` or ``mask_credentials``, the client id is
``posestream-<pid>-<random>``, and paho's own logger is never enabled.
paho-mqtt is an optional extra (``pip install 'posestream[mqtt]'``),
imported only when ``--mqtt`` is given.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from stages.sources.credentials import mask_credentials, mask_url, split_userinfo
from stages.errors import InputError
from stages.publish.monitor import SourceMonitor

log = logging.getLogger(__name__)

MQTT_QUEUE = 1000  # messages waiting for the broker's acknowledgement, all topics together
MAX_INFLIGHT = 100  # messages sent and not yet acknowledged
QOS = 1
KEEPALIVE = 30  # seconds
RECONNECT_DELAY = (1, 10)  # seconds: first retry, longest wait between retries
CLOSE_TIMEOUT = 0.5  # seconds close() waits for acknowledgements, and again for paho's thread
ANSWER_TIMEOUT = 5.0  # seconds a broker may leave an open connection or a sent message unanswered
CONNECTING, CONNECTED, NO_ANSWER, DOWN = "connecting", "connected", "no answer", "down"
STATES = (CONNECTING, CONNECTED, NO_ANSWER, DOWN)  # of the broker connection (``status``)
INSTALL_HINT = "--mqtt needs paho-mqtt: pip install 'posestream[mqtt]'"
_FORMAT = "mqtt://[USER:PASS@]HOST[:PORT]/PREFIX"
_IPV6_EXAMPLE = "mqtt://[::1]:1883/PREFIX"


@dataclass(frozen=True, kw_only=True, slots=True)
class Broker:
    """A parsed ``--mqtt`` URL.

    Attributes:
        host: Host name or address.
        port: TCP port.
        prefix: Topic prefix, without leading or trailing ``/``.
        tls: Connect with TLS (``mqtts://``).
        username: User name, or None.
        password: Password, or None (never in the repr).
    """

    host: str
    port: int
    prefix: str
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def shown(self) -> str:
        """The URL as logs may show it: credentials replaced by ``***``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        auth = "***@" if self.username is not None else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}{host}:{self.port}/{self.prefix}"


def parse_broker(url: str) -> Broker:
    """Read ``mqtt://[USER:PASS@]HOST[:PORT]/PREFIX`` (or ``mqtts://``).

    Args:
        url: The ``--mqtt`` value; user and password may be percent-encoded.

    Returns:
        The broker's address, credentials and topic prefix.

    Raises:
        InputError: One line, ``--mqtt`` and the URL with its credentials
            masked (``mask_url``, whatever is wrong with it), then the fault:
            not mqtt(s)://, white space or a control character, no host, a
            broken IPv6 host, a bad port, no prefix, or a prefix with MQTT
            wildcards.
    """
    scheme, userinfo, rest = split_userinfo(url)
    authority, _, path = rest.partition("/")
    try:
        tls = _is_tls(scheme)
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            raise _BadUrl("white space or a control character in the URL (percent-encode it: %20)")
        host, port = _host_port(authority)
        prefix = _prefix(path)
    except _BadUrl as exc:
        raise InputError(f"--mqtt {mask_url(url)}: {exc}") from None
    username = password = None
    if userinfo is not None:
        user, colon, secret = userinfo.partition(":")
        username, password = unquote(user), (unquote(secret) if colon else None)
    return Broker(host=host, port=port or (8883 if tls else 1883), prefix=prefix, tls=tls,
                  username=username, password=password)


class _BadUrl(ValueError):
    """What is wrong with a ``--mqtt`` URL, in words for the user (no credentials)."""


def _is_tls(scheme: str) -> bool:
    if scheme.lower() not in ("mqtt://", "mqtts://"):
        raise _BadUrl(f"expected {_FORMAT} (or mqtts://)")
    return scheme.lower() == "mqtts://"


def _host_port(authority: str) -> tuple[str, int | None]:
    """(host, port or None) of ``HOST[:PORT]`` or ``[IPv6][:PORT]``."""
    bracketed = authority.startswith("[")
    if ("]" not in authority) if bracketed else ("[" in authority or "]" in authority):
        raise _BadUrl(f"a broken IPv6 host: write it in brackets, e.g. {_IPV6_EXAMPLE}")
    if bracketed and authority.partition("]")[2][:1] not in ("", ":"):
        raise _BadUrl(f"unexpected text after the IPv6 host; expected {_IPV6_EXAMPLE}")
    if not bracketed and authority.count(":") > 1:
        raise _BadUrl(f"an IPv6 host needs brackets, e.g. {_IPV6_EXAMPLE}")
    try:
        split = urlsplit("//" + authority)
        host = split.hostname
    except ValueError:  # the brackets hold no IPv6 address
        raise _BadUrl(f"not an IPv6 address in the brackets; expected {_IPV6_EXAMPLE}") from None
    try:
        port = split.port
    except ValueError:
        port = 0
    if port == 0:
        raise _BadUrl("the port must be a number from 1 to 65535")
    if not host:
        raise _BadUrl(f"no broker host; expected {_FORMAT}")
    return host, port


def _prefix(path: str) -> str:
    prefix = unquote(path).strip("/")
    if not prefix:
        raise _BadUrl(f"no topic prefix; expected {_FORMAT}, e.g. .../posestream")
    if any(c in prefix for c in "+#\0") or "//" in prefix:
        raise _BadUrl("the topic prefix must not hold the wildcards '+' or '#', or empty levels")
    return prefix


def _import_paho():
    try:
        import paho.mqtt.client as paho
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return paho


class MqttPublisher:
    """The live-feed consumer that publishes to MQTT (see the module docstring).

    Args:
        url: The ``--mqtt`` URL.
        queue: Messages paho may hold for the broker before new ones are dropped.
        reconnect: Seconds before the first retry, and the longest wait between retries.
        answer_timeout: Seconds the broker may leave an open connection or a sent
            message unanswered before a warning (default ``ANSWER_TIMEOUT``).

    Attributes:
        broker: The parsed URL.
        published: Records handed to paho, per source.
        dropped: Records dropped because the queue was full, per source.
        sent: Messages (records and states) handed to paho.
        acked: Messages the broker acknowledged.

    Raises:
        InputError: A bad URL, or paho-mqtt is not installed.
    """

    def __init__(self, url: str, *, queue: int = MQTT_QUEUE,
                 reconnect: tuple[int, int] = RECONNECT_DELAY,
                 answer_timeout: float | None = None) -> None:
        self.broker = parse_broker(url)
        self._paho = _import_paho()
        self.queue = queue
        self.reconnect = reconnect
        self.published: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.sent = 0
        self.acked = 0
        self._monitors: dict[str, SourceMonitor] = {}
        self._client = None
        self._lock = threading.Lock()
        self._connected: bool | None = None  # None: no attempt finished yet
        self._full = False
        self._closing = False
        self.answer_timeout = ANSWER_TIMEOUT if answer_timeout is None else answer_timeout
        self._asked: float | None = None  # when the wait for the broker's answer began
        self._silence_warned = False
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="mqtt-watch", daemon=True)

    def start(self, monitors: Mapping[str, SourceMonitor] | None = None) -> MqttPublisher:
        """Start connecting in the background; publish ``monitors``' state changes.

        Args:
            monitors: The sources' monitors, by name (their states go to ``state``).

        Returns:
            self, to subscribe to the live feed.
        """
        paho = self._paho
        client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id=f"posestream-{os.getpid()}-{secrets.token_hex(2)}",
                             protocol=paho.MQTTv311, clean_session=True)
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set()
        client.max_queued_messages_set(self.queue)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.reconnect_delay_set(*self.reconnect)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_connect_fail, client.on_publish = self._on_connect_fail, self._on_publish
        client.on_socket_open = self._on_socket_open
        self._client = client
        for name, monitor in (monitors or {}).items():
            self._monitors[name] = monitor
            monitor.on_state(self._state_changed)
        client.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE)
        client.loop_start()
        self._watcher.start()
        return self

    def topic(self, source: str, kind: str) -> str:
        """``PREFIX/<source>/<kind>`` (kind: ``pose`` or ``state``)."""
        return f"{self.broker.prefix}/{source}/{kind}"

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up now."""
        return bool(self._connected)

    def status(self) -> dict:
        """The broker connection now (for the dashboard, ``/healthz`` and ``/metrics``).

        Returns:
            ``broker``: the URL, credentials masked; ``state``: one of
            ``STATES``; ``unacknowledged``: messages the broker has not
            acknowledged; ``dropped``: records dropped on a full queue;
            ``seconds_without_answer``: how long the broker has left an open
            connection or a sent message unanswered (None: nothing waits).
        """
        with self._lock:
            waiting = self._waiting_for()
            unacknowledged = self.sent - self.acked
            dropped = sum(self.dropped.values())
        if waiting is not None and waiting >= self.answer_timeout:
            state = NO_ANSWER
        elif self._connected:
            state = CONNECTED
        else:
            state = CONNECTING if self._connected is None or waiting is not None else DOWN
        return {"broker": self.broker.shown(), "state": state, "unacknowledged": unacknowledged,
                "dropped": dropped,
                "seconds_without_answer": None if waiting is None else round(waiting, 1)}

    def offer(self, source: str, line: bytes, record: dict) -> None:
        """Queue ``line`` for ``PREFIX/<source>/pose``; never blocks."""
        if self._publish(self.topic(source, "pose"), line.rstrip(b"\n"), retain=False):
            self.published[source] += 1
        else:
            self.dropped[source] += 1

    def close(self) -> None:
        """Wait up to ``CLOSE_TIMEOUT`` for the broker to take what is queued, then
        disconnect; idempotent."""
        self._stop.set()
        client, self._client = self._client, None
        if client is None:
            return
        self._watcher.join(CLOSE_TIMEOUT)
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while self._connected and self.acked < self.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.acked < self.sent:
            log.warning("MQTT: %d messages not acknowledged by %s at the end",
                        self.sent - self.acked, self.broker.shown())
        self._closing = True
        client.disconnect()
        # paho's thread may sit in a connect of up to its timeout: do not wait for it
        stopper = threading.Thread(target=client.loop_stop, name="mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(CLOSE_TIMEOUT)

    # -- inside: publishing -------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        client = self._client
        if client is None:
            return False
        info = client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc == self._paho.MQTT_ERR_QUEUE_SIZE:
            with self._lock:
                full, self._full = self._full, True
            if not full:
                log.warning("MQTT: %d messages wait for %s; dropping new ones until it takes them",
                            self.queue, self.broker.shown())
            return False
        with self._lock:
            self.sent += 1
            if self._connected and self._asked is None:  # an acknowledgement is due now
                self._asked = time.monotonic()
            if self._full and self.sent - self.acked <= self.queue // 2:  # caught up: warn again
                self._full = False                                         # at the next overflow
        return True

    def _state_changed(self, source: str, state: str, row: dict) -> None:
        payload = mask_credentials(json.dumps(row, separators=(",", ":")))
        self._publish(self.topic(source, "state"), payload.encode(), retain=True)

    # -- inside: paho's callbacks, on its network thread --------------------------------------

    def _on_socket_open(self, client, userdata, sock) -> None:
        with self._lock:  # the broker owes a CONNACK from now on
            self._asked = time.monotonic()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._answered()
        if reason_code.is_failure:
            self._went_down(f"{self.broker.shown()} refused the connection ({reason_code})")
            return
        with self._lock:  # messages queued meanwhile are sent now: their acknowledgements are due
            self._asked = time.monotonic() if self.acked < self.sent else None
        if self._connected is not True:
            log.info("MQTT: connected to %s", self.broker.shown())
        self._connected = True
        for name, monitor in self._monitors.items():  # the retained state is right again
            row = monitor.row()
            self._state_changed(name, row["state"], row)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._closing:
            why = "" if reason_code.value == 128 else f" ({reason_code})"  # 128: unspecified
            self._went_down(f"lost {self.broker.shown()}{why}")

    def _on_connect_fail(self, client, userdata) -> None:
        self._went_down(f"cannot reach {self.broker.shown()}")

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acked += 1
            self._asked = time.monotonic() if self.acked < self.sent else None
        self._answered()

    def _went_down(self, why: str) -> None:
        with self._lock:  # "lost" or "cannot reach" says it now: no answer is awaited
            self._asked = None
        if self._connected is not False:
            log.warning("MQTT: %s; retrying in the background, records queue meanwhile", why)
        self._connected = False

    # -- inside: a broker that says nothing ---------------------------------------------------

    def _waiting_for(self) -> float | None:
        """Seconds since the wait for the broker's answer began (None: none awaited); locked."""
        return None if self._asked is None else time.monotonic() - self._asked

    def _watch(self) -> None:
        """Warn once when the broker leaves a connection or a message unanswered too long."""
        interval = min(self.answer_timeout / 4, 0.5)
        while not self._stop.wait(interval):
            with self._lock:
                waiting, unacknowledged = self._waiting_for(), self.sent - self.acked
                late = (waiting is not None and waiting >= self.answer_timeout
                        and not self._silence_warned)
                self._silence_warned |= late
            if late and self._connected:
                log.warning("MQTT: %s has acknowledged none of %d messages for %.1f s; they stay "
                            "queued", self.broker.shown(), unacknowledged, waiting)
            elif late:
                log.warning("MQTT: %s accepted the connection but has not answered it for %.1f s; "
                            "records queue meanwhile", self.broker.shown(), waiting)

    def _answered(self) -> None:
        with self._lock:
            was_silent, self._silence_warned = self._silence_warned, False
        if was_silent:
            log.info("MQTT: %s answers again", self.broker.shown())
