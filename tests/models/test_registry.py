import pytest

from models.backend import BackendConfig, load_backend
from models.registry import DEFAULT_MODEL, MODELS, get_model
from stages.errors import InputError


def test_default_model_is_fetchable_with_a_checksum():
    spec = get_model(DEFAULT_MODEL)
    assert spec.fetchable and len(spec.sha256) == 64
    assert (spec.input_tensor, spec.output_tensor, spec.channels) == (
        "image:0", "Openpose/concat_stage7:0", 57)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(InputError) as err:
        get_model("resnet")
    assert all(name in str(err.value) for name in MODELS)


def test_unknown_backend_lists_the_known_ones(tmp_path):
    with pytest.raises(InputError, match="known: tf"):
        load_backend(BackendConfig(backend="nope", graph=tmp_path / "g.pb", model=get_model(DEFAULT_MODEL)))
