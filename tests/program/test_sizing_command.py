"""posestream-size measuring for real, at a tiny size: slow."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import run_stream

pytestmark = pytest.mark.slow

TINY = ["--engines", "openvino:f32", "--sizes", "720p", "--resolution", "64x48", "--seconds", "0.5",
        "--camera-fps", "2"]


def test_it_measures_files_and_cameras_with_and_without_the_video(tmp_path, capsys):
    assert run_stream.size_main(TINY + ["--json", str(tmp_path / "size.json")]) == 0
    out, err = capsys.readouterr()
    document = json.loads((tmp_path / "size.json").read_text())
    runs = {(m["mode"], m["video"]): m for m in document["measurements"]}
    modes = ("files", "cameras") if document["machine"]["cores"] > 1 else ("files",)
    assert set(runs) == {(mode, video) for mode in modes for video in (True, False)}
    for m in runs.values():
        assert m["engine"] == "openvino f32" and m["size"] == "720p"
        assert m["fps"] == pytest.approx(m["frames"] / m["seconds"]) and m["frames"] >= 2
        # 0.5 s of frames, unless the 3 s clip ran out first (this tiny network is fast)
        assert m["seconds"] >= 0.5 or m["frames"] < 75
    [row] = document["hours_per_hour"]
    assert row["video"] == pytest.approx(runs["files", True]["fps"] / 25)
    [cams] = document["cameras"]
    live = runs.get(("cameras", False), runs["files", False])["fps"]
    assert cams["no_video"] == int(live * 0.8 / 2 + 1e-9)
    # what it printed: a line per run as it went, then the tables
    assert err.count("posestream-size: openvino f32, ") == len(runs)
    assert "cameras at 2 FPS each" in out and "hours of 25 FPS video processed per hour" in out
    assert f"CPU flags: {' '.join(document['machine']['flags']) or 'no AVX2'}" in out


def test_the_console_script_is_installed_with_posestream(tmp_path):
    script = Path(sys.executable).parent / "posestream-size"
    if not script.exists():
        pytest.skip(f"{script} is not installed in this environment (bootstrap installs it)")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("posestream-size ")
