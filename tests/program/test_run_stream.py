"""The command line: outputs, bad input, interruption and failures.

The fake backends of tests/support/fakes.py stand in for the network here (no model
is loaded); the real model runs in tests/program/test_end_to_end.py.
"""

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

import run_stream
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip
from tests.support.tables import RUN_TABLES

ROOT = Path(__file__).resolve().parents[2]
FAKE = "tests.support.fakes:ZeroBackend"


def _pts(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_stream.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_video_in_annotated_video_and_log_out(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=30, fps=Fraction(30000, 1001),
                          size=(96, 64), first_pts=7)
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", "--backend", FAKE, "--workers", "3",
                          "--resolution", "64x48")
    assert code == 0, err
    video, log = tmp_path / "out" / "clip.mp4", tmp_path / "out" / "clip.jsonl"
    assert str(video) in out and str(log) in out and "30 frames read" in out
    assert _pts(video) == pytest.approx(_pts(clip), abs=1e-9)
    records = read_keypoint_log(log)
    assert [r["frame"] for r in records] == list(range(30))
    assert [r["pts"] for r in records] == pytest.approx(_pts(clip), abs=1e-6)
    assert all(r["people"] == [] for r in records)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["clip.jsonl", "clip.mp4", *RUN_TABLES])


def test_image_in_annotated_image_and_log_out(tmp_path, capsys):
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((50, 70, 3), 90, np.uint8))
    code, out, err = _cli(capsys, tmp_path / "photo.png", "-o", tmp_path / "out", "--backend", FAKE)
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "out" / "photo.png")).shape == (50, 70, 3)
    assert [r["frame"] for r in read_keypoint_log(tmp_path / "out" / "photo.jsonl")] == [0]


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list, str]]:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("just some text, not a video\n")
    (tmp_path / "adir").mkdir()
    good = make_test_clip(tmp_path / "good.mp4", frames=3)
    return {
        "missing": ([tmp_path / "nope.mp4"], "nope.mp4"),
        "directory": ([tmp_path / "adir"], "adir"),
        "zero-byte": ([tmp_path / "empty.mp4"], "empty.mp4"),
        "text named .mp4": ([tmp_path / "notes.mp4"], "notes.mp4"),
        "resolution not a multiple of 8": ([good, "--resolution", "430x368"], "430x368"),
        "resolution zero": ([good, "--resolution", "0x368"], "0x368"),
        "resolution garbage": ([good, "--resolution", "big"], "big"),
        "workers negative": ([good, "--workers", "-1"], "--workers"),
        "unknown device": ([good, "--device", "tpu"], "tpu"),
        "even smoothing kernel": ([good, "--smooth-kernel", "24"], "--smooth-kernel"),
        "unknown format": ([good, "--format", "jsonl", "xml"], "'xml'"),
        "zero resize ratio": ([good, "--resize-out-ratio", "0"], "--resize-out-ratio"),
        "neuron without tensorflow-neuron": ([good, "--device", "neuron"], "tensorflow-neuron"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "zero-byte", "text named .mp4",
                                  "resolution not a multiple of 8", "resolution zero",
                                  "resolution garbage", "workers negative", "unknown device",
                                  "even smoothing kernel", "zero resize ratio", "unknown format",
                                  "neuron without tensorflow-neuron"])
def test_bad_input_is_one_clear_line_and_nothing_is_written(tmp_path, capsys, case):
    args, named = _bad_inputs(tmp_path)[case]
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "keep.jsonl").write_text("precious\n")
    code, out, err = _cli(capsys, *args, "-o", outdir, "--backend", FAKE)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posestream: error:") and named in lines[0], err
    assert "Traceback" not in err
    assert [p.name for p in outdir.iterdir()] == ["keep.jsonl"]
    assert (outdir / "keep.jsonl").read_text() == "precious\n"


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        run_stream.main([str(tmp_path / "nope.mp4"), "--debug", "-o", str(tmp_path)])


