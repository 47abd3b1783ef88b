"""The operators' soak: what it attaches to a running posestream, and what it keeps.

Consumers of the live keypoints, each on its own thread, each keeping the
identity of every record it received (``record_key``) and its arrival time:
``TailConsumer`` (a real ``tail -F`` of ``OUT/<source>/live.jsonl``),
``SseConsumer`` (``/events`` of the status server) and ``MqttConsumer``
(paho, ``PREFIX/+/pose``). ``SegmentKeeper`` hard-links every finished
segment log out of the output folder before retention deletes it, so the
records logged over the whole run can be counted at the end, and measures
the folder's disk use.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

LIVE_LOG = "live.jsonl"


def record_key(source: str, record: dict) -> tuple:
    """What identifies one frame's record: source, frame index, pts and capture time."""
    return (source, record.get("frame"), record.get("pts"), record.get("wall"))


class Received:
    """The records one consumer got: keys (once each), duplicates, arrival times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: set[tuple] = set()
        self.duplicates = 0
        self.arrivals: dict[tuple, float] = {}
        self.bad_lines = 0

    def add(self, source: str, record: dict) -> None:
        """Count ``record`` of ``source``, received now."""
        key = record_key(source, record)
        with self._lock:
            if key in self.keys:
                self.duplicates += 1
                return
            self.keys.add(key)
            self.arrivals[key] = time.time()

    def add_line(self, line: bytes | str, source: str | None = None) -> None:
        """Count one JSON line (its own ``source`` unless given)."""
        try:
            record = json.loads(line)
        except ValueError:
            with self._lock:
                self.bad_lines += 1
            return
        if isinstance(record, dict) and "frame" in record:
            self.add(source or record.get("source", "?"), record)

    def per_source(self) -> Counter:
        """Records received per source."""
        with self._lock:
            return Counter(key[0] for key in self.keys)

    def snapshot(self) -> tuple[set, dict]:
        """(keys, arrival times), copied."""
        with self._lock:
            return set(self.keys), dict(self.arrivals)


class TailConsumer:
    """``tail -n +1 -F OUT/<source>/live.jsonl`` as a child process, read line by line.

    Started once posestream created the file, as the README advises (GNU tail
    started on a missing file falls back to polling for good); ``-n +1``
    reads it from its first line.
    """

    def __init__(self, outdir: Path, source: str) -> None:
        self.source = source
        self.path = outdir / source / LIVE_LOG
        self.received = Received()
        self.last_line = time.monotonic()
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"tail-{source}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self.path.exists():
            if self._stopping.wait(0.05):
                return
        self.proc = subprocess.Popen(["tail", "-n", "+1", "-F", os.fspath(self.path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if self._stopping.is_set():  # ended while it started
            self.end()
        for line in self.proc.stdout:
            self.last_line = time.monotonic()
            self.received.add_line(line, self.source)

    def stop(self, quiet: float = 3.0, limit: float = 60.0) -> None:
        """Wait until no line came for ``quiet`` seconds (``limit`` at most); end tail."""
        deadline = time.monotonic() + limit
        while time.monotonic() - self.last_line < quiet and time.monotonic() < deadline:
            time.sleep(0.2)
        self.end()
        self._thread.join(10)

    def end(self) -> None:
        """End the tail process, or never start it; idempotent."""
        self._stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)


class SseConsumer:
    """A Server-Sent Events client of ``http://HOST:PORT/events``; reconnects if cut.

    Attributes:
        connections: Connections opened (1 in a clean run).
        connected_at: When each was (Unix time).
        other_events: Events that were not keypoint records, by event type.
    """

    def __init__(self, host: str, port: int, path: str = "/events") -> None:
        self.host, self.port, self.path = host, port, path
        self.received = Received()
        self.connections = 0
        self.connected_at: list[float] = []
        self.other_events: Counter = Counter()
        self.errors: list[str] = []
        self._ending = threading.Event()  # the server is gone: no new connection
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="sse", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._ending.is_set():
            try:
                self._follow()
            except (OSError, http.client.HTTPException) as exc:
                if self.connections and not self._ending.is_set():
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a bench bug must show in the report
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            if not self._ending.is_set():
                time.sleep(0.5)  # not up yet, or cut: connect again

    def _follow(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.request("GET", self.path, headers={"Accept": "text/event-stream"})
        sock = conn.sock  # getresponse() lets go of it when the server will close
        response = conn.getresponse()
        if response.status != 200:
            self.errors.append(f"/events answered {response.status}")
            conn.close()
            return
        self._sock = sock
        sock.settimeout(None)  # records may pause while every camera reconnects
        self.connections += 1
        self.connected_at.append(time.time())
        event, data = "message", []
        for raw in response:
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif not line and data:
                self._dispatch(event, "\n".join(data))
                event, data = "message", []
        conn.close()

    def _dispatch(self, event: str, data: str) -> None:
        if event in ("message", "pose", "record"):
            self.received.add_line(data)
        else:
            self.other_events[event] += 1

    def stop(self, wait: float = 30.0) -> None:
        """Once the server is gone: read the stream to its end (``wait`` s at most), then cut it."""
        self._ending.set()
        self._thread.join(wait)
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)


class MqttConsumer:
    """A paho subscriber of ``PREFIX/+/pose`` and ``PREFIX/+/state``; reconnects by itself.

    Attributes:
        connects: Times (Unix) of every connection to the broker.
        states: State messages received, per source.
    """

    def __init__(self, host: str, port: int, prefix: str, *, user: str | None = None,
                 password: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.prefix = prefix
        self.received = Received()
        self.connects: list[float] = []
        self.states: Counter = Counter()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-subscriber")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=1)
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if not reason_code.is_failure:
            self.connects.append(time.time())
            client.subscribe([(f"{self.prefix}/+/pose", 1), (f"{self.prefix}/+/state", 1)])

    def _on_message(self, _client, _userdata, message) -> None:
        parts = message.topic.split("/")
        source, kind = parts[-2], parts[-1]
        if kind == "pose":
            self.received.add_line(message.payload, source)
        else:
            self.states[source] += 1

    def stop(self, settle: float = 2.0) -> None:
        """Let in-flight messages arrive for ``settle`` seconds, then disconnect."""
        time.sleep(settle)
        self.client.disconnect()
        self.client.loop_stop()


class SegmentKeeper:
    """Hard-links each finished segment log out of OUT; measures OUT's disk use.

    Finished segment files are the ones under ``OUT/<source>/`` whose names do
    not start with "." (the open segment's are hidden ``.partial`` names) and
    are not ``live.jsonl*``. Polls every ``interval`` seconds.

    Attributes:
        seen: Every finished segment file seen (path -> size).
        missed: Segment logs deleted before they could be linked.
        max_segments: Largest disk use of the segment files, open ones too (bytes).
        max_total: Largest disk use of everything under OUT, what ``--max-disk``
            caps: the segments and the ``live.jsonl*`` logs (bytes).
        last_segments: The segment files' total size at the last poll (bytes).
        last_total: Everything under OUT at the last poll (bytes).
        polls, over: Polls made; by how many bytes each poll over ``cap`` was over.
    """

    def __init__(self, outdir: Path, keepdir: Path, interval: float = 0.5, *,
                 cap: int | None = None) -> None:
        self.outdir, self.keepdir, self.interval, self.cap = outdir, keepdir, interval, cap
        self.polls = 0
        self.over: list[int] = []  # by how much each poll over ``cap`` was over it
        self.seen: dict[Path, int] = {}
        self.missed = 0
        self.max_segments = self.max_total = 0
        self.last_segments = self.last_total = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """Link new finished logs; update the disk maxima."""
        segments = total = 0
        for path in self._files():
            try:
                size = path.stat().st_blocks * 512  # what the files take, as --max-disk counts
            except FileNotFoundError:
                continue
            total += size
            if path.name.startswith(LIVE_LOG):
                continue
            segments += size
            if not path.name.startswith(".") and path not in self.seen:
                self.seen[path] = size
                if path.suffix == ".jsonl":
                    self._link(path)
        self.last_segments, self.last_total = segments, total
        self.polls += 1
        if self.cap is not None and total > self.cap:
            self.over.append(total - self.cap)
        self.max_segments = max(self.max_segments, segments)
        self.max_total = max(self.max_total, total)

    def _files(self) -> list[Path]:
        try:
            return [p for p in self.outdir.rglob("*") if p.is_file()]
        except FileNotFoundError:  # a folder deleted while walked
            return []

    def _link(self, path: Path) -> None:
        dest = self.keepdir / path.parent.name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except FileNotFoundError:
            self.missed += 1

    def stop(self) -> None:
        """A last poll, then stop polling."""
        self._stopping.set()
        self._thread.join(10)
        self.poll()

    def logged(self) -> set[tuple]:
        """Keys of every record in the kept segment logs (and any still in OUT)."""
        keys: set[tuple] = set()
        for folder in (self.keepdir, self.outdir):
            for path in folder.glob("*/*.jsonl"):
                if path.name.startswith(".") or path.name == LIVE_LOG:
                    continue
                with open(path, "rb") as f:
                    for line in f:
                        try:
                            keys.add(record_key(path.parent.name, json.loads(line)))
                        except ValueError:
                            pass  # a last line cut short by a kill
        return keys

    def segments_present(self) -> int:
        """Finished segment files still in OUT."""
        return sum(1 for path in self.seen if path.exists())
