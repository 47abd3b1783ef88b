"""--precision in every mode: int8 runs in each, auto says what it picked, bf16 where the CPU has it.

The real network, quantized once per machine at 216x184 (the model cache
keeps it, as for users; tests/models/test_int8_gate.py checks its accuracy),
on tiny clips of real photos with people: slow.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import cv2
import pytest
import skimage.data

import run_stream
from models.backend import BackendConfig, load_backend
from models.fetch import fetch_model
from models.precision import has_bf16
from models.registry import DEFAULT_MODEL, get_model
from stages import api
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_sample_clip
from stages.settings import JobConfig

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")]

SIZE = "216x184"
INT8 = ["--precision", "int8", "--resolution", SIZE]


@pytest.fixture(scope="module", autouse=True)
def int8_network():
    """The int8 network at 216x184 in the model cache (built here on a machine's first run)."""
    spec = get_model(DEFAULT_MODEL)
    load_backend(BackendConfig(backend="openvino", graph=fetch_model(spec), model=spec, precision="int8",
                               resolution=(216, 184))).close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    return [make_sample_clip(folder / f"{n}.mp4", seconds=0.2, size=(320, 180)) for n in ("a", "b")]


def _engine(summary: Path) -> dict:
    data = json.loads(summary.read_text())
    return data["engine"] if "engine" in data else data["files"][0]["engine"]


def _cli(args: list, capsys) -> tuple[int, str]:
    code = run_stream.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_a_file(tmp_path, clips, capsys):
    code, err = _cli([clips[0], "-o", tmp_path / "out", *INT8, "--summary-json", tmp_path / "s.json"], capsys)
    assert code == 0, err
    engine = _engine(tmp_path / "s.json")
    # the quantized network came from the cache (OpenVINO may still compile a blob for these workers' threads)
    assert (engine["precision"], engine["requested_precision"]) == ("int8", "int8")
    assert engine["model_cache"] in ("hit", "built")
    assert engine["precision_trade"]["gate"] is True and "%" in engine["precision_trade"]["agreement"]
    assert any(r["people"] for r in read_keypoint_log(tmp_path / "out" / "a.jsonl"))
    assert "quantizing" not in err  # built once, before: not again


def test_an_image(tmp_path, capsys):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    code, err = _cli([photo, "-o", tmp_path / "out", *INT8, "--summary-json", tmp_path / "s.json"], capsys)
    assert code == 0, err
    assert _engine(tmp_path / "s.json")["precision"] == "int8"
    (record,) = read_keypoint_log(tmp_path / "out" / "astronaut.jsonl")
    assert record["people"]


def test_a_batch(tmp_path, clips, capsys):
    code, err = _cli([*clips, "-o", tmp_path / "out", *INT8, "--summary-json", tmp_path / "s.json"], capsys)
    assert code == 0, err
    files = json.loads((tmp_path / "s.json").read_text())["files"]
    assert {f["input"]: (f["status"], f["engine"]["precision"]) for f in files} == {
        "a.mp4": ("done", "int8"), "b.mp4": ("done", "int8")}


def test_a_batch_on_a_cluster(tmp_path, clips, capsys):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        code, err = _cli([*clips, "-o", tmp_path / "out", *INT8, "--cluster", cluster.scheduler_address,
                          "--summary-json", tmp_path / "s.json"], capsys)
    assert code == 0, err
    files = json.loads((tmp_path / "s.json").read_text())["files"]
    assert {f["input"]: (f["status"], f["engine"]["precision"]) for f in files} == {
        "a.mp4": ("done", "int8"), "b.mp4": ("done", "int8")}
    assert any(r["people"] for r in read_keypoint_log(tmp_path / "out" / "b.jsonl"))


def test_a_live_source(tmp_path, capsys):
    source = "lavfi:testsrc2=size=64x48:rate=5:duration=1"
    code, err = _cli([source, "-o", tmp_path / "out", *INT8, "--max-retries", "0",
                      "--summary-json", tmp_path / "s.json"], capsys)
    assert code == 1 and "gave up after 1 failure" in err  # the clip ends; no retries asked for
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["engine"]["precision"] == "int8"
    (stats,) = summary["sources"]
    records = [r for log in (tmp_path / "out").glob("*/*Z-*.jsonl") for r in read_keypoint_log(log)]
    assert stats["frames"] >= 1 and len(records) == stats["frames"]  # live drops stale frames, never writes them


def test_the_api(tmp_path, clips):
    config = JobConfig(precision="int8", resolution=(216, 184))
    assert sum(len(r.people) for r in api.results(clips[0], config=config)) > 0
    summary = api.run(clips[0], tmp_path / "out", config=config)
    assert summary.engine.precision == "int8"


def test_the_config_file(tmp_path, clips, capsys):
    (tmp_path / "run.toml").write_text(f'precision = "int8"\nresolution = "{SIZE}"\n')
    code, err = _cli([clips[0], "-o", tmp_path / "out", "--config", tmp_path / "run.toml",
                      "--summary-json", tmp_path / "s.json"], capsys)
    assert code == 0, err
    assert _engine(tmp_path / "s.json")["precision"] == "int8"


def test_auto_picks_int8_on_the_cpu_and_says_why_once(tmp_path, clips, capsys, caplog):
    with caplog.at_level(logging.WARNING):
        code, err = _cli([*clips, "-o", tmp_path / "out", "--precision", "auto", "--resolution", SIZE,
                          "--summary-json", tmp_path / "s.json"], capsys)
    assert code == 0, err
    said = [r.getMessage() for r in caplog.records if "--precision auto" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("--precision auto: int8, the fastest precision that passes")
    for f in json.loads((tmp_path / "s.json").read_text())["files"]:
        engine = f["engine"]
        assert (engine["precision"], engine["requested_precision"]) == ("int8", "auto")
        assert engine["precision_chosen"] == said[0]


@pytest.mark.skipif(has_bf16(), reason="this CPU has bf16: the refusal cannot be seen here")
def test_bf16_without_bf16_arithmetic_is_refused_with_one_line(tmp_path, clips, capsys):
    code, err = _cli([clips[0], "-o", tmp_path / "out", "--precision", "bf16"], capsys)
    assert code == 1
    assert err.strip() == ("posestream: error: --precision bf16: this CPU has no bf16 arithmetic "
                           "(AMX or AVX512_BF16); use int8 (passes the accuracy gate) or f32")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not has_bf16(), reason="this CPU has no bf16 arithmetic")
def test_bf16_runs_where_the_cpu_has_it(tmp_path, clips, capsys):
    code, err = _cli([clips[0], "-o", tmp_path / "out", "--precision", "bf16", "--resolution", SIZE,
                      "--summary-json", tmp_path / "s.json"], capsys)
    assert code == 0, err
    assert _engine(tmp_path / "s.json")["precision"] == "bf16"


GOLDEN = sorted((Path(__file__).resolve().parents[1] / "support" / "golden").glob("*.json"))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_the_default_precision_is_f32_and_its_keypoints_are_the_golden_ones(tmp_path, path):
    """The settings a user gets without asking (backend auto, f32, 432x368, ratio 4) give
    tf-pose-estimation's own keypoints, stored in tests/support/golden."""
    from tests.stages.pose.test_maps_to_people_parity import _assert_same_people
    from tests.support.people_maps import compose

    config = JobConfig()
    assert (config.precision, config.resolution, config.postprocess.resize_out_ratio) == ("f32", (432, 368), 4.0)
    golden = json.loads(path.read_text())
    picture = tmp_path / f"{path.stem}.png"
    cv2.imwrite(str(picture), compose(golden["recipe"]))
    (result,) = api.results(picture, config=config)
    (expected,) = [r for r in golden["results"] if tuple(r["resolution"]) == (432, 368) and r["ratio"] == 4.0]
    _assert_same_people(list(result.people), expected, golden["image_size"])


def test_two_first_runs_at_once_quantize_once_and_both_use_it(tmp_path, clips):
    """An empty model cache, two runs started together: one builds, the other waits and reuses."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "POSESTREAM_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(root)}
    runs = [subprocess.Popen([sys.executable, str(root / "run_stream.py"), str(clips[i]), "-o",
                              str(tmp_path / f"out{i}"), "--precision", "int8", "--resolution", "64x48",
                              "--summary-json", str(tmp_path / f"s{i}.json")],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for i in (0, 1)]
    errs = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errs
    said = "".join(errs)
    assert said.count("int8: quantizing the network at 64x48") == 1, said
    assert said.count("int8: the quantized network is ready") == 1, said
    assert [_engine(tmp_path / f"s{i}.json")["precision"] for i in (0, 1)] == ["int8", "int8"]
    assert len([p for p in (tmp_path / "cache" / "ir").glob("*-int8-*") if p.is_dir()]) == 1


def test_a_run_stopped_while_quantizing_leaves_no_quantizer_and_no_cache_entry(tmp_path, clips):
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "POSESTREAM_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(root)}
    run = subprocess.Popen([sys.executable, str(root / "run_stream.py"), str(clips[0]), "-o", str(tmp_path / "out"),
                            "--precision", "int8", "--resolution", "216x184"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in run.stderr:
            if "int8: quantizing" in line:
                break
        children = []
        for _ in range(200):  # the line comes just before the child starts
            children = [c for c in psutil.Process(run.pid).children() if "models.quantize" in c.cmdline()]
            if children:
                break
            time.sleep(0.05)
        assert len(children) == 1
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 143
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, "the quantizer outlived its run"
    finally:
        if run.poll() is None:
            run.kill()
    # no entry a later run would take for a finished one (a hidden build folder is swept by the next build)
    assert not [p for p in (tmp_path / "cache" / "ir").glob("*-int8-*") if p.is_dir() and not p.name.startswith(".")]
