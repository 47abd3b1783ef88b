"""The tracking bench's ground truth and counting (bench/tracking_scene.py), on made-up runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from tracking_scene import SIZE, Scene, match_people, score_run, visible  # noqa: E402


def _skeleton(x: float, y: float, parts: int = 18) -> np.ndarray:
    keypoints = np.zeros((18, 3), np.float32)
    keypoints[:parts] = (x, y, 0.9)
    keypoints[:parts, 1] += np.arange(parts) * 3  # a column of parts going down
    return keypoints


def test_a_skeleton_belongs_to_the_person_it_lies_on_and_pieces_to_nobody():
    labels = np.full((SIZE[1], SIZE[0]), -1, np.int8)
    labels[100:300, 100:200] = 0
    labels[100:300, 400:500] = 1
    skeletons = [_skeleton(450, 120), _skeleton(150, 120), _skeleton(160, 120, parts=2),
                 _skeleton(700, 120)]
    assert match_people(skeletons, labels) == {0: 1, 1: 0}


def test_switches_fragments_and_ids_are_counted_per_person():
    seen, hidden = [True, True], [True, False]
    run = [({0: 0, 1: 1}, [1, 2], seen),
           ({0: 0}, [1], seen),           # person 1 in sight without a skeleton
           ({0: 0, 1: 1}, [1, 2], seen),  # ...and back: a fragmentation, same id
           ({0: 0}, [1], hidden),          # person 1 hidden: no fragmentation
           ({0: 0, 1: 1}, [3, 2], seen),  # person 0's id changes: a switch
           ({1: 0, 0: 1}, [4, 3], seen)]  # person 1 takes 3: a switch
    score = score_run(run, 2)
    assert score.switches == [1, 1] and score.fragments == [0, 1]
    assert score.ids == 4 and score.person_ids == [2, 2] and score.frames == 6


def test_the_scene_knows_who_hides_whom_and_counts_crossings():
    scene = Scene()
    picture = scene.picture(0.0)
    assert picture.shape == (SIZE[1], SIZE[0], 3)
    labels = scene.labels(0.0)
    assert visible(labels, scene.walkers) == [True, True, True]
    crossings = scene.crossings(np.arange(0, 24, 0.04))
    assert sum(crossings) % 2 == 0 and min(crossings) > 0
