"""Every CPU backend's maps against TensorFlow's on a real image (loads the model: slow)."""

import importlib.util
import os

import cv2
import numpy as np
import pytest
import skimage.data

from models.backend import BackendConfig, load_backend
from models.fetch import fetch_model
from models.registry import DEFAULT_MODEL, get_model
from stages.pose.maps_to_people import PafDecoder

pytestmark = pytest.mark.slow
SPEC = get_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def astronaut():
    img = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.resize(img, (432, 368), interpolation=cv2.INTER_CUBIC)[None]


@pytest.fixture(scope="module")
def reference(astronaut):
    tf = load_backend(BackendConfig(backend="tf", graph=fetch_model(SPEC), model=SPEC))
    return tf.infer(astronaut)


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")
def test_openvino_f32_matches_tensorflow(astronaut, reference):
    ov = load_backend(BackendConfig(backend="openvino", graph=fetch_model(SPEC), model=SPEC,
                                    precision="f32", threads=2))
    maps = ov.infer(astronaut)
    assert maps.shape == reference.shape == (1, 46, 54, 57) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, reference, atol=1e-3)
    people = PafDecoder()(maps[0], (512, 512))
    ref_people = PafDecoder()(reference[0], (512, 512))
    assert len(people) == len(ref_people) == 1
    np.testing.assert_allclose(people[0].keypoints, ref_people[0].keypoints, atol=1e-2)


def test_tensorflow_batches_equal_single_calls(astronaut, reference):
    tf = load_backend(BackendConfig(backend="tf", graph=fetch_model(SPEC), model=SPEC))
    batch = np.concatenate([astronaut, astronaut[:, :, ::-1]])
    maps = tf.infer(batch)
    np.testing.assert_allclose(maps[:1], reference, atol=1e-4)
    np.testing.assert_allclose(maps[1:], tf.infer(batch[1:]), atol=1e-4)


def test_tensorflow_f32_turns_tensorfloat32_off_and_auto_leaves_it_on():
    """TF runs f32 convolutions in TF32 on Ampere+ GPUs by default; f32 must mean f32."""
    tf_cfg = dict(backend="tf", graph=fetch_model(SPEC), model=SPEC)
    auto = load_backend(BackendConfig(**tf_cfg, precision="auto"))
    import tensorflow as tf
    assert tf.config.experimental.tensor_float_32_execution_enabled()
    assert auto.precision == "f32"  # on the CPU there is no TF32 to use
    exact = load_backend(BackendConfig(**tf_cfg, precision="f32"))
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    assert exact.precision == "f32"


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")
def test_openvino_auto_reports_its_precision_and_still_finds_the_person(astronaut, reference):
    ov = load_backend(BackendConfig(backend="openvino", graph=fetch_model(SPEC), model=SPEC,
                                    precision="auto", threads=2, resolution=(432, 368)))
    assert ov.precision == "int8"  # the fastest that passes the accuracy gate (models.precision)
    maps = ov.infer(astronaut)
    assert maps.shape == reference.shape and np.isfinite(maps).all()
    people = PafDecoder()(maps[0], (512, 512))
    ref = PafDecoder()(reference[0], (512, 512))[0]
    assert len(people) == 1
    both = people[0].present & ref.present
    assert both.sum() >= ref.present.sum() - 2
    # each shared part within 5% of the picture of where f32 puts it
    assert np.abs(people[0].keypoints[both, :2] - ref.keypoints[both, :2]).max() < 0.05 * 512


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_openvino_copies_sharing_the_cores_are_not_pinned_to_the_same_ones():
    """Pinned, every 1-thread copy sat on core 0: two workers ran at half speed."""
    cfg = dict(backend="openvino", graph=fetch_model(SPEC), model=SPEC, resolution=(432, 368))
    share = load_backend(BackendConfig(**cfg, threads=1))
    assert not share.pinned  # OpenVINO's default on Linux is to pin
