"""Live sources: steady streams, drops, restarts, stalls, bad URLs, auth, stopping.

Real-server tests run ``tests/support/rtsp_server.py`` (GStreamer) in a child
process; see ``tests/support/live_fixtures.py``.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import numpy as np
import pytest

from stages.errors import InputError
from stages.frames import Result
from stages.sources._stream_url import validate_live_spec
from stages.sources.stream import (LiveSource, RealTimePacer, SourceEvent, StreamClock, backoff_delay)
from stages.recording.segments import SegmentedOutputs
from tests.support.live_fixtures import free_port, make_live_clip

SECRET = "s3cr:t@x/#%"  # percent-encoded in URLs


def take(source: LiveSource, count: int, *, deadline_s: float = 10.0, each=None) -> list:
    """The next ``count`` frames, failing if they take longer than ``deadline_s``."""
    frames, deadline = [], time.monotonic() + deadline_s
    for frame in source:
        frames.append(frame)
        if each is not None:
            each(frame)
        if len(frames) == count:
            return frames
        assert time.monotonic() < deadline, f"only {len(frames)} frames in {deadline_s} s"
    pytest.fail(f"the source ended after {len(frames)} frames")


def assert_continuous(frames) -> None:
    indices = [f.index for f in frames]
    assert indices == list(range(indices[0], indices[0] + len(frames)))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:])), pts


class Recorder:
    """An ``on_event`` callback that keeps the events and can act on a kind."""

    def __init__(self, actions: dict | None = None) -> None:
        self.events: list[SourceEvent] = []
        self.actions = actions or {}

    def __call__(self, event: SourceEvent) -> None:
        self.events.append(event)
        action = self.actions.pop(event.kind, None)
        if action is not None:
            action(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


# -- pure parts ------------------------------------------------------------------

def test_backoff_doubles_then_caps():
    delays = [backoff_delay(n, 0.5, 30.0) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff_delay(0, 0.5, 30.0) == 0.0
    assert backoff_delay(10_000, 0.5, 30.0) == 30.0


def test_stream_clock_never_goes_back_and_shows_outages():
    now = [100.0]
    clock = StreamClock(now=lambda: now[0])
    clock.start_connection(0.04)
    first = [clock.stamp(s) for s in (None, 10.04, 10.08, 10.12)]
    assert first == pytest.approx([0.0, 0.04, 0.08, 0.12])
    assert clock.stamp(9.0) == pytest.approx(0.16)  # jumps back: one period on
    assert clock.stamp(9.04) == pytest.approx(0.20)  # and counts from there
    now[0] = 105.0  # reconnect after an outage: the gap shows
    clock.start_connection(0.1)
    assert [clock.stamp(s) for s in (0.0, 0.1)] == pytest.approx([5.0, 5.1])
    now[0] = 105.0  # an immediate reconnect still moves forward
    clock.start_connection(0.1)
    assert clock.stamp(None) == pytest.approx(5.2)


def test_bad_specs_and_settings_fail_at_once_masked():
    with pytest.raises(InputError, match="not a live source") as err:
        LiveSource("ftp://bob:hunter2@cam/x.mp4")
    assert "hunter2" not in str(err.value) and "***@cam" in str(err.value)
    with pytest.raises(InputError, match="transport") as err:
        LiveSource("rtsp://bob:hunter2@cam/x", transport="sctp")
    assert "hunter2" not in str(err.value)
    for kwargs in ({"stall_timeout": 0}, {"max_retries": -1},
                   {"backoff_initial": 5, "backoff_max": 1}):
        with pytest.raises(InputError):
            LiveSource("rtsp://cam/x", **kwargs)


# -- the camera path (lavfi stands in for /dev/video*) -----------------------------

def test_lavfi_camera_yields_frames_of_requested_size():
    recorder = Recorder()
    with LiveSource("lavfi:testsrc2=size=160x96:rate=25", on_event=recorder) as source:
        assert source.name == "lavfi_testsrc2_size_160x96_rate_25"
        frames = take(source, 12)
        assert (source.info.width, source.info.height) == (160, 96)
        assert source.info.rate == 25
    assert all(f.image.shape == (96, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.pts_ticks is None and f.time_base is None for f in frames)
    assert_continuous(frames)
    assert frames[0].index == 0 and frames[0].pts == 0.0
    assert frames[-1].pts == pytest.approx(11 / 25)
    assert recorder.kinds() == ["connected"]
    assert source.frames_read == 12 and source.connection == 1 and source.reconnects == 0


def test_close_from_another_thread_while_streaming():
    source = LiveSource("lavfi:testsrc2=size=64x48:rate=25")
    got = []
    worker = threading.Thread(target=lambda: got.extend(f.index for f in source))
    worker.start()
    deadline = time.monotonic() + 10
    while len(got) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    source.close()
    worker.join(5)
    assert not worker.is_alive() and len(got) >= 5
    assert got == list(range(len(got)))
    assert list(source) == []


# -- refused connections: no server needed ------------------------------------------

def test_refused_connection_backs_off_then_gives_up_masked(caplog):
    recorder = Recorder()
    url = f"rtsp://bob:{SECRET.replace('%', '%25').replace('/', '%2F').replace('#', '%23')}" \
          f"@127.0.0.1:{free_port()}/cam1"
    source = LiveSource(url, max_retries=3, backoff_initial=0.02, backoff_max=0.05,
                        on_event=recorder)
    with caplog.at_level(logging.INFO, logger="stages.sources.stream"), source:
        with pytest.raises(InputError) as err:
            next(source)
    message = str(err.value)
    assert "gave up after 4 failures in a row" in message and "refused" in message
    assert "\n" not in message and err.value.__cause__ is None
    for text in (message, caplog.text, *(e.message for e in recorder.events)):
        assert "bob" not in text and "s3cr" not in text
    assert "rtsp://***@127.0.0.1" in message
    assert recorder.kinds() == ["retry"] * 3 + ["gave_up"]
    assert [e.delay for e in recorder.events[:3]] == [0.02, 0.04, 0.05]
    assert [e.attempt for e in recorder.events] == [1, 2, 3, 4]


@pytest.mark.parametrize("spec", ["/dev/video63", "63", "lavfi:nosuchsource"])
def test_missing_camera_fails_clearly(spec):
    with LiveSource(spec, max_retries=0) as source:
        with pytest.raises(InputError, match=r"gave up after 1 failure in a row .*cannot connect"):
            next(source)


def test_close_from_another_thread_during_backoff():
    waiting = threading.Event()
    source = LiveSource(f"rtsp://127.0.0.1:{free_port()}/cam1", backoff_initial=30,
                        on_event=lambda e: waiting.set() if e.kind == "retry" else None)
    result = []
    worker = threading.Thread(target=lambda: result.extend(source))
    worker.start()
    assert waiting.wait(10), "no retry event"
    started = time.monotonic()
    source.close()
    worker.join(5)
    assert not worker.is_alive()
    assert time.monotonic() - started < 1.0 and result == []


# -- a real RTSP server ----------------------------------------------------------------

@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_steady_stream_across_server_loops(rtsp_server, tmp_path, transport):
    server = rtsp_server(make_live_clip(tmp_path / "short.mp4", seconds=0.6))  # 15 frames
    with LiveSource(server.url(), transport=transport, stall_timeout=2) as source:
        frames = take(source, 32)
        assert source.info.codec == "h264" and source.info.rate == 25
        assert source.name == f"127.0.0.1_{server.port}_cam1"
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    assert frames[0].index == 0 and frames[0].pts == 0.0
    assert_continuous(frames)
    # two laps of the looping server; the clock follows the stream's 25 fps
    steps = np.diff([f.pts for f in frames])
    assert steps == pytest.approx(np.full(len(steps), 1 / 25), abs=0.002)
    assert all(0 < f.wall <= time.time() for f in frames)


def test_server_restart_reconnects_and_new_size_flows(rtsp_server, tmp_path):
    server = rtsp_server()
    small = make_live_clip(tmp_path / "small.mp4", size=(160, 120))
    recorder = Recorder({"disconnected": lambda e: server.start(small)})
    source = LiveSource(server.url(), stall_timeout=2, backoff_initial=0.05, on_event=recorder)

    def kill_at_ten(frame):
        if frame.index == 10:
            server.kill()

    with source:
        frames = take(source, 40, each=kill_at_ten)
    kinds = recorder.kinds()
    assert kinds[:3] == ["connected", "disconnected", "retry"]
    assert kinds[-1] == "connected" and set(kinds[3:-1]) <= {"retry"}
    reconnected = recorder.events[-1]
    assert reconnected.reconnected and reconnected.size_changed
    assert reconnected.connection == 2 and "size changed from 320x240" in reconnected.message
    assert source.reconnects == 1 and (source.info.width, source.info.height) == (160, 120)
    assert_continuous(frames)
    sizes = [f.size for f in frames]
    assert sizes[0] == (320, 240) and sizes[-1] == (160, 120)
    switch = sizes.index((160, 120))
    assert set(sizes[:switch]) == {(320, 240)} and set(sizes[switch:]) == {(160, 120)}
    assert frames[switch].pts - frames[switch - 1].pts >= 0.04 - 1e-9  # at least one frame period


def test_wrong_path_retries_then_fails_masked(rtsp_server, caplog):
    server = rtsp_server()
    recorder = Recorder()
    url = server.url(user="bob", password=SECRET, mount="/nope")
    with caplog.at_level(logging.INFO, logger="stages.sources.stream"):
        with LiveSource(url, max_retries=2, backoff_initial=0.02, on_event=recorder) as source:
            with pytest.raises(InputError, match="404 Not Found") as err:
                next(source)
    assert recorder.kinds() == ["retry", "retry", "gave_up"]
    for text in (str(err.value), caplog.text):
        assert "bob" not in text and "s3cr" not in text
    assert f"rtsp://***@127.0.0.1:{server.port}/nope" in str(err.value)


def test_basic_auth_right_credentials(rtsp_server):
    server = rtsp_server(user="bob", password=SECRET)
    with LiveSource(server.url(user="bob", password=SECRET), max_retries=0) as source:
        frames = take(source, 5)
    assert_continuous(frames)
    assert frames[0].size == (320, 240)


def test_basic_auth_wrong_credentials_fail_clearly_masked(rtsp_server, caplog):
    server = rtsp_server(user="bob", password=SECRET)
    for url in (server.url(user="bob", password="wrong-" + SECRET), server.url()):
        with caplog.at_level(logging.INFO, logger="stages.sources.stream"):
            with LiveSource(url, max_retries=1, backoff_initial=0.02) as source:
                with pytest.raises(InputError, match="401 Unauthorized") as err:
                    next(source)
        for text in (str(err.value), caplog.text):
            assert "wrong" not in text and "s3cr" not in text and "bob" not in text


@pytest.mark.slow  # about 3 s: the stall takes 2 x stall_timeout to notice
def test_frozen_server_is_noticed_and_reconnects(rtsp_server):
    server = rtsp_server()
    stall_timeout = 1.0
    marks = {}

    def thaw(event):
        marks["stalled"] = time.monotonic()
        server.thaw()

    recorder = Recorder({"stalled": thaw})
    source = LiveSource(server.url(), stall_timeout=stall_timeout, backoff_initial=0.05,
                        on_event=recorder)

    def freeze_at_ten(frame):
        if frame.index == 10:
            marks["frozen"] = time.monotonic()
            server.freeze()

    with source:
        frames = take(source, 25, each=freeze_at_ten)
    noticed = marks["stalled"] - marks["frozen"]
    assert stall_timeout <= noticed < 2 * stall_timeout + 1.0, noticed
    kinds = recorder.kinds()
    assert kinds[:3] == ["connected", "stalled", "retry"] and kinds[-1] == "connected"
    assert "no data for 1 s" in recorder.events[1].message
    assert source.reconnects == 1
    assert_continuous(frames)


# -- tricky credentials: never in names, logs or paths (issue 11, item 14) -----------------

LEAKS = ("dave", "p@ss", "p%40ss", "w0rd", "ss_w0rd")


def assert_no_leak(*texts: str) -> None:
    for text in texts:
        for secret in LEAKS:
            assert secret not in text, (secret, text)


@pytest.mark.parametrize("userinfo_host", [
    "dave:p@ss/w0rd@127.0.0.1:{port}",  # the example: FFmpeg would read host "ss"
    "dave:a/b?c#w0rd@127.0.0.1:{port}",
    "dave:p@ss/w0rd@[::1]:{port}",
    "dave/w0rd@127.0.0.1:{port}",
])
def test_unencoded_slash_in_password_is_rejected_before_connecting_masked(userinfo_host,
                                                                           caplog):
    url = f"rtsp://{userinfo_host.format(port=free_port())}/cam1"
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(InputError, match="ambiguous URL.*percent-encode") as err:
            LiveSource(url)
    message = str(err.value)
    assert message.startswith("rtsp://***@") and "\n" not in message
    assert_no_leak(message, caplog.text)


@pytest.mark.parametrize(("spec", "problem"), [
    ("rtsp://[::1", "unclosed '['"),
    ("rtsp://[::1/cam", "unclosed '['"),
    ("rtsp://[::zz]:8554/cam", "not an IPv6 address"),
    ("rtsp://::1:8554/cam", "needs brackets"),
    ("rtsp://127.0.0.1:99999/cam", "port '99999'"),
    ("rtsp://127.0.0.1:0/cam", "port '0'"),
    ("rtsp://127.0.0.1:80a/cam", "port '80a'"),
    ("rtsp://127.0.0.1:/cam", "empty port"),
    ("rtsp://:8554/cam", "no host"),
    ("rtsp://dave:w0rd@[::1]x/cam", "unexpected 'x'"),
    ("http://cam one/x", "white space"),
])
def test_malformed_urls_fail_at_once_naming_the_input(spec, problem):
    with pytest.raises(InputError) as err:
        validate_live_spec(spec)
    assert problem in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(spec.split("@")[0] if "@" not in spec else "rtsp://***@")
    with pytest.raises(InputError, match=re.escape(problem)):
        LiveSource(spec)  # the source checks its spec when made, before any connection
    assert_no_leak(str(err.value))


@pytest.mark.parametrize("spec", [
    "rtsp://127.0.0.1:8554/cam1", "rtsp://[::1]:8554/cam1", "rtsp://[fe80::1%25eth0]:554/x",
    "rtsp://dave:p@ss:w0rd@cam1.local/x", "rtsp://dave:p%2Fss@cam/x", "http://cam/x.mjpg",
    "lavfi:testsrc2", "/dev/video0", "0",
])
def test_well_formed_specs_pass_validation(spec):
    validate_live_spec(spec)


@pytest.mark.parametrize("name", ["../up", "a/b", ".", "..", "x" * 101, "cam one", "rtsp://u:p@h/x"])
def test_source_names_must_be_plain_file_names(name):
    with pytest.raises(InputError, match="names the output folder"):
        LiveSource("lavfi:testsrc2", name=name)


@pytest.mark.parametrize(("password", "encode"), [
    ("p@ss:w0rd", False),  # "@" and ":" unencoded: FFmpeg takes the last "@" before the path
    ("p@ss/w0rd?#%", True),  # the password, percent-encoded
])
def test_tricky_password_never_reaches_names_logs_or_paths(rtsp_server, tmp_path, caplog,
                                                           password, encode):
    server = rtsp_server(user="dave", password=password)
    url = (server.url(user="dave", password=password) if encode
           else f"rtsp://dave:{password}@127.0.0.1:{server.port}/cam1")
    outdir = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        with LiveSource(url, max_retries=0) as source, \
                SegmentedOutputs(outdir, source.name) as outputs:
            for frame in take(source, 5):
                outputs.write(Result(frame, ()))
            assert source.name == f"127.0.0.1_{server.port}_cam1"
            texts = [source.name, source.masked_url, repr(source),
                     *(e.message for e in source.events)]
    paths = [str(p.relative_to(tmp_path)) for p in outdir.rglob("*")]
    assert len(paths) == 3  # the folder and one segment's pair
    assert_no_leak(*texts, *paths, caplog.text)
    assert "rtsp://***@127.0.0.1" in caplog.text


def test_tricky_password_to_an_ipv6_host_fails_masked(caplog):
    url = f"rtsp://dave:p@ss:w0rd@[::1]:{free_port()}/cam1"
    with caplog.at_level(logging.DEBUG):
        with LiveSource(url, max_retries=0) as source:
            assert source.name == f"--1_{url.rsplit(':', 1)[1].split('/')[0]}_cam1"
            with pytest.raises(InputError, match="gave up") as err:
                next(source)
    assert "rtsp://***@[::1]:" in str(err.value)
    assert_no_leak(str(err.value), caplog.text, source.name)


# -- a lavfi source runs in real time, like the camera it stands in for (issue 11, item 16) --

def test_pacer_releases_frames_on_their_schedule():
    now = [50.0]
    pacer = RealTimePacer(now=lambda: now[0], max_lag=1.0)
    assert pacer.delay(10.0) == 0.0  # the first frame goes at once
    assert pacer.delay(10.04) == pytest.approx(0.04)
    now[0] = 50.04
    assert pacer.delay(10.04) == 0.0
    assert pacer.delay(10.5) == pytest.approx(0.46)
    now[0] = 50.6  # a little late: no wait, schedule kept
    assert pacer.delay(10.5) == 0.0 and pacer.delay(10.64) == pytest.approx(0.04)
    now[0] = 55.0  # far behind: the schedule restarts instead of a burst
    assert pacer.delay(10.68) == 0.0 and pacer.delay(10.72) == pytest.approx(0.04)
    assert pacer.delay(None) == 0.0


def test_lavfi_source_delivers_frames_no_faster_than_its_rate():
    rate, count = 25, 26  # about one second of a 25 fps test pattern
    with LiveSource(f"lavfi:testsrc2=size=64x48:rate={rate}") as source:
        frames = take(source, count)
    elapsed = frames[-1].wall - frames[0].wall
    assert elapsed >= (count - 1) / rate - 0.01  # unpaced, 26 frames of 64x48 take ~10 ms
    for i, frame in enumerate(frames):  # and none came before its time
        assert frame.wall - frames[0].wall >= i / rate - 0.01, (i, frame.wall - frames[0].wall)
    assert [f.pts for f in frames] == pytest.approx([i / rate for i in range(count)])


def test_lavfi_source_read_for_a_second_gives_about_rate_frames():
    rate = 25
    with LiveSource(f"lavfi:testsrc2=size=64x48:rate={rate}") as source:
        started = time.monotonic()
        read = 0
        for _ in source:
            read += 1
            if time.monotonic() - started >= 1.0:
                break
        elapsed = time.monotonic() - started
    assert read <= rate * elapsed + 2, (read, elapsed)


def test_closing_a_paced_slow_lavfi_source_is_prompt():
    source = LiveSource("lavfi:testsrc2=size=64x48:rate=0.2")  # one frame per 5 s
    got = threading.Event()
    worker = threading.Thread(target=lambda: [got.set() for _ in source])
    worker.start()
    assert got.wait(10), "no first frame"
    started = time.monotonic()
    source.close()  # the reader is waiting for the second frame's time
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - started < 1.0


def test_a_fast_pipeline_on_a_lavfi_camera_is_not_flooded(tmp_path):
    """Through a whole live job: the source gives no more than rate x elapsed frames."""
    from stages.settings import JobConfig
    from stages.jobs.live import LiveJob
    from stages.settings import LiveConfig

    rate = 25
    job = LiveJob([(f"lavfi:testsrc2=size=64x48:rate={rate}", "pattern")], tmp_path / "out",
                  JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48)),
                  LiveConfig())
    seen = threading.Event()
    started = time.monotonic()
    runner = threading.Thread(target=job.run, kwargs={"on_result": lambda r: (
        seen.set() if r.frame.index >= rate else None)}, daemon=True)
    runner.start()
    try:
        assert seen.wait(30), "no second of frames"
    finally:
        job.cancel()
        runner.join(30)
    elapsed = time.monotonic() - started
    stats = job.stats["pattern"]
    assert not runner.is_alive() and stats.frames > 0
    # unpaced, a 64x48 pattern came at thousands of frames a second, nearly all dropped
    assert stats.frames + stats.dropped <= rate * elapsed + 5, (stats.frames, stats.dropped)
