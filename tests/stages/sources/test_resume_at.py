"""A file source that resumes at a frame (a run going on from a checkpoint): the frames from
there are those of a whole read, by seeking where that keeps every index, else by decoding."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from stages.sources.video import open_source

SELECTIONS = {"all": {}, "step": {"frame_step": 3}, "range": {"start": 1.3, "end": 5.0},
              "step-and-range": {"frame_step": 4, "start": 0.9}}


def _frames(path, **kwargs):
    with open_source(path, **kwargs) as source:
        frames = list(source)
    return source, frames


def _same(ours, theirs) -> bool:
    return ([(f.index, f.pts_ticks) for f in ours] == [(f.index, f.pts_ticks) for f in theirs]
            and all(np.array_equal(a.image, b.image) for a, b in zip(ours, theirs)))


@pytest.mark.parametrize("selection", SELECTIONS.values(), ids=SELECTIONS.keys())
def test_a_resumed_source_gives_the_frames_of_a_whole_read_from_there(tiny_clip, selection):
    clip = tiny_clip(frames=150, fps=Fraction(25))
    _, whole = _frames(clip, **selection)
    at = whole[len(whole) // 2]
    seeked, resumed = _frames(clip, resume_at=at.index, resume_pts=at.pts, **selection)
    assert _same(resumed, whole[len(whole) // 2:])
    assert seeked.seeked  # straight there: the clip is CFR and lost nothing
    assert seeked.frames_read == len(resumed) and seeked.info.frames == len(whole)
    decoded, again = _frames(clip, resume_at=at.index, **selection)  # no pts: decoded up to it
    assert _same(again, resumed)
    assert decoded.seeked == ("start" in selection)
    assert seeked.frames_decoded <= decoded.frames_decoded


def test_a_variable_rate_file_is_decoded_up_to_the_frame(tiny_clip):
    clip = tiny_clip(pts=[0, 3, 7, 8, 15, 16, 30, 31, 40, 52, 60, 61], time_base=Fraction(1, 100))
    _, whole = _frames(clip)
    source, resumed = _frames(clip, resume_at=7, resume_pts=whole[7].pts)
    assert _same(resumed, whole[7:]) and not source.seeked