def test_truncated_video_is_processed_to_its_last_decodable_frame(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "full.mp4", frames=60, size=(160, 120))
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    code, out, err = _cli(capsys, cut, "-o", tmp_path / "out", "--backend", FAKE)
    assert code == 0, err
    records = read_keypoint_log(tmp_path / "out" / "cut.jsonl")
    assert 0 < len(records) < 60
    assert f"{len(records)} frames read" in out and "truncated" in out
    assert len(_pts(tmp_path / "out" / "cut.mp4")) == len(records)


def test_a_failing_stage_stops_the_run_with_its_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POSESTREAM_FAKE_FAIL_AT", "5")
    clip = make_test_clip(tmp_path / "clip.mp4", frames=200)
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", "--backend", "tests.support.fakes:FailingBackend",
                          "--queue-size", "2")
    assert code == 1
    assert err.strip() == "posestream: error: fake accelerator fault"


def test_a_model_that_fails_to_load_fails_the_run(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=5)
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", "--backend",
                          "tests.support.fakes:BrokenLoadBackend", "--workers", "2")
    assert code == 1
    assert "failed to start" in err and "fake device unavailable" in err


def _start(tmp_path: Path, frames: int) -> tuple[subprocess.Popen, Path, Path]:
    clip = make_test_clip(tmp_path / "long.mp4", frames=frames, size=(64, 48))
    outdir = tmp_path / "out"
    env = dict(os.environ, POSESTREAM_FAKE_DELAY="0.02", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run_stream.py"), str(clip), "-o", str(outdir),
         "--backend", "tests.support.fakes:SlowBackend", "--resolution", "64x48"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, clip, outdir


def _wait_for_progress(outdir: Path, proc: subprocess.Popen, lines: int = 10) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        partial = list(outdir.glob(".partial/long/long.jsonl.partial"))  # its work folder
        if partial and partial[0].read_text().count("\n") >= lines:
            return
        time.sleep(0.02)
    raise AssertionError("the run made no progress")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_stop_signal_leaves_playable_video_and_valid_log(tmp_path, sig, code):
    proc, clip, outdir = _start(tmp_path, frames=2000)
    try:
        _wait_for_progress(outdir, proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "interrupted" in out and "still blocked" not in err  # stopped in time, not cut off
    records = read_keypoint_log(outdir / "long.jsonl")
    assert 10 <= len(records) < 2000
    assert [r["frame"] for r in records] == list(range(len(records)))
    assert _pts(outdir / "long.mp4") == pytest.approx(_pts(clip)[: len(records)], abs=1e-9)
    assert not list(outdir.glob(".*partial*"))


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "posestream"
    assert script.exists()
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--resolution" in done.stdout


def test_summary_json_has_the_run_and_every_stage(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=12)
    summary = tmp_path / "summary.json"
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", "--backend", FAKE,
                          "--summary-json", summary)
    assert code == 0, err
    data = __import__("json").loads(summary.read_text())
    assert (data["frames_read"], data["frames_written"], data["state"]) == (12, 12, "done")
    assert [s["stage"] for s in data["stages"]] == ["decode", "resize", "inference", "track", "render",
                                                     "write"]
    assert all(s["items"] == 12 for s in data["stages"])
    engine = data["engine"]
    assert (engine["backend"], engine["precision"], engine["devices"], engine["model"],
            engine["resolution"]) == (FAKE, "f32", ["cpu"], "mobilenet_thin", "432x368")
    assert engine["host"] and f"engine: {FAKE} f32 on cpu (1 worker)" in out


def test_summary_reports_the_precision_the_engine_ran_not_the_one_asked_for(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=4)
    summary = tmp_path / "summary.json"
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", "--backend", "tests.support.fakes:Bf16Backend",
                          "--precision", "auto", "--workers", "2", "--summary-json", summary)
    assert code == 0, err
    engine = __import__("json").loads(summary.read_text())["engine"]
    assert (engine["precision"], engine["devices"]) == ("bf16", ["cpu", "cpu"])
    assert "engine: tests.support.fakes:Bf16Backend bf16 on cpu (2 workers)" in out


