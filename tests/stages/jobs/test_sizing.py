"""Sizing: the arithmetic from given measurements, and the measuring window on a fake network."""

import os

import pytest

import models.devices
from stages.jobs.sizing import (EngineChoice, Measurement, Sizing, _elsewhere, cameras,
                                hours_per_hour, machine_facts, measure_run)
from stages.outputs.sample import make_test_clip
from stages.settings import JobConfig

FAKE = "tests.support.fakes:ZeroBackend"


def _m(engine, mode, size, video, fps, elsewhere=None):
    return Measurement(engine, mode, size, video, fps, frames=20, seconds=2.0, load_seconds=1.0,
                       workers=2 if mode == "files" else 1, elsewhere=elsewhere)


# openvino measured in both arrangements; tf once (the same plan for files and cameras)
RUNS = (
    _m("openvino f32", "files", "720p", True, 10.0), _m("openvino f32", "files", "720p", False, 12.5),
    _m("openvino f32", "cameras", "720p", True, 8.0), _m("openvino f32", "cameras", "720p", False, 12.5),
    _m("tf f32", "files", "720p", True, 5.0), _m("tf f32", "files", "720p", False, 6.0),
)


def test_cameras_are_the_rate_less_the_headroom_over_each_cameras_fps():
    assert cameras(10.0, 5.0, 0.0) == 2
    assert cameras(10.0, 5.0, 0.2) == 1  # 8 FPS of 10 left for cameras: one at 5
    assert cameras(12.5, 5.0, 0.2) == 2  # exactly 10 FPS: two, not 1.9999...
    assert cameras(4.0, 5.0, 0.0) == 0
    assert cameras(30.0, 1.0, 0.5) == 15


@pytest.mark.parametrize("fps, headroom", [(0.0, 0.2), (-5.0, 0.2), (5.0, 1.0), (5.0, -0.1)])
def test_camera_fps_and_headroom_out_of_bounds_are_refused(fps, headroom):
    with pytest.raises(ValueError):
        cameras(10.0, fps, headroom)


def test_hours_per_hour_is_the_rate_over_the_videos_frame_rate():
    assert hours_per_hour(12.5, 25.0) == pytest.approx(0.5)
    assert hours_per_hour(60.0, 30.0) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        hours_per_hour(10.0, 0.0)


def test_cameras_come_from_the_live_arrangement_and_hours_from_the_files_one():
    sizing = Sizing(measurements=RUNS, camera_fps=5.0, video_fps=25.0, headroom=0.2)
    cams = {r.engine: (r.video, r.no_video) for r in sizing.camera_rows()}
    hours = {r.engine: (r.video, r.no_video) for r in sizing.hour_rows()}
    assert cams["openvino f32"] == (1, 2)  # 8 and 12.5 FPS in the live arrangement, at 80%
    assert hours["openvino f32"] == pytest.approx((0.4, 0.5))  # 10 and 12.5 FPS over 25
    # tf was measured once: its cameras come from that run (6 FPS * 0.8 / 5 -> 0)
    assert cams["tf f32"] == (0, 0)
    assert hours["tf f32"] == pytest.approx((0.2, 0.24))


def test_a_size_or_choice_not_measured_is_none_not_zero():
    sizing = Sizing(measurements=RUNS[:3], camera_fps=5.0)  # no --no-video run of cameras
    [row] = sizing.camera_rows()
    assert (row.video, row.no_video) == (1, None)
    assert sizing.fps("openvino f32", "files", "1080p", True) is None


def test_other_camera_rates_and_headroom_change_only_the_camera_counts():
    sizing = Sizing(measurements=RUNS, camera_fps=2.0, video_fps=30.0, headroom=0.0)
    assert {r.engine: r.video for r in sizing.camera_rows()} == {"openvino f32": 4, "tf f32": 2}
    assert {r.engine: r.video for r in sizing.hour_rows()} == pytest.approx(
        {"openvino f32": 10 / 30, "tf f32": 5 / 30})


