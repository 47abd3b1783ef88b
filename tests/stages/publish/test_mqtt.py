"""``--mqtt``: records and states published to a real Mosquitto broker on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stages.errors import InputError
from stages.settings import JobConfig
from stages.outputs.keypoint_log import read_keypoint_log
from stages.sources.stream import SourceEvent
from stages.jobs.live import LiveJob
from stages.settings import LiveConfig
from stages.recording.live_log import LIVE_LOG
from stages.publish.mqtt import INSTALL_HINT, MqttPublisher, parse_broker
from stages.publish.monitor import SourceMonitor
from tests.support.live_fixtures import wait_for
from tests.support.mqtt_fixtures import Subscriber

ROOT = Path(__file__).resolve().parents[3]
FAKE = dict(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), video=False)
LAVFI = "lavfi:testsrc2=size=64x48:rate=25"
DEADLINE = 20.0
SECRET = "s3cr3t-Pw@x/y"  # an "@" and a "/" in it, percent-encoded in the URL


def _logged(folder: Path) -> list[dict]:
    segments = [read_keypoint_log(p) for p in folder.glob("*.jsonl") if p.name != LIVE_LOG]
    return [r for seg in sorted(filter(None, segments), key=lambda s: s[0]["wall"]) for r in seg]


class Running:
    """A LiveJob running on a thread; ``stop()`` cancels it and checks it ended cleanly."""

    def __init__(self, job: LiveJob) -> None:
        self.job, self.out = job, {}
        self.thread = threading.Thread(target=lambda: self.out.setdefault("stats", job.run()),
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.job.cancel()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive() and "stats" in self.out


# -- the URL --------------------------------------------------------------------------------------

def test_the_url_is_read_whole():
    broker = parse_broker("mqtt://cam%40site:p%40ss@broker.local:1884/site/posestream/")
    assert (broker.host, broker.port, broker.prefix, broker.tls) == ("broker.local", 1884,
                                                                      "site/posestream", False)
    assert (broker.username, broker.password) == ("cam@site", "p@ss")
    assert "p@ss" not in repr(broker) and broker.shown() == "mqtt://***@broker.local:1884/site/posestream"
    assert parse_broker("mqtts://h/p").port == 8883 and parse_broker("mqtt://h/p").port == 1883


@pytest.mark.parametrize("url, why", [
    ("http://u:pw@h/p", "expected mqtt://"),
    ("u:pw@h/p", "expected mqtt://"),
    ("mqtt://u:pw@h:99999/p", "port"),
    ("mqtt://u:pw@h:0/p", "port"),
    ("mqtt://u:pw@h:x/p", "port"),
    ("mqtt://u:pw@h", "no topic prefix"),
    ("mqtt://u:pw@h/", "no topic prefix"),
    ("mqtt://u:pw@h/a/#", "wildcards"),
    ("mqtt://u:pw@/p", "no broker host"),
])
def test_a_bad_url_is_one_line_without_the_password(url, why):
    with pytest.raises(InputError, match=why) as caught:
        parse_broker(url)
    assert "pw" not in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("--mqtt ")


@pytest.mark.parametrize("url, why", [
    ("mqtt://dave:s3cr3t@[::1/prefix", "broken IPv6 host"),  # the example
    ("mqtt://dave:s3cr3t@[::1:1883/prefix", "broken IPv6 host"),
    ("mqtt://dave:s3cr3t@::1]/prefix", "broken IPv6 host"),
    ("mqtt://dave:s3cr3t@[::zz]/prefix", "not an IPv6 address"),
    ("mqtt://dave:s3cr3t@::1/prefix", "needs brackets"),
    ("mqtt://dave:s3cr3t@[::1]x/prefix", "after the IPv6 host"),
    ("mqtt://dave:s3cr3t @127.0.0.1/prefix", "white space"),  # space in the password
    ("mqtt://da ve:s3cr3t@127.0.0.1/prefix", "white space"),  # space in the user
    ("mqtt://dave:s3%20cr3t@127.0.0.1:99999/prefix", "port"),  # percent-escapes, bad port
    ("mqtt://dave:s3@cr/3t@[::1/prefix", "broken IPv6 host"),  # "@" and "/" in the password
])
def test_every_bad_url_names_the_option_and_shows_the_masked_url(url, why):
    with pytest.raises(InputError, match=why) as caught:
        parse_broker(url)
    message = str(caught.value)
    assert message.startswith("--mqtt mqtt://***@") and "\n" not in message
    assert "cr3t" not in message and "dave" not in message and "da ve" not in message


def test_a_bracketed_ipv6_broker_is_read():
    broker = parse_broker("mqtt://dave:s3@cr/3t@[::1]:1884/site")
    assert (broker.host, broker.port, broker.password) == ("::1", 1884, "s3@cr/3t")
    assert broker.shown() == "mqtt://***@[::1]:1884/site"


def test_without_paho_the_run_fails_at_start_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)  # import fails
    monkeypatch.setitem(sys.modules, "paho", None)
    with pytest.raises(InputError) as caught:
        LiveJob([(LAVFI, "cam")], tmp_path, JobConfig(**FAKE), LiveConfig(mqtt="mqtt://h/p"))
    assert str(caught.value) == INSTALL_HINT


# -- against Mosquitto ----------------------------------------------------------------------------

def test_records_arrive_on_pose_as_the_segment_logs_have_them(tmp_path, mqtt_broker):
    broker = mqtt_broker()
    sub = Subscriber(broker, "ps/#")
    job = LiveJob([(LAVFI, "cam")], tmp_path / "out", JobConfig(**FAKE),
                  LiveConfig(segment_minutes=0.01, mqtt=broker.url("ps")))
    run = Running(job)
    try:
        wait_for(lambda: len(sub.on("ps/cam/pose")) >= 30, "30 records on ps/cam/pose")
    finally:
        run.stop()
        logged = _logged(tmp_path / "out" / "cam")
        # the stopped state is published last; under load it can land after the last pose
        wait_for(lambda: len(sub.on("ps/cam/pose")) >= len(logged)
                 and any(json.loads(p)["state"] == "stopped" for p in sub.on("ps/cam/state")),
                 "every record and the stopped state", 5)
        sub.close()
    poses = [json.loads(p) for p in sub.on("ps/cam/pose")]
    assert {p.pop("source") for p in poses} == {"cam"}
    assert poses == logged and len(logged) >= 30
    states = [json.loads(p) for p in sub.on("ps/cam/state")]
    assert [s["state"] for s in states][-2:] == ["live", "stopped"]
    assert states[-1]["source"] == "cam" and states[-1]["frames"] == len(logged)
    assert job.mqtt.dropped == {}


def test_the_state_is_retained_for_later_subscribers(mqtt_broker):
    broker = mqtt_broker()
    monitor = SourceMonitor("cam1")
    publisher = MqttPublisher(broker.url("ps")).start({"cam1": monitor})
    try:
        wait_for(lambda: publisher.connected, "the connection")
        monitor.event(SourceEvent(source="cam1", kind="connected", message="connected",
                                  attempt=0, delay=0.0))
        wait_for(lambda: publisher.acked == publisher.sent >= 2, "the states to be acknowledged")
    finally:
        publisher.close()
    late = Subscriber(broker, "ps/+/state")
    try:
        wait_for(lambda: late.messages, "the retained state")
    finally:
        late.close()
    topic, payload, retained = late.messages[-1]
    assert (topic, retained) == ("ps/cam1/state", True)
    assert json.loads(payload)["state"] == "live"


def test_records_queued_while_the_broker_is_away_reach_it_when_it_comes(mqtt_broker):
    broker = mqtt_broker(start=False)
    publisher = MqttPublisher(broker.url("ps")).start()
    try:
        for i in range(5):
            publisher.offer("cam", b'{"frame":%d}\n' % i, {})
        assert publisher.published["cam"] == 5 and publisher.acked == 0
        broker.start()
        wait_for(lambda: publisher.acked == 5, "the broker to acknowledge the queued records")
    finally:
        publisher.close()


def test_a_dead_broker_never_grows_the_queue_nor_blocks_offer_nor_close(mqtt_broker, caplog):
    broker = mqtt_broker(start=False)  # nothing listens on its port
    publisher = MqttPublisher(broker.url("ps"), queue=20).start()
    try:
        for i in range(200):
            publisher.offer("cam", b'{"frame":%d}\n' % i, {})
    finally:
        started = time.monotonic()
        publisher.close()
        closing = time.monotonic() - started
    assert publisher.published["cam"] == 20 and publisher.dropped["cam"] == 180
    assert sum("dropping new ones" in r.getMessage() for r in caplog.records) == 1
    assert closing < 2.0  # every run ends within 2 s of a stop signal


def test_a_broker_down_at_start_blocks_nothing_and_publishing_begins_when_it_is_up(
        tmp_path, mqtt_broker, caplog):
    caplog.set_level(logging.INFO, logger="stages.publish.mqtt")
    broker = mqtt_broker(start=False)
    job = LiveJob([(LAVFI, "cam")], tmp_path / "out", JobConfig(**FAKE),
                  LiveConfig(mqtt=broker.url("ps")))
    run = Running(job)
    try:
        wait_for(lambda: job.monitors["cam"].frames >= 10, "10 frames with no broker")
        assert not job.mqtt.connected
        broker.start()
        sub = Subscriber(broker, "ps/#")
        try:
            wait_for(lambda: job.mqtt.connected, "the publisher to connect")
            after = job.monitors["cam"].frames
            wait_for(lambda: any(json.loads(p)["frame"] > after for p in sub.on("ps/cam/pose")),
                  "new records on ps/cam/pose")
        finally:
            sub.close()
    finally:
        run.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "stages.publish.mqtt"]
    assert sum("cannot reach" in m for m in messages) == 1  # once per change, not per retry
    assert sum("connected to" in m for m in messages) == 1


def test_a_broker_killed_mid_run_never_stalls_the_pipeline_and_publishing_resumes(
        tmp_path, mqtt_broker):
    broker = mqtt_broker()
    job = LiveJob([(LAVFI, "cam")], tmp_path / "out", JobConfig(**FAKE),
                  LiveConfig(mqtt=broker.url("ps")))
    log_path = tmp_path / "out" / "cam" / LIVE_LOG
    run = Running(job)
    try:
        wait_for(lambda: job.mqtt.acked >= 10, "10 messages acknowledged")
        broker.kill()
        wait_for(lambda: not job.mqtt.connected, "the publisher to notice")
        size = log_path.stat().st_size
        frames = job.monitors["cam"].frames
        wait_for(lambda: job.monitors["cam"].frames >= frames + 15 and log_path.stat().st_size > size,
              "frames written while the broker is down")
        queued = job.mqtt.sent  # before and during the outage
        broker.start()
        sub = Subscriber(broker, "ps/#")
        try:
            # QoS 1: what was queued while the broker was away reaches it after the restart
            wait_for(lambda: job.mqtt.acked >= queued, "the queued messages to be acknowledged")
            after = job.monitors["cam"].frames
            wait_for(lambda: any(json.loads(p)["frame"] > after for p in sub.on("ps/cam/pose")),
                  "records after the restart")
            wait_for(lambda: sub.on("ps/cam/state"), "the state, published again at the reconnect")
        finally:
            sub.close()
    finally:
        run.stop()
    assert job.mqtt.dropped == {}


def test_the_password_never_shows_in_logs_stderr_files_or_payloads(tmp_path, mqtt_broker, caplog):
    caplog.set_level(logging.DEBUG)
    broker = mqtt_broker(user="cam", password=SECRET)
    encoded = broker.url("ps", user="cam", password=SECRET).split("//")[1].split("@127")[0]
    sub = Subscriber(broker, "ps/#", user="cam", password=SECRET)
    # a wrong password, in process: the refusal is logged, masked
    wrong = LiveJob([(LAVFI, "cam")], tmp_path / "wrong", JobConfig(**FAKE),
                    LiveConfig(mqtt=broker.url("ps", user="cam", password=SECRET + "-wrong")))
    run = Running(wrong)
    try:
        wait_for(lambda: "refused" in caplog.text, "the refusal")
    finally:
        run.stop()
    # the right password, through the command line at --debug
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, os.fspath(ROOT / "run_stream.py"), LAVFI, "-o", os.fspath(out), "--debug",
         "--backend", FAKE["backend"], "--resolution", "64x48", "--no-video",
         "--mqtt", broker.url("ps", user="cam", password=SECRET)],
        env=dict(os.environ, PYTHONPATH=os.fspath(ROOT)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    poses = lambda: [p for t, p, _ in sub.messages if t.endswith("/pose")]  # noqa: E731
    try:
        wait_for(lambda: len(poses()) >= 5 or proc.poll() is not None, "records")
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=DEADLINE)
        sub.close()
    assert len(poses()) >= 5, stderr[-2000:]
    assert "MQTT: connected to mqtt://***@127.0.0.1" in stderr
    payloads = b"".join(payload for _, payload, _ in sub.messages).decode()
    files = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()
                    and "mosquitto" not in p.name)
    for secret in (SECRET, encoded.split(":")[1], "s3cr3t"):
        for where, text in (("logs", caplog.text), ("stderr", stderr + stdout),
                            ("payloads", payloads), ("files", files)):
            assert secret not in text, f"the password shows in the {where}"


def test_the_api_publishes_a_live_sources_results_too(mqtt_broker):
    from stages.api import results

    broker = mqtt_broker()
    sub = Subscriber(broker, "api/#")
    frames = []
    for result in results(LAVFI, config=JobConfig(**FAKE), live=LiveConfig(mqtt=broker.url("api"))):
        frames.append(result.frame.index)
        if len(frames) == 10:
            break
    try:
        wait_for(lambda: sum(t.endswith("/pose") for t, _, _ in sub.messages) >= 10, "10 records")
        wait_for(lambda: any(json.loads(p)["state"] == "stopped" for t, p, _ in sub.messages
                          if t.endswith("/state")), "the stopped state")
    finally:
        sub.close()
    poses = [json.loads(p) for t, p, _ in sub.messages if t.endswith("/pose")]
    assert [p["frame"] for p in poses] == frames


# -- a broker that accepts the connection and never answers (issue 21, item 12) -------------------

class SilentBroker:
    """A TCP listener on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self._listener.accept()[0])
            except OSError:  # closed
                return

    def url(self, prefix: str = "ps") -> str:
        password = SECRET.replace("@", "%40").replace("/", "%2F")
        return f"mqtt://cam:{password}@127.0.0.1:{self.port}/{prefix}"

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self._listener.close()
        self._thread.join(DEADLINE)
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent_broker():
    broker = SilentBroker()
    yield broker
    broker.close()