def test_config_file_mirrors_the_options_and_the_command_line_wins(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=6)
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'input = "{clip}"\noutdir = "{tmp_path / "from_config"}"\n'
                   f'backend = "tests.support.fakes:OnePersonBackend"\nworkers = 2\nresolution = "432x368"\n'
                   f'refine = true\n'
                   f'format = ["jsonl", "coco"]\nno-track = true\nqueue_size = 3\n')
    code, out, err = _cli(capsys, "--config", cfg)
    assert code == 0, err
    assert len(read_keypoint_log(tmp_path / "from_config" / "clip.jsonl")) == 6
    assert (tmp_path / "from_config" / "clip.coco.json").exists()
    records = read_keypoint_log(tmp_path / "from_config" / "clip.jsonl")
    assert all(len(r["people"]) == 1 and "id" not in r["people"][0] for r in records)  # no-track
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "tracked", "--backend",
                          "tests.support.fakes:OnePersonBackend")
    assert {r["people"][0]["id"] for r in read_keypoint_log(tmp_path / "tracked" / "clip.jsonl")} == {1}
    code, out, err = _cli(capsys, "--config", cfg, "-o", tmp_path / "from_cli")
    assert code == 0, err
    assert (tmp_path / "from_cli" / "clip.jsonl").exists()


@pytest.mark.parametrize("text, named", [("wrkers = 2\n", "'wrkers'"), ("workers = 'two'\n", "'workers'"),
                                         ("refine = 1\n", "'refine'"), ("workers = [\n", "not valid TOML"),
                                         ("precision = 'f64'\n", "'precision'")])
def test_config_file_errors_name_the_key(tmp_path, capsys, text, named):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    code, out, err = _cli(capsys, "--config", cfg)
    assert code == 1 and named in err and len(err.strip().splitlines()) == 1, err


def test_every_keypoint_format_at_once(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=4)
    code, out, err = _cli(capsys, clip, "-o", tmp_path / "out", "--backend", FAKE,
                          "--format", "jsonl", "openpose", "coco")
    assert code == 0, err
    out_dir = tmp_path / "out"
    assert len(read_keypoint_log(out_dir / "clip.jsonl")) == 4
    assert sorted(p.name for p in (out_dir / "clip.openpose").iterdir()) == [
        f"clip_{i:012d}_keypoints.json" for i in range(4)]
    assert __import__("json").loads((out_dir / "clip.coco.json").read_text()) == []


