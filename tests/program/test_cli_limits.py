"""Bounds of the options and the messages of bad settings (issue 11, items 12 and 15).

Every bad setting is one line naming the option (and the config file where
it came from one), a non-zero exit, before any model copy loads, and nothing
written. A marker backend (a module made in the test) notes when a copy loads.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_stream
from models.graph_file import check_frozen_graph
from stages.errors import InputError
from stages.settings import JobConfig, MAX_SIDE, MIN_SIDE, max_cpu_workers
from stages.settings import LiveConfig
from stages.outputs.sample import make_test_clip

ROOT = Path(__file__).resolve().parents[2]

MARKER_BACKEND = """
import os
from pathlib import Path

from tests.support.fakes import ZeroBackend


class Marker(ZeroBackend):
    '''A zero backend that notes each load in $MARKER_FILE.'''

    def __init__(self, config):
        Path(os.environ["MARKER_FILE"]).touch()
        super().__init__(config)


class SlowLoad(ZeroBackend):
    '''Loads only once $MARKER_FILE.go exists, after noting the load began in $MARKER_FILE.'''

    def __init__(self, config):
        Path(os.environ["MARKER_FILE"]).touch()
        while not Path(os.environ["MARKER_FILE"] + ".go").exists():
            __import__("time").sleep(0.01)
        super().__init__(config)
