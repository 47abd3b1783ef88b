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


# -- misuse: accepted in its natural form, or one clear UsageError at the call (issue 21, item 20) --

import os  # noqa: E402

import pytest  # noqa: E402

from stages.errors import UsageError  # noqa: E402
from stages.settings import LiveConfig  # noqa: E402


def test_natural_forms_of_the_settings_are_accepted():
    assert JobConfig(resolution="432x368").resolution == (432, 368)
    assert JobConfig(formats="csv").formats == ("csv",)


def test_a_setting_of_the_wrong_type_is_one_usage_error():
    with pytest.raises(UsageError, match=r"--workers '2': must be a whole number"):
        JobConfig(workers="2")


@pytest.mark.parametrize("call, named", [
    (lambda clip: results(clip, config="x"), "config='x': expected a JobConfig, not str"),
    (lambda clip: run(clip, "out", config={"workers": 2}), "expected a JobConfig, not dict"),
    (lambda clip: results(123, config=FAKE), "results(123): expected a file path or a source string"),
    (lambda clip: run(123, "out", config=FAKE), "run(123): expected a file path"),
    (lambda clip: run(clip, 7, config=FAKE), "run(outdir=7): expected a folder path"),
    (lambda clip: run("lavfi:testsrc", "out", config=FAKE), "run() takes files; lavfi:testsrc is a live"),
    (lambda clip: run("rtsp://u:secret@cam/x", "out", config=FAKE), "rtsp://***@cam/x is a live"),
    (lambda clip: results("lavfi:testsrc", config=FAKE, live="x"), "expected a LiveConfig, not str"),
    (lambda clip: results(clip, config=FAKE, live={"mirror": True}), "expected a LiveConfig, not dict"),
])
def test_misuse_is_one_usage_error_at_the_call_before_any_thread(tmp_path, call, named):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=3)
    before = threading.active_count()
    with pytest.raises(UsageError) as caught:
        call(clip)  # results() too: at the call, not at the first next()
    assert named in str(caught.value) and "\n" not in str(caught.value)
    assert threading.active_count() == before
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_a_path_like_input_is_taken(tmp_path):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=3)
    assert len(list(results(clip, config=FAKE, live=None))) == 3
    assert run(str(clip), str(tmp_path / "out"), config=FAKE).frames_written == 3
