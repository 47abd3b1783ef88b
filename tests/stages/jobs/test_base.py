"""What every job shares: a run shows its drawn pictures through the views its ``run`` is given."""

import dataclasses

import pytest

from stages.errors import InputError
from stages.jobs.base import Views
from stages.jobs.batch import BatchJob
from stages.jobs.file_job import FileJob
from stages.jobs.live import LiveJob
from stages.outputs.sample import make_test_clip
from stages.settings import JobConfig, LiveConfig
from stages.sources.inputs import expand_inputs

# no video written: the pictures are drawn for the views alone
FAKE = JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), video=False)


class Seen:
    """A view's step: notes each drawn picture that reaches it."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, int]] = []

    def __call__(self, result):
        assert result.image is not None
        self.frames.append((result.frame.source, result.frame.index))
        return result


def test_views_are_the_sinks_given_preview_first():
    preview, show = Seen(), Seen()
    assert Views().sinks() == []
    assert Views(show=show).sinks() == [("show", show)]
    assert Views(preview=preview, show=show).sinks() == [("preview", preview), ("show", show)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Views().show = show


def test_a_file_run_shows_every_frame_it_writes(tmp_path):
    clip = make_test_clip(tmp_path / "a.mp4", frames=5, size=(64, 48))
    preview, show, written = Seen(), Seen(), []
    job = FileJob(clip, tmp_path / "out", FAKE)
    summary = job.run(on_result=lambda r: written.append((r.frame.source, r.frame.index)),
                      views=Views(preview=preview, show=show))
    assert summary.frames_written == 5
    assert preview.frames == show.frames == written and len(written) == 5


def test_a_file_run_without_views_draws_nothing(tmp_path):
    clip = make_test_clip(tmp_path / "a.mp4", frames=3, size=(64, 48))
    drawn = []
    FileJob(clip, tmp_path / "out", FAKE).run(on_result=lambda r: drawn.append(r.image))
    assert drawn == [None] * 3


def test_a_batch_run_shows_every_frame_of_every_file(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_test_clip(tmp_path / "in" / name, frames=3, size=(64, 48))
    show = Seen()
    reports = BatchJob(expand_inputs([str(tmp_path / "in")]), tmp_path / "out", FAKE).run(
        views=Views(show=show))
    assert {r.status for r in reports.values()} == {"done"}
    assert sorted(show.frames) == [(key, i) for key in sorted(reports) for i in range(3)]


def test_a_live_run_shows_every_frame_it_writes(tmp_path):
    job = LiveJob([("lavfi:testsrc2=size=64x48:rate=25:duration=1", "cam")], tmp_path / "out",
                  FAKE, LiveConfig(max_retries=0))
    preview = Seen()
    with pytest.raises(InputError, match="gave up"):  # the test source ends: it is given up
        job.run(views=Views(preview=preview))
    assert len(preview.frames) == job.monitors["cam"].frames > 0
    assert {source for source, _ in preview.frames} == {"cam"}