"""


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    """The file a ``markerbackend:Marker`` copy creates when it loads."""
    (tmp_path / "markerbackend.py").write_text(MARKER_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MARKER_FILE", str(tmp_path / "loaded"))
    return tmp_path / "loaded"


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = run_stream.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line(code: int, err: str, *named: str) -> str:
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("posestream: error: "), err
    for text in named:
        assert text in lines[0], err
    return lines[0]


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_test_clip(tmp_path / "clip.mp4", frames=3, size=(64, 48))


# -- bounds (item 12) ------------------------------------------------------------------------------

BOUNDS = {
    "a thousand workers": (["--workers", "1000"], f"--workers 1000: at most {max_cpu_workers()}"),
    "8x8": (["--resolution", "8x8"], f"--resolution 8x8: each side must be {MIN_SIDE} to {MAX_SIDE}"),
    "4000x4000": (["--resolution", "4000x4000"], "--resolution 4000x4000: each side must be"),
    "one side too long": (["--resolution", "4096x368"], "--resolution 4096x368"),
    "no file in flight": (["--files-in-flight", "0"], "--files-in-flight 0: must be 1 to 32"),
    "too many files in flight": (["--files-in-flight", "1000"], "--files-in-flight 1000"),
    "huge batch": (["--batch", "100000"], "--batch 100000: must be 1 to 64"),
    "huge queues": (["--queue-size", "1000000"], "--queue-size 1000000: must be 1 to 64"),
    "batch timeout nan": (["--batch-timeout", "nan"], "--batch-timeout nan"),
    "unknown x264 preset": (["--preset", "nosuch"], "--preset 'nosuch': expected one of x264's presets"),
}


@pytest.mark.parametrize("case", list(BOUNDS))
def test_out_of_bounds_options_are_one_line_before_any_model_loads(tmp_path, capsys, marker, clip, case):
    args, named = BOUNDS[case]
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", "--backend", "markerbackend:Marker", *args)
    _assert_one_line(code, err, named)
    assert not marker.exists() and not (tmp_path / "out").exists()


LIVE_BOUNDS = {
    "no live queue": (["--live-queue", "0"], "--live-queue 0: must be 1 to 100"),
    "endless stall timeout": (["--stall-timeout", "inf"], "--stall-timeout inf"),
    "nan segment": (["--segment", "nan"], "--segment nan"),
}


@pytest.mark.parametrize("case", list(LIVE_BOUNDS))
def test_out_of_bounds_live_options_are_one_line(tmp_path, capsys, marker, case):
    args, named = LIVE_BOUNDS[case]
    code, out, err = _cli(capsys, "lavfi:testsrc2=size=64x48:rate=5", "-o", tmp_path / "out",
                          "--backend", "markerbackend:Marker", *args)
    _assert_one_line(code, err, named)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_the_bounds_hold_for_the_api_too():
    with pytest.raises(InputError, match="each side must be"):
        JobConfig(resolution=(8, 8))
    with pytest.raises(InputError, match="--workers"):
        JobConfig(workers=max_cpu_workers() + 1)
    with pytest.raises(InputError, match="--preset"):
        JobConfig(preset="fastest")
    with pytest.raises(InputError, match="--live-queue"):
        LiveConfig(queue_size=0)
    assert JobConfig(resolution=(MIN_SIDE, MAX_SIDE), workers=max_cpu_workers(), preset="placebo")


# -- config files (item 15) ------------------------------------------------------------------------

CONFIGS = {
    "resolution as an array": (b"resolution = [432, 368]\n",
                               "'resolution' must be a string (WxH), not an array [432, 368]"),
    "fractional workers": (b"workers = 2.7\n", "'workers' must be a whole number, not a float 2.7"),
    "boolean stall timeout": (b"stall-timeout = true\n",
                              "'stall-timeout' must be a number, not a boolean true"),
    "number as a path": (b"outdir = 3\n", "'outdir' must be a string, not an integer 3"),
    "not UTF-8": (b"workers = 2\n# caf\xe9\n", "not UTF-8 text (byte 17)"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_config_file_values_of_the_wrong_type_name_key_and_file(tmp_path, capsys, marker, clip, case):
    text, named = CONFIGS[case]
    cfg = tmp_path / "run.toml"
    cfg.write_bytes(text)
    code, out, err = _cli(capsys, "--config", cfg, clip, "-o", tmp_path / "out",
                          "--backend", "markerbackend:Marker")
    _assert_one_line(code, err, f"--config {cfg}: ", named)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_config_file_numbers_of_the_right_type_still_work(tmp_path, capsys, clip):
    cfg = tmp_path / "run.toml"
    cfg.write_text('workers = 2\nstall-timeout = 3\nbatch-timeout = 0.5\nresolution = "64x48"\n')
    code, out, err = _cli(capsys, "--config", cfg, clip, "-o", tmp_path / "out",
                          "--backend", "tests.support.fakes:ZeroBackend")
    assert code == 0, err
    assert "(2 workers)" in out and "at 64x48" in out


# -- messages at start (item 15) -------------------------------------------------------------------

def _summary_targets(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "a-file").write_text("x")
    return {
        "missing folder": (tmp_path / "nope" / "s.json", "no folder"),
        "a folder": (tmp_path, "is a folder"),
        "under a file": (tmp_path / "a-file" / "s.json", "no folder"),
    }


@pytest.mark.parametrize("case", ["missing folder", "a folder", "under a file"])
def test_an_unwritable_summary_json_fails_at_start(tmp_path, capsys, marker, clip, case):
    target, why = _summary_targets(tmp_path)[case]
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", "--backend", "markerbackend:Marker",
                          "--summary-json", target)
    _assert_one_line(code, err, f"--summary-json {target}: {why}")
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, where nobody creates files")
def test_a_summary_json_in_a_folder_that_takes_no_files_fails_at_start(tmp_path, capsys, marker, clip):
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", "--backend", "markerbackend:Marker",
                          "--summary-json", "/proc/summary.json")
    _assert_one_line(code, err, "--summary-json /proc/summary.json: cannot write in /proc")
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec, named", [("rtsp://[::1", "rtsp://[::1"),
                                         ("rtsp://127.0.0.1:99999/cam", "port '99999'")])
def test_a_malformed_camera_url_is_rejected_at_start_naming_it(tmp_path, capsys, marker, spec, named):
    code, out, err = _cli(capsys, spec, "-o", tmp_path / "out", "--backend", "markerbackend:Marker")
    _assert_one_line(code, err, named)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_file_that_is_no_graph_is_one_line_without_engine_noise(tmp_path, clip):
    not_graph = tmp_path / "notes.pb"
    not_graph.write_text("not a graph\n")
    # the default engine, in a process of its own: its parsers log to the real stderr
    done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), str(clip), "-o",
                           str(tmp_path / "out"), "--graph", str(not_graph)],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stderr == (f"posestream: error: --graph {not_graph}: not a TensorFlow frozen graph "
                           "(unexpected data at byte 0)\n")
    assert not (tmp_path / "out").exists()


def test_the_graph_check_passes_graphs_and_names_what_is_wrong(tmp_path):
    from models.fetch import fetch_model
    from models.registry import DEFAULT_MODEL, get_model

    check_frozen_graph(fetch_model(get_model(DEFAULT_MODEL)))  # the real one
    node = b"\x0a\x03abc"  # NodeDef{name: "abc"}
    versions = b"\x08\x1a"  # VersionDef{producer: 26}
    (tmp_path / "tiny.pb").write_bytes(b"\x0a" + bytes([len(node)]) + node + b"\x22\x02" + versions)
    check_frozen_graph(tmp_path / "tiny.pb")
    cases = {b"": "no nodes", b"\x22\x02" + versions: "no nodes",
             b"\x0a\x05" + node[:3]: "cut short", b"\x7b\x0a": "unexpected data at byte 0"}
    for data, why in cases.items():
        (tmp_path / "bad.pb").write_bytes(data)
        with pytest.raises(InputError, match=f"--graph {tmp_path / 'bad.pb'}: not a TensorFlow "
                                             f"frozen graph \\({why}"):
            check_frozen_graph(tmp_path / "bad.pb")


def test_an_interrupted_model_load_lists_no_output_it_did_not_make(tmp_path, clip):
    (tmp_path / "markerbackend.py").write_text(MARKER_BACKEND)
    loading = tmp_path / "loading"
    summary = tmp_path / "summary.json"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}", MARKER_FILE=str(loading))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), str(clip), "-o",
                             str(tmp_path / "out"), "--backend", "markerbackend:SlowLoad",
                             "--resolution", "64x48", "--summary-json", str(summary)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not loading.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loading.exists(), "the model copy never started loading"
        proc.send_signal(signal.SIGINT)
        assert "stopping" in proc.stderr.readline()
        Path(f"{loading}.go").touch()  # the load ends after the signal
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert out.startswith(f"interrupted: {clip}: ") and "0 written" in out
    listed = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert all(Path(p).exists() for p in listed), out
    outputs = json.loads(summary.read_text())["outputs"]
    assert all(Path(p).exists() for p in outputs), outputs


def test_a_batch_writes_its_summary_where_summary_json_says_too(tmp_path, capsys):
    clips = [make_test_clip(tmp_path / f"c{i}.mp4", frames=2, size=(64, 48)) for i in range(2)]
    code, out, err = _cli(capsys, *clips, "-o", tmp_path / "out", "--backend", "tests.support.fakes:ZeroBackend",
                          "--resolution", "64x48", "--summary-json", tmp_path / "mine.json")
    assert code == 0, err
    mine = json.loads((tmp_path / "mine.json").read_text())
    assert mine == json.loads((tmp_path / "out" / "batch-summary.json").read_text())
    assert sorted(r["input"] for r in mine["files"]) == ["c0.mp4", "c1.mp4"]
