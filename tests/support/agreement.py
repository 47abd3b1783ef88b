"""How far one network output's skeletons are from a reference's: the accuracy gate's measures.

``bench/bench_precision.py`` (the full gate) and tests/models/test_int8_gate.py
(the gate in CI) share them, so both judge a precision the same way
(``models.precision`` states the thresholds).

- keypoint agreement: of the reference's people with ``MIN_PARTS`` or more
  parts, the share of keypoints that the other result has a keypoint of the
  same part for within 10% of the person's size, counted both ways;
- skeletons: people with ``MIN_PARTS`` or more parts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.support.people_maps import compose

GOLDEN = Path(__file__).resolve().parent / "golden"
NUM_HEAT = 18  # part heatmaps; channel 18 is the background
MIN_PARTS = 6


def golden_pictures(crops: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """The golden scenes (photos that ship with the project), each also mirrored and cut into crops."""
    base = {p.stem: compose(json.loads(p.read_text())["recipe"]) for p in sorted(GOLDEN.glob("*.json"))}
    return varied(base, crops, seed)


def varied(base: dict[str, np.ndarray], crops: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Each picture, mirrored, and ``crops`` random crops of 60-90% of each side of both."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, image in base.items():
        for mirrored in (False, True):
            im = np.ascontiguousarray(image[:, ::-1]) if mirrored else image
            tag = f"{name}{'_m' if mirrored else ''}"
            out[tag] = im
            h, w = im.shape[:2]
            for i in range(crops):
                ch, cw = int(h * rng.uniform(0.6, 0.9)), int(w * rng.uniform(0.6, 0.9))
                y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                out[f"{tag}_c{i}"] = np.ascontiguousarray(im[y:y + ch, x:x + cw])
    return out


def skeletons(people: list) -> int:
    """People with ``MIN_PARTS`` or more parts."""
    return sum(p.present.sum() >= MIN_PARTS for p in people)


def agreement(ref: list, got: list) -> tuple[int, int]:
    """(hits, total): keypoints of big ``ref`` people matched by a same-part ``got`` keypoint."""
    hits = total = 0
    for person in ref:
        present = person.present
        if present.sum() < MIN_PARTS:
            continue
        pts = person.keypoints[present, :2]
        reach = 0.1 * max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0)
        for k in np.nonzero(present)[0]:
            total += 1
            near = [np.hypot(*(g.keypoints[k, :2] - person.keypoints[k, :2])) for g in got if g.keypoints[k, 2] > 0]
            hits += bool(near) and min(near) <= reach
    return hits, total


def compare(ref: dict, maps: dict, people_ref: dict, images: dict, decoder) -> dict:
    """A candidate's maps against the reference's, picture by picture.

    Returns:
        ``heat_d``/``paf_d``: largest absolute differences; ``heat_bias``/
        ``paf_bias``: mean signed change where the reference is above 0.1;
        ``found``: the candidate's skeletons; ``agree``: keypoint agreement, %.
    """
    heat_d = paf_d = 0.0
    heat_bias, paf_bias = [], []
    hits = total = found = 0
    for k, im in images.items():
        r, g = ref[k], maps[k]
        heat_d = max(heat_d, float(np.abs(r[..., :NUM_HEAT + 1] - g[..., :NUM_HEAT + 1]).max()))
        paf_d = max(paf_d, float(np.abs(r[..., NUM_HEAT + 1:] - g[..., NUM_HEAT + 1:]).max()))
        strong = r[..., :NUM_HEAT] > 0.1
        heat_bias.append((g[..., :NUM_HEAT] - r[..., :NUM_HEAT])[strong])
        rp, gp = np.abs(r[..., NUM_HEAT + 1:]), np.abs(g[..., NUM_HEAT + 1:])
        paf_bias.append((gp - rp)[rp > 0.1])
        people = decoder(g, (im.shape[1], im.shape[0]))
        found += skeletons(people)
        for a, b in ((people_ref[k], people), (people, people_ref[k])):
            h, t = agreement(a, b)
            hits, total = hits + h, total + t
    return {"heat_d": heat_d, "paf_d": paf_d, "heat_bias": float(np.concatenate(heat_bias).mean()),
            "paf_bias": float(np.concatenate(paf_bias).mean()), "found": found,
            "agree": 100 * hits / max(total, 1)}