def test_live_camera_with_browser_preview_then_sigterm(tmp_path):
    import re
    import urllib.request

    from stages.sources.stream import LiveSource

    spec = "lavfi:testsrc2=size=320x240:rate=25,realtime"
    cmd = [sys.executable, str(ROOT / "run_stream.py"), spec,
           "-o", str(tmp_path / "out"), "--backend", "tests.support.fakes:OnePersonBackend",
           "--preview", "127.0.0.1:0", "--segment", "0.02"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for _ in range(50):
            line = proc.stderr.readline()
            m = re.search(r"preview: (http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
                break
        assert url, "no preview URL printed"
        with urllib.request.urlopen(url + "stream.mjpg", timeout=20) as stream:
            head = stream.read(4096)
        assert b"Content-Type: image/jpeg" in head and b"\xff\xd8" in head
        deadline = time.monotonic() + 20
        name = LiveSource(spec).name
        while time.monotonic() < deadline and not list((tmp_path / "out" / name).glob("*.mkv")):
            time.sleep(0.05)  # a 1.2 s segment finishes and is renamed
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert name in out and "dropped" in out
    segments = sorted((tmp_path / "out" / name).glob("*.mkv"))
    assert segments
    records = [r for seg in segments for r in read_keypoint_log(seg.with_suffix(".jsonl"))]
    assert records and all(len(r["people"]) == 1 and r["people"][0]["id"] == 1 for r in records)


# -- stopping whatever a thread is blocked in (issue 11, item 11) ---------------------------------

def _wchans(pid: int) -> list[str]:
    """What each thread of ``pid`` waits in, as the kernel says (/proc/PID/task/*/wchan)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.append((task / "wchan").read_text())
        except OSError:
            pass
    return found


def _wait_until_blocked_in(proc: subprocess.Popen, wchan: str) -> None:
    """Return once a thread of ``proc`` sleeps in the kernel function ``wchan``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if wchan in _wchans(proc.pid):
            return
        time.sleep(0.02)
    raise AssertionError(f"the run never blocked in {wchan} (exit {proc.poll()})")


def _kernel_shows_wchan() -> bool:
    probe = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(w not in ("", "0") for w in _wchans(probe.pid)):
                return True
            time.sleep(0.02)
        return False
    finally:
        probe.kill()
        probe.wait()


needs_wchan = pytest.mark.skipif(not Path("/proc/self/wchan").exists() or not _kernel_shows_wchan(),
                                 reason="needs /proc/PID/wchan to see where the run is blocked")


def _run_cli(tmp_path: Path, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *map(str, args),
                             "-o", str(tmp_path / "out"), "--backend", FAKE, "--resolution", "64x48"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fifo_inputs(tmp_path: Path, mode: str) -> list[Path]:
    name = {"video": "stuck.mp4", "image": "stuck.png", "batch": "stuck.mp4"}[mode]
    fifo = tmp_path / name
    os.mkfifo(fifo)  # no writer ever opens it: opening it for reading blocks for ever
    if mode == "batch":
        return [make_test_clip(tmp_path / "good.mp4", frames=3, size=(64, 48)), fifo]
    return [fifo]


def _stop_with(proc: subprocess.Popen, sig: int, *, ready) -> tuple[str, str, float]:
    """Once ``ready()`` returns, send ``sig`` and wait for the process; return its
    stdout, its stderr and the seconds it took to end. It is killed if anything fails."""
    try:
        ready()
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
        return out, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_wchan
@pytest.mark.parametrize("mode, sig", [("video", signal.SIGINT), ("image", signal.SIGTERM),
                                       ("batch", signal.SIGINT)])
def test_a_run_blocked_opening_a_fifo_ends_soon_after_one_signal(tmp_path, mode, sig):
    proc = _run_cli(tmp_path, *_fifo_inputs(tmp_path, mode))
    out, err, took = _stop_with(proc, sig, ready=lambda: _wait_until_blocked_in(proc, "wait_for_partner"))
    assert proc.returncode == 128 + sig, err
    assert took < 5, f"{took:.1f} s after the signal"  # the promise is 2 s; this margin is for load
    lines = err.strip().splitlines()
    name = signal.Signals(sig).name
    assert lines[0] == f"posestream: {name}: stopping, keeping what is done", err
    assert lines[-1].startswith(f"posestream: {name}: still blocked 1.5 s later in stages/"), err
    assert "Traceback" not in err


@needs_wchan
def test_a_second_signal_ends_the_run_at_once(tmp_path):
    proc = _run_cli(tmp_path, *_fifo_inputs(tmp_path, "video"))
    try:
        _wait_until_blocked_in(proc, "wait_for_partner")
        proc.send_signal(signal.SIGTERM)
        first = proc.stderr.readline()  # the first signal was handled
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first == "posestream: SIGTERM: stopping, keeping what is done\n"
    assert proc.returncode == 143, err
    assert err.strip() == "posestream: SIGTERM again: exiting now, unfinished outputs stay partial"


def test_a_live_run_waiting_on_a_silent_camera_ends_soon_after_sigterm(tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, then never says a word
        port = server.getsockname()[1]
        proc = _run_cli(tmp_path, f"rtsp://127.0.0.1:{port}/cam", "--stall-timeout", "60")
        server.settimeout(60)
        connections = []  # the run is waiting for the camera's answer once it connected
        out, err, took = _stop_with(proc, signal.SIGTERM,
                                    ready=lambda: connections.append(server.accept()[0]))
        for conn in connections:
            conn.close()
    assert proc.returncode == 143, err
    assert took < 5, f"{took:.1f} s after the signal"
    assert "posestream: SIGTERM: stopping, keeping what is done" in err


LINGERING_BACKEND = '''
import threading

from tests.support.fakes import SlowBackend


class Lingering(SlowBackend):
    """A slow zero backend that leaves behind a thread the interpreter waits for at exit."""

    def __init__(self, config):
        super().__init__(config)
        threading.Thread(target=threading.Event().wait, name="lingering", daemon=False).start()
'''


def test_a_stopped_run_exits_even_if_a_thread_would_hold_the_interpreter(tmp_path):
    (tmp_path / "lingering.py").write_text(LINGERING_BACKEND)
    clip = make_test_clip(tmp_path / "long.mp4", frames=2000, size=(64, 48))
    outdir = tmp_path / "out"
    env = dict(os.environ, POSESTREAM_FAKE_DELAY="0.02", PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), str(clip), "-o", str(outdir),
                             "--backend", "lingering:Lingering", "--resolution", "64x48"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err, took = _stop_with(proc, signal.SIGINT, ready=lambda: _wait_for_progress(outdir, proc))
    assert proc.returncode == 130, err
    assert took < 8, f"{took:.1f} s after the signal"
    assert "interrupted" in out  # the run itself stopped and reported
    assert "SIGINT: the run stopped but the process did not exit within 1.5 s" in err
    records = read_keypoint_log(outdir / "long.jsonl")
    assert [r["frame"] for r in records] == list(range(len(records))) and len(records) >= 10


# -- SIGHUP, a stop while the model loads, a stop at the very end (issue 21, items 9-11) ----------

@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_sighup_stops_a_file_run_as_sigterm_does(tmp_path):
    proc, clip, outdir = _start(tmp_path, frames=2000)
    out, err, _ = _stop_with(proc, signal.SIGHUP, ready=lambda: _wait_for_progress(outdir, proc))
    assert proc.returncode == 128 + signal.SIGHUP, err
    assert "posestream: SIGHUP: stopping, keeping what is done" in err and "interrupted" in out
    records = read_keypoint_log(outdir / "long.jsonl")
    assert [r["frame"] for r in records] == list(range(len(records))) and len(records) >= 10
    assert not list(outdir.glob(".*partial*"))


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_sighup_stops_a_live_run_and_leaves_no_partial(tmp_path):
    outdir = tmp_path / "out"
    proc = _run_cli(tmp_path, "lavfi:testsrc2=size=64x48:rate=25,realtime")
    try:
        deadline = time.monotonic() + 60  # recording has begun once a file is there
        while time.monotonic() < deadline and proc.poll() is None and not list(outdir.rglob("*.jsonl*")):
            time.sleep(0.05)
    finally:
        out, err, _ = _stop_with(proc, signal.SIGHUP, ready=lambda: None)
    assert proc.returncode == 128 + signal.SIGHUP, err
    assert "posestream: SIGHUP: stopping, keeping what is done" in err
    assert not [p for p in outdir.rglob("*") if "partial" in p.name]


def _loading_run(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, Path]:
    """A run whose model takes a minute to load (``SlowLoadBackend``); returns it once loading."""
    loading = tmp_path / "loading"
    inputs = [make_test_clip(tmp_path / "clip.mp4", frames=5, size=(64, 48))]
    if mode == "batch":
        inputs.append(make_test_clip(tmp_path / "other.mp4", frames=5, size=(64, 48)))
    env = dict(os.environ, PYTHONPATH=str(ROOT), POSESTREAM_FAKE_LOADING=str(loading))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *map(str, inputs),
                             "-o", str(tmp_path / "out"), "--format", "jsonl", "coco",
                             "--backend", "tests.support.fakes:SlowLoadBackend", "--resolution", "64x48"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, loading


def _wait_for_file(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not path.exists():
        time.sleep(0.02)
    assert path.exists(), f"never made {path} (exit {proc.poll()})"


@pytest.mark.parametrize("mode, sig", [("video", signal.SIGTERM), ("video", signal.SIGINT),
                                       ("batch", signal.SIGTERM)])
def test_a_stop_while_the_model_loads_is_prompt_says_so_and_leaves_nothing(tmp_path, mode, sig):
    proc, loading = _loading_run(tmp_path, mode)
    out, err, took = _stop_with(proc, sig, ready=lambda: _wait_for_file(loading, proc))
    assert proc.returncode == 128 + sig, err
    assert took < 5, f"{took:.1f} s after the signal"  # the promise is 2 s; this margin is for load
    name = signal.Signals(sig).name
    assert err.splitlines()[0] == f"posestream: {name}: stopping, keeping what is done", err
    assert "still blocked" not in err and "Traceback" not in err and "error" not in err
    outdir = tmp_path / "out"
    assert not [p.name for p in outdir.rglob("*") if p.is_file() and p.name != "batch-summary.json"]
    if mode == "batch":  # its records are written: nothing was done
        assert "coco dataset: not written, 2 input(s) not finished" in out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the main thread wait")
@pytest.mark.parametrize("mode", ["video", "batch"])
@pytest.mark.parametrize("moment", ["load", "2"])
def test_a_stop_signal_another_thread_catches_stops_the_run_promptly(tmp_path, mode, moment):
    """The kernel may hand a signal sent to the process to any thread (one starting up takes
    it first); the main thread, asleep waiting for results, must still act on it."""
    clips = [make_test_clip(tmp_path / f"{n}.mp4", frames=5, size=(64, 48)) for n in ("a", "b")]
    sent = tmp_path / "sent"
    env = dict(os.environ, PYTHONPATH=str(ROOT), POSESTREAM_FAKE_SIGNAL_AT=moment,
               POSESTREAM_FAKE_SIGNALLED=str(sent))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *map(str, clips[:1 + (mode == "batch")]),
                             "-o", str(tmp_path / "out"), "--workers", "1", "--resolution", "64x48",
                             "--backend", "tests.support.fakes:StolenSignalBackend"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_file(sent, proc)
        since = time.monotonic()
        _, err = proc.communicate(timeout=20)  # the backend holds the thread it signalled a minute
        took = time.monotonic() - since
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert took < 5, f"{took:.1f} s after the signal"  # the promise is 2 s; this margin is for load
    assert err.splitlines()[0] == "posestream: SIGTERM: stopping, keeping what is done", err
    assert "again" not in err and "Traceback" not in err


def _hooked(tmp_path: Path, moment: str, *args) -> subprocess.CompletedProcess:
    """The command line with SIGINT at ``moment`` (``tests.support.signal_hooks``)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "tests.support.signal_hooks", moment, *map(str, args),
                           "-o", str(tmp_path / "out"), "--backend", FAKE, "--resolution", "64x48"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_sigint_while_a_file_run_commits_its_outputs_exits_130_with_them_complete(tmp_path):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=6, size=(64, 48))
    done = _hooked(tmp_path, "file-commit", clip)
    assert done.returncode == 130, done.stderr
    assert done.stdout.startswith("done: ") and "posestream: SIGINT: stopping" in done.stderr
    assert len(read_keypoint_log(tmp_path / "out" / "clip.jsonl")) == 6
    assert len(_pts(tmp_path / "out" / "clip.mp4")) == 6
    assert not list((tmp_path / "out").glob("*partial*"))


@pytest.mark.parametrize("moment", ["batch-last-file", "batch-records"])
def test_sigint_after_a_batchs_last_frame_finishes_its_records_and_exits_130(tmp_path, moment):
    clips = [make_test_clip(tmp_path / f"{n}.mp4", frames=4, size=(64, 48)) for n in ("a", "b")]
    done = _hooked(tmp_path, moment, *clips, "--format", "jsonl", "coco")
    assert done.returncode == 130, done.stderr
    out = tmp_path / "out"
    summary = __import__("json").loads((out / "batch-summary.json").read_text())
    assert [f["status"] for f in summary["files"]] == ["done", "done"], summary
    dataset = __import__("json").loads((out / "keypoints.coco.json").read_text())
    assert len(dataset["images"]) == 8
    assert f"coco dataset: {out / 'keypoints.coco.json'}" in done.stdout


def test_sigint_before_a_batchs_last_frame_says_the_dataset_was_not_written(tmp_path):
    clips = [make_test_clip(tmp_path / f"{n}.mp4", frames=20, size=(64, 48)) for n in ("a", "b")]
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT), POSESTREAM_FAKE_SIGNAL_AT="3")
    done = subprocess.run([sys.executable, str(ROOT / "run_stream.py"), *map(str, clips), "-o", str(out),
                           "--backend", "tests.support.fakes:SignalAtBackend", "--resolution", "64x48",
                           "--format", "jsonl", "coco"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert not (out / "keypoints.coco.json").exists()
    assert "coco dataset: not written, 2 input(s) not finished; the previous one stays" in done.stdout
