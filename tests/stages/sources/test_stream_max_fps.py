"""``max_fps`` on a live source: frames beyond the cap are dropped at the source and counted."""

from __future__ import annotations

import pytest

from stages.errors import InputError
from stages.sources.stream import LiveSource


def test_a_25_fps_camera_capped_at_5_fps():
    count = 10  # about two seconds of a paced 25 fps test pattern
    with LiveSource("lavfi:testsrc2=size=64x48:rate=25", max_fps=5) as source:
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == count:
                break
    # every picture is either handed out or counted as dropped
    pictures = frames[-1].index + 1
    assert source.frames_read + source.rate_dropped == pictures
    assert source.frames_read == count
    assert 30 <= source.rate_dropped <= 42  # about 4 of every 5 pictures
    assert [f.pts for f in frames] == pytest.approx([i * 0.2 for i in range(count)], abs=0.05)
    elapsed = frames[-1].wall - frames[0].wall
    assert 3.5 <= (count - 1) / elapsed <= 6.5, elapsed  # delivered at about 5 fps


def test_no_cap_drops_nothing():
    with LiveSource("lavfi:testsrc2=size=64x48:rate=50") as source:
        frames = [f for _, f in zip(range(5), source)]
    assert [f.index for f in frames] == list(range(5)) and source.rate_dropped == 0


@pytest.mark.parametrize("bad", [0, -5, float("nan")])
def test_bad_caps_fail_at_once(bad):
    with pytest.raises(InputError, match="--max-fps"):
        LiveSource("lavfi:testsrc2", max_fps=bad)
