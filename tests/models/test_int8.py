"""--precision int8: the graph quantized once with NNCF (in a child process), cached as IR.

Quantizing the real graph on the real calibration set takes 20 s or more;
these tests quantize it at a tiny network size on two calibration frames
(``Recipe(frames=2)``; the recipe's other steps are the same), which takes
seconds. The accuracy gate, on the real recipe, is in
tests/models/test_int8_gate.py.
"""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import run_stream
from models import quantize
from models.backend import BackendConfig, load_backend
from models.calibration import calibration_frames
from models.fetch import fetch_model
from models.registry import DEFAULT_MODEL, get_model
from pipeline.errors import ModelError
from stages.errors import InputError
from stages.settings import JobConfig

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason="OpenVINO not installed")
needs_nncf = pytest.mark.skipif(importlib.util.find_spec("nncf") is None, reason="nncf not installed")
SPEC = get_model(DEFAULT_MODEL)
SIZE = (64, 48)


@pytest.fixture
def tiny_calibration(monkeypatch):
    """Two calibration frames instead of the recipe's 36 (same photos, same making)."""
    monkeypatch.setattr(quantize, "DEFAULT_RECIPE", quantize.Recipe(frames=2))


@pytest.fixture
def int8_config(tmp_path, monkeypatch, tiny_calibration) -> BackendConfig:
    """An int8 OpenVINO config whose model cache is empty (the graph itself is fetched once)."""
    graph = fetch_model(SPEC)
    monkeypatch.setenv("POSESTREAM_CACHE", str(tmp_path / "cache"))
    return BackendConfig(backend="openvino", graph=graph, model=SPEC, precision="int8", resolution=SIZE)


def test_calibration_frames_are_network_inputs_made_from_the_packaged_photos():
    frames = calibration_frames((64, 48))
    assert len(frames) == 2 * 2 * (6 + 3)
    assert all(f.shape == (1, 48, 64, 3) and f.dtype == np.float32 for f in frames)
    assert len({f.tobytes() for f in frames}) == len(frames)  # crops and letterboxes differ
    assert np.array_equal(frames[0], calibration_frames((64, 48))[0])  # deterministic


@needs_openvino
@needs_nncf
def test_int8_is_quantized_once_reported_as_int8_and_a_warm_cache_needs_no_nncf(
        int8_config, tmp_path, monkeypatch):
    backend = load_backend(int8_config)
    assert backend.precision == "int8"
    assert backend.cache == "built"
    maps = backend.infer(np.zeros((1, 48, 64, 3), np.uint8))
    assert maps.shape == (1, 6, 8, 57) and np.isfinite(maps).all()
    backend.close()
    import openvino as ov
    (entry,) = int8_entries(tmp_path / "cache")
    ops = ov.Core().read_model(str(entry / "model.xml")).get_ordered_ops()
    assert "FakeQuantize" in {op.get_type_name() for op in ops}  # quantized, not the f32 IR again
    kept = [op for op in ops if op.get_type_name() in ("Convolution", "GroupConvolution")
            and op.input_value(0).get_node().get_type_name() == "Concat"]
    assert len(kept) == 12  # f32: the first layer of both branches of the six stages

    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf now raises ImportError
    warm = load_backend(int8_config)
    assert warm.precision == "int8" and warm.cache == "hit"
    assert np.array_equal(warm.infer(np.zeros((1, 48, 64, 3), np.uint8)), maps)


@needs_openvino
def test_without_nncf_an_empty_cache_says_what_to_install(int8_config, monkeypatch, tmp_path):
    hidden = tmp_path / "no-nncf"  # the child process finds this "nncf" first, and it cannot load
    (hidden / "nncf").mkdir(parents=True)
    (hidden / "nncf" / "__init__.py").write_text("raise ImportError('no nncf here')\n")
    monkeypatch.setenv("PYTHONPATH", str(hidden))
    with pytest.raises(ModelError, match="int8 quantization failed .*needs nncf, one of posestream's packages"):
        load_backend(int8_config)
    assert not int8_entries(tmp_path / "cache")  # nothing half-built is left in the cache