def _silence_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "stages.publish.mqtt" and r.levelno == logging.WARNING
            and "has not answered" in r.getMessage()]


def test_a_broker_that_never_answers_is_warned_about_once_and_shows_in_the_status(silent_broker,
                                                                               caplog):
    caplog.set_level(logging.INFO, logger="stages.publish.mqtt")
    publisher = MqttPublisher(silent_broker.url(), answer_timeout=0.3).start()
    try:
        for frame in range(5):
            publisher.offer("cam", b'{"frame": %d}\n' % frame, {})
        wait_for(lambda: silent_broker.accepted, "the connection to be accepted")
        wait_for(lambda: _silence_warnings(caplog), "the warning")
        status = publisher.status()
        assert status["state"] == "no answer" and status["unacknowledged"] == 5
        assert status["broker"] == f"mqtt://***@127.0.0.1:{silent_broker.port}/ps"
        wait_for(lambda: publisher.status()["seconds_without_answer"] >= 1.2, "4 answer timeouts")
    finally:
        publisher.close()
    (warning,) = _silence_warnings(caplog)  # one line, however long the silence
    assert warning.startswith(f"MQTT: mqtt://***@127.0.0.1:{silent_broker.port}/ps accepted the "
                              "connection but has not answered it for ")
    assert "s3cr3t" not in caplog.text and "Pw" not in caplog.text


