"""An HTTP stream (MPEG-TS over HTTP from a server on 127.0.0.1 that the test starts)."""

import pytest

from stages.sources.stream import LiveSource
from stages.outputs.sample import make_test_clip
from tests.stages.sources.test_stream import Recorder, assert_continuous, take
from tests.support.file_server import serve_folder


@pytest.fixture
def http_clip(tmp_path):
    """Serves tmp_path over HTTP on a free loopback port; yields the clip's URL."""
    make_test_clip(tmp_path / "clip.ts", frames=25, size=(160, 120), faststart=False)
    with serve_folder(tmp_path) as base:
        yield f"{base}/clip.ts"


def test_http_stream_plays_and_an_ended_stream_is_reconnected(http_clip):
    recorder = Recorder()
    source = LiveSource(http_clip, stall_timeout=2.0, backoff_initial=0.05, on_event=recorder)
    with source:
        frames = take(source, 60)  # 25 per pass: the stream ended twice and came back
    assert_continuous(frames)
    assert frames[0].size == (160, 120)
    assert source.reconnects >= 2
    assert recorder.kinds()[:3] == ["connected", "disconnected", "retry"]
