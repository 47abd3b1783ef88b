import threading

from stages.api import results, run
from stages.settings import JobConfig
from stages.outputs.sample import make_test_clip

FAKE = JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), workers=2)


def test_results_yields_every_frame_in_order_and_writes_nothing(tmp_path):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=20)
    out = list(results(clip, config=FAKE))
    assert [r.frame.index for r in out] == list(range(20))
    assert all(r.people == () and r.image is None for r in out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_leaving_the_loop_early_stops_the_pipeline(tmp_path):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=200)
    before = threading.active_count()
    for r in results(clip, config=FAKE, render=True):
        assert r.image is not None
        if r.frame.index == 3:
            break
    assert threading.active_count() <= before


def test_run_writes_the_outputs(tmp_path):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=5)
    summary = run(clip, tmp_path / "out", config=FAKE)
    assert summary.frames_written == 5
    assert (tmp_path / "out" / "clip.mp4").exists() and (tmp_path / "out" / "clip.jsonl").exists()