def test_an_answering_broker_is_connected_and_never_said_silent(mqtt_broker, caplog):
    caplog.set_level(logging.INFO, logger="stages.publish.mqtt")
    broker = mqtt_broker()
    publisher = MqttPublisher(broker.url("ps"), answer_timeout=0.3).start()
    try:
        wait_for(lambda: publisher.connected, "the connection")
        for frame in range(5):
            publisher.offer("cam", b'{"frame": %d}\n' % frame, {})
        wait_for(lambda: publisher.acked == publisher.sent == 5, "the acknowledgements")
        status = publisher.status()
        assert (status["state"], status["unacknowledged"]) == ("connected", 0)
        assert status["seconds_without_answer"] is None
    finally:
        publisher.close()
    assert not _silence_warnings(caplog)


def test_a_silent_broker_shows_in_the_dashboard_healthz_and_metrics(tmp_path, silent_broker,
                                                                   monkeypatch, caplog):
    from rich.console import Console

    from stages.display.dashboard import mqtt_line, tables
    from stages.serve.status import LiveStatus, StatusServer
    from tests.support.status_fixtures import get, scrape

    import stages.publish.mqtt as mqtt_module

    monkeypatch.setattr(mqtt_module, "ANSWER_TIMEOUT", 0.3)
    job = LiveJob([(LAVFI, "cam")], tmp_path / "out", JobConfig(**FAKE),
                  LiveConfig(mqtt=silent_broker.url()))
    run = Running(job)
    try:
        with StatusServer(port=0, status=LiveStatus.of(job)) as server:
            wait_for(lambda: job.snapshot()["mqtt"]["state"] == "no answer", "the silence")
            body = json.loads(get(server.url, "/healthz")[2])
            assert body["mqtt"]["state"] == "no answer" and body["mqtt"]["ok"] is False
            assert body["mqtt"]["reason"].startswith("the broker has not answered for ")
            metrics = scrape(server.url)
            assert metrics[("posestream_mqtt_state", (("state", "no answer"),))] == 1.0
            assert metrics[("posestream_mqtt_state", (("state", "connected"),))] == 0.0
            assert metrics[("posestream_mqtt_seconds_without_answer", ())] >= 0.3
            snapshot = job.snapshot()
    finally:
        run.stop()
    console = Console(record=True, width=200)
    console.print(tables(snapshot))
    screen = console.export_text()
    assert "no answer" in screen and f"mqtt://***@127.0.0.1:{silent_broker.port}/ps" in screen
    assert mqtt_line(snapshot["mqtt"]).startswith(
        f"mqtt mqtt://***@127.0.0.1:{silent_broker.port}/ps: no answer, ")
    for text in (screen, json.dumps(body), caplog.text):
        assert "s3cr3t" not in text
