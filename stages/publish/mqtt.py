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

Credentials: the password is only handed to paho (``username_pw_set``);
every URL shown (log lines, errors) is masked with
``stages.sources.credentials.mask_credentials``, the client id is
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

from stages.sources.credentials import mask_credentials, split_userinfo
from stages.errors import InputError
from stages.publish.monitor import SourceMonitor

log = logging.getLogger(__name__)

MQTT_QUEUE = 1000  # messages waiting for the broker's acknowledgement, all topics together
MAX_INFLIGHT = 100  # messages sent and not yet acknowledged
QOS = 1
KEEPALIVE = 30  # seconds
RECONNECT_DELAY = (1, 10)  # seconds: first retry, longest wait between retries
CLOSE_TIMEOUT = 0.5  # seconds close() waits for acknowledgements, and again for paho's thread
INSTALL_HINT = "--mqtt needs paho-mqtt: pip install 'posestream[mqtt]'"
_FORMAT = "mqtt://[USER:PASS@]HOST[:PORT]/PREFIX"


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
        InputError: One line (credentials masked): not mqtt(s)://, no host,
            a bad port, no prefix, or a prefix with MQTT wildcards.
    """
    scheme, userinfo, rest = split_userinfo(url)
    shown = _shown(url)
    if scheme.lower() not in ("mqtt://", "mqtts://"):
        raise InputError(f"--mqtt {shown}: expected {_FORMAT} (or mqtts://)")
    authority, _, path = rest.partition("/")
    split = urlsplit("//" + authority)
    try:
        host, port = split.hostname, split.port
    except ValueError:
        raise InputError(f"--mqtt {shown}: the port must be a number from 1 to 65535") from None
    if not host:
        raise InputError(f"--mqtt {shown}: no broker host; expected {_FORMAT}")
    if port == 0:
        raise InputError(f"--mqtt {shown}: the port must be a number from 1 to 65535")
    prefix = unquote(path).strip("/")
    if not prefix:
        raise InputError(f"--mqtt {shown}: no topic prefix; expected {_FORMAT}, e.g. .../posestream")
    if any(c in prefix for c in "+#\0") or "//" in prefix:
        raise InputError(f"--mqtt {shown}: the topic prefix must not hold the wildcards '+' or "
                         "'#', or empty levels")
    tls = scheme.lower() == "mqtts://"
    username = password = None
    if userinfo is not None:
        user, colon, secret = userinfo.partition(":")
        username, password = unquote(user), (unquote(secret) if colon else None)
    return Broker(host=host, port=port or (8883 if tls else 1883), prefix=prefix, tls=tls,
                  username=username, password=password)


def _shown(url: str) -> str:
    masked = mask_credentials(url)
    if "@" in url and "***@" not in masked:  # no scheme: mask_credentials saw no URL
        masked = "***@" + url.rpartition("@")[2]
    return masked


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
                 reconnect: tuple[int, int] = RECONNECT_DELAY) -> None:
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
        self._client = client
        for name, monitor in (monitors or {}).items():
            self._monitors[name] = monitor
            monitor.on_state(self._state_changed)
        client.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE)
        client.loop_start()
        return self

    def topic(self, source: str, kind: str) -> str:
        """``PREFIX/<source>/<kind>`` (kind: ``pose`` or ``state``)."""
        return f"{self.broker.prefix}/{source}/{kind}"

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up now."""
        return bool(self._connected)

    def offer(self, source: str, line: bytes, record: dict) -> None:
        """Queue ``line`` for ``PREFIX/<source>/pose``; never blocks."""
        if self._publish(self.topic(source, "pose"), line.rstrip(b"\n"), retain=False):
            self.published[source] += 1
        else:
            self.dropped[source] += 1

    def close(self) -> None:
        """Wait up to ``CLOSE_TIMEOUT`` for the broker to take what is queued, then
        disconnect; idempotent."""
        client, self._client = self._client, None
        if client is None:
            return
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
            if self._full and self.sent - self.acked <= self.queue // 2:  # caught up: warn again
                self._full = False                                         # at the next overflow
        return True

    def _state_changed(self, source: str, state: str, row: dict) -> None:
        payload = mask_credentials(json.dumps(row, separators=(",", ":")))
        self._publish(self.topic(source, "state"), payload.encode(), retain=True)

    # -- inside: paho's callbacks, on its network thread --------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._went_down(f"{self.broker.shown()} refused the connection ({reason_code})")
            return
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

    def _went_down(self, why: str) -> None:
        if self._connected is not False:
            log.warning("MQTT: %s; retrying in the background, records queue meanwhile", why)
        self._connected = False