def test_sizing_refuses_bad_settings():
    with pytest.raises(ValueError):
        Sizing(measurements=RUNS, camera_fps=0.0)
    with pytest.raises(ValueError):
        Sizing(measurements=RUNS, video_fps=-1.0)


def test_as_dict_holds_settings_figures_and_measurements():
    d = Sizing(measurements=RUNS, camera_fps=5.0).as_dict()
    assert d["camera_fps"] == 5.0 and d["video_fps"] == 25.0 and d["headroom"] == 0.2
    assert len(d["measurements"]) == len(RUNS) and d["measurements"][0]["fps"] == 10.0
    assert {"engine": "openvino f32", "size": "720p", "video": 1, "no_video": 2} in d["cameras"]


def test_openvino_on_several_cores_is_measured_in_both_arrangements_tf_once(monkeypatch):
    monkeypatch.setattr(models.devices, "usable_cores", lambda: 4)
    ov, tf = EngineChoice("openvino", "f32"), EngineChoice("tf", "f32")
    assert ov.modes() == ("files", "cameras") and tf.modes() == ("files",)
    assert ov.config((432, 368), "files", video=True).workers == 0  # the program chooses: 4
    assert ov.plan(latency=False).workers == 4
    live = ov.config((432, 368), "cameras", video=False)
    assert live.workers == 1 and live.video is False and live.precision == "f32"
    assert str(EngineChoice("tf", "f32", "gpu")) == "tf f32 on gpu" and str(ov) == "openvino f32"


def test_a_run_is_measured_after_its_warm_up_and_stopped_once_the_window_is_full(tmp_path):
    clip = make_test_clip(tmp_path / "long.mp4", frames=400, size=(64, 48))
    config = JobConfig(backend=FAKE, resolution=(64, 48), video=False)
    w = measure_run(clip, tmp_path / "out", config, seconds=0.05, warmup_frames=5,
                    warmup_seconds=0.0)
    assert 2 <= w.frames < 400 - 5  # stopped before the end of the clip
    assert w.fps == pytest.approx(w.frames / w.seconds) and w.seconds >= 0.05 and w.load_seconds >= 0
    assert w.elsewhere is None or 0 <= w.elsewhere <= 1


def test_a_clip_shorter_than_the_warm_up_is_measured_over_its_second_half(tmp_path):
    clip = make_test_clip(tmp_path / "short.mp4", frames=12, size=(64, 48))
    config = JobConfig(backend=FAKE, resolution=(64, 48), video=True)
    w = measure_run(clip, tmp_path / "out", config, seconds=10.0, warmup_frames=100)
    assert w.frames == 12 - 1 - 6 and w.fps > 0


def test_machine_facts_name_the_cpu_and_the_flags_that_decide_its_speed(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Some CPU 9000\nflags\t\t: fpu sse2 avx2 avx512f "
                       "avx512_vnni amx_tile fma\n")
    facts = machine_facts(cpuinfo)
    assert facts["cpu"] == "Some CPU 9000" and facts["cores"] >= 1
    assert facts["flags"] == ["amx_tile", "avx2", "avx512_vnni", "avx512f"]


def test_the_share_other_programs_took_is_the_machines_cpu_less_ours():
    # 2 s on this many CPUs: the machine used 3 CPU seconds, this process 1
    cores = os.cpu_count()
    assert _elsewhere([(10.0, 5.0), (13.0, 6.0)], 2.0) == pytest.approx(2.0 / (2.0 * cores))
    assert _elsewhere([(10.0, 5.0), (10.5, 6.0)], 2.0) == 0.0  # never below 0
    assert _elsewhere([None, (13.0, 6.0)], 2.0) is None and _elsewhere([(1.0, 1.0)], 2.0) is None


def test_the_mean_share_elsewhere_is_of_the_runs_that_know_it():
    runs = (_m("a", "files", "720p", True, 5.0, 0.1), _m("a", "files", "720p", False, 5.0, 0.3),
            _m("a", "files", "1080p", True, 5.0, None))
    assert Sizing(measurements=runs).elsewhere() == pytest.approx(0.2)
    assert Sizing(measurements=runs[2:]).elsewhere() is None
