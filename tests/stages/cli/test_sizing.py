"""posestream-size's options and report, from given measurements (nothing is measured here)."""

import json

import pytest

import run_stream
from stages.cli import sizing as cli
from stages.errors import InputError
from stages.jobs.sizing import EngineChoice, Measurement, Sizing
from stages.version import version

MACHINE = {"cores": 2, "cpu": "Some CPU 9000", "flags": ["avx2"]}


def _m(engine, mode, size, video, fps, load=1.0):
    return Measurement(engine, mode, size, video, fps, frames=20, seconds=2.0, load_seconds=load,
                       workers=2 if mode == "files" else 1)


SIZING = Sizing(measurements=(
    _m("openvino int8", "files", "720p", True, 10.0), _m("openvino int8", "files", "720p", False, 12.5),
    _m("openvino int8", "files", "1080p", True, 6.0), _m("openvino int8", "files", "1080p", False, 9.0),
    _m("openvino int8", "cameras", "720p", True, 8.0, load=21.0),
    _m("openvino int8", "cameras", "720p", False, 10.0),
    _m("openvino int8", "cameras", "1080p", True, 5.0), _m("openvino int8", "cameras", "1080p", False, 7.5),
), camera_fps=2.0, video_fps=25.0, headroom=0.2)


def _report(sizing=SIZING, **kwargs):
    return cli.report(sizing, {"posestream_version": "9.9.9", "machine": MACHINE,
                               "resolution": "432x368", "seconds_per_run": 2.0, "seconds": 40.0,
                               "left_out": kwargs.get("left_out", [])})


def _row(text: str, title: str, engine: str) -> list[str]:
    """The cells of ``engine``'s line in the table under the line starting with ``title``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    words = engine.split()
    line = next(line for line in lines[start + 2:] if line.split()[:len(words)] == words)
    return line.split()[len(words):]


def test_the_report_says_cameras_and_hours_per_size_with_and_without_the_video():
    text = _report()
    # cameras at 2 FPS, 80% of 8 / 10 / 5 / 7.5 FPS
    assert _row(text, "cameras at 2 FPS each", "openvino int8") == ["3", "4", "2", "3"]
    # hours of 25 FPS video per hour: 10 / 12.5 / 6 / 9 FPS over 25
    assert _row(text, "hours of 25 FPS video", "openvino int8") == ["0.40", "0.50", "0.24", "0.36"]
    assert _row(text, "measured, frames per second", "openvino int8 cameras") == [
        "1", "8.0", "10.0", "5.0", "7.5", "21.0", "s"]
    head = next(line for line in text.splitlines() if line.strip().startswith("engine"))
    assert head.split()[1:] == ["720p", "720p", "--no-video", "1080p", "1080p", "--no-video"]


def test_the_report_names_the_machine_its_flags_and_what_was_left_out():
    text = _report(left_out=["tf: not installed"])
    assert "machine: 2 cores, Some CPU 9000; CPU flags: avx2" in text
    assert "left out: tf: not installed" in text
    assert "432x368" in text and "using 80% of its measured rate" in text
    assert "posestream-size 9.9.9: " in text and "took 40 s: 8 runs of 2 s after a warm-up" in text


def test_json_holds_the_figures_and_the_facts(tmp_path):
    path = tmp_path / "size.json"
    cli.write_json(path, SIZING, machine=MACHINE, resolution="432x368")
    document = json.loads(path.read_text())
    assert document["machine"] == MACHINE and document["camera_fps"] == 2.0
    assert {"engine": "openvino int8", "size": "1080p", "video": 2, "no_video": 3} in document["cameras"]
    assert len(document["measurements"]) == 8
    assert [p.name for p in tmp_path.iterdir()] == ["size.json"]


def test_engines_are_read_as_backend_precision_and_device():
    assert cli.engines("openvino:int8, tf:f32:gpu") == (
        [EngineChoice("openvino", "int8"), EngineChoice("tf", "f32", "gpu")], [])


@pytest.mark.parametrize("text", ["openvino", "openvino:", ":f32", "a:b:c:d", ","])
def test_engines_not_written_backend_precision_are_refused(text):
    with pytest.raises(InputError, match="--engines"):
        cli.engines(text)


def test_sizes_are_read_in_order_and_unknown_or_repeated_ones_refused():
    assert cli.sizes("1080p, 720P") == ["1080p", "720p"]
    for text in ("480p", "720p,720p", ""):
        with pytest.raises(InputError, match="--sizes"):
            cli.sizes(text)


def test_defaults_are_five_fps_cameras_and_25_fps_videos():
    args = cli.build_parser().parse_args([])
    assert (args.camera_fps, args.video_fps, args.headroom) == (5.0, 25.0, 0.2)
    assert args.resolution == "432x368" and cli.sizes(args.sizes) == ["720p", "1080p"]
    cli.check(args)


@pytest.mark.parametrize("argv", [["--camera-fps", "0"], ["--headroom", "0.95"], ["--seconds", "0.1"],
                                  ["--resolution", "430x368"], ["--sizes", "4k"],
                                  ["--engines", "openvino"], ["--video-fps", "-25"],
                                  ["--json", "/no/such/folder/size.json"]])
def test_out_of_bounds_values_exit_2_with_one_line_and_measure_nothing(argv, capsys):
    assert run_stream.size_main(argv) == run_stream.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("posestream-size: error: ") and err.count("\n") == 1


def test_version_is_posestreams(capsys):
    assert run_stream.size_main(["--version"]) == 0
    assert capsys.readouterr().out == f"posestream-size {version()}\n"


def test_a_busy_machine_is_said_and_a_quiet_one_is_not():
    busy = Sizing(measurements=tuple(
        Measurement(m.engine, m.mode, m.size, m.video, m.fps, m.frames, m.seconds, m.load_seconds,
                    m.workers, elsewhere=0.35) for m in SIZING.measurements))
    assert "warning: other programs used 35% of the CPU while measuring" in _report(busy)
    assert "warning" not in _report()  # not known: nothing said
