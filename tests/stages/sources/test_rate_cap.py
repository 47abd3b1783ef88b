"""The live rate cap, on exact timelines."""

from __future__ import annotations

import pytest

from stages.sources._rate_cap import RateCap


def kept(cap: RateCap, times) -> list[float]:
    return [t for t in times if cap.admit(t)]


def test_25_fps_capped_at_5_keeps_every_fifth_frame():
    times = [i / 25 for i in range(100)]
    assert kept(RateCap(5), times) == times[::5]


def test_30_fps_capped_at_25_keeps_25_per_second():
    times = [i / 30 for i in range(300)]
    assert len(kept(RateCap(25), times)) == 250


def test_a_cap_above_the_rate_keeps_everything():
    times = [i / 25 for i in range(50)]
    assert kept(RateCap(30), times) == times


def test_jittery_arrivals_still_average_the_cap():
    times = [i / 25 + (0.01 if i % 2 else -0.01) for i in range(250)]
    assert len(kept(RateCap(5), sorted(times))) in range(49, 52)


def test_no_burst_after_an_outage():
    times = [i / 25 for i in range(25)] + [60 + i / 25 for i in range(25)]
    got = kept(RateCap(5), times)
    assert len(got) == 10
    assert [t for t in got if t >= 60] == pytest.approx([60, 60.2, 60.4, 60.6, 60.8])


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "5"])
def test_bad_caps_are_refused(bad):
    with pytest.raises(ValueError, match="max_fps"):
        RateCap(bad)