@needs_openvino
@needs_nncf
def test_the_first_build_says_what_it_does_and_how_long_it_took(int8_config, caplog):
    with caplog.at_level("WARNING", logger="models.quantize"):
        load_backend(int8_config).close()
        load_backend(int8_config).close()  # the second finds it in the cache: nothing said
    said = [r.getMessage() for r in caplog.records if r.name == "models.quantize"]
    assert len(said) == 2, said
    assert said[0].startswith("int8: quantizing the network at 64x48 with NNCF, once on this machine (about ")
    assert "later runs reuse it" in said[0]
    assert said[1].startswith("int8: the quantized network is ready (")


def test_the_child_ends_with_one_line_when_it_fails(tmp_path, capsys):
    code = quantize.main([str(tmp_path / "absent.xml"), "64x48", str(tmp_path / "out.xml"), "{not json",
                          str(os.getppid())])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("posestream: ")


def test_the_build_estimate_scales_with_pixels_and_cores(monkeypatch):
    monkeypatch.setattr(quantize, "usable_cores", lambda: 2)
    small, default, large = (quantize.estimate_seconds(s) for s in ((64, 48), (432, 368), (656, 368)))
    assert small == 10 and default == quantize.SECONDS_AT_432X368 and large > default
    monkeypatch.setattr(quantize, "usable_cores", lambda: 8)
    assert quantize.estimate_seconds((656, 368)) < large


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_int8_and_bf16_with_another_backend_are_refused_before_anything_loads(precision):
    with pytest.raises(InputError, match=f"--precision {precision} runs on the OpenVINO backend only"):
        JobConfig(backend="tf", precision=precision)
    with pytest.raises(InputError, match="OpenVINO backend only"):
        JobConfig(backend="tests.support.fakes:ZeroBackend", precision=precision)


def test_every_precision_is_offered_on_the_command_line():
    action = next(a for a in run_stream.build_parser()._actions if a.dest == "precision")
    assert set(action.choices) == {"f32", "int8", "bf16", "auto"}
    assert action.default == "f32"


def int8_entries(cache: Path) -> list[Path]:
    """The int8 IR folders in a model cache."""
    return [p for p in (cache / "ir").glob("*-int8-*") if p.is_dir()]


def again(config: BackendConfig):
    """A second copy, which finds the int8 IR in the model cache."""
    return load_backend(config)


def test_the_recipe_names_its_calibration():
    from models.calibration import CALIBRATION_RECIPE
    assert CALIBRATION_RECIPE in quantize.INT8_RECIPE


def test_every_field_of_a_recipe_is_in_its_words_so_in_the_cache_key():
    default = quantize.Recipe()
    assert default.describe() == quantize.INT8_RECIPE  # recipe v2's cache entries stay valid
    changed = [quantize.Recipe(alpha=0.7), quantize.Recipe(activations="histogram"), quantize.Recipe(preset="mixed"),
               quantize.Recipe(head=3), quantize.Recipe(tail=6), quantize.Recipe(f32_convs=(18, 20))]
    words = {r.describe() for r in changed}
    assert len(words) == len(changed) and default.describe() not in words


@needs_openvino
def test_a_recipe_keeps_the_convolutions_it_names_in_f32(tmp_path, monkeypatch):
    import openvino as ov
    from models.openvino_backend import f32_ir

    monkeypatch.setenv("POSESTREAM_CACHE", str(tmp_path / "cache"))
    model = ov.Core().read_model(str(f32_ir(BackendConfig(backend="openvino", graph=fetch_model(SPEC), model=SPEC,
                                                          precision="f32", resolution=SIZE)).xml))
    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops()
                    if op.get_type_name() in quantize.CONVOLUTIONS]
    plain = quantize.ignored_layers(model)
    assert convolutions[:5] == plain[:5] and convolutions[10] not in plain
    more = quantize.ignored_layers(model, quantize.Recipe(head=2, f32_convs=(10, 12)))
    assert convolutions[:2] == more[:2] and convolutions[2] not in more
    assert {convolutions[10], convolutions[12]} <= set(more)


@needs_openvino
@needs_nncf
def test_an_unknown_recipe_setting_is_refused_before_quantizing(tmp_path):
    with pytest.raises(ModelError, match="unknown activation ranges 'median'"):
        quantize.quantize_ir(tmp_path / "absent.xml", SIZE, tmp_path / "out.xml", quantize.Recipe(activations="median"))
