from dataclasses import replace

import numpy as np

from stages.frames import Frame, Person, Result
from stages.pose.draw import COLORS, Renderer, SkeletonAnnotator, track_color


def _person(points: dict[int, tuple[float, float]]) -> Person:
    kp = np.zeros((18, 3), np.float32)
    for part, (x, y) in points.items():
        kp[part] = (x, y, 0.9)
    return Person(keypoints=kp, score=1.0)


def test_joints_and_limbs_are_drawn_where_the_keypoints_are():
    img = np.zeros((200, 300, 3), np.uint8)
    person = _person({1: (100, 50), 2: (100, 150)})  # neck -> right shoulder, limb 0
    SkeletonAnnotator(thickness=3, radius=4).annotate(img, [person])
    assert tuple(img[50, 100]) == COLORS[1]  # neck joint colour
    assert tuple(img[150, 100]) == COLORS[2]
    assert tuple(img[100, 100]) == COLORS[0]  # middle of limb 0
    assert img[:, 200:].max() == 0  # nothing far away


def test_missing_parts_and_their_limbs_are_not_drawn():
    img = np.zeros((100, 100, 3), np.uint8)
    SkeletonAnnotator().annotate(img, [_person({0: (50, 50)})])
    assert img[50, 50].any()
    assert not img[0:10].any()  # the zero keypoints at (0, 0) were not drawn


def test_renderer_draws_on_a_copy():
    frame = Frame(source="t", index=0, pts=0.0, image=np.zeros((100, 100, 3), np.uint8))
    out = Renderer()(Result(frame, (_person({0: (50, 50)}),)))
    assert out.image is not frame.image and out.image.any() and not frame.image.any()


def _label_box(img: np.ndarray, color) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero((img == np.array(color, np.uint8)).all(axis=2))
    return (xs.min(), ys.min(), xs.max(), ys.max()) if len(xs) else None


def test_track_id_is_drawn_above_the_head_in_the_colour_of_the_id():
    img = np.zeros((300, 300, 3), np.uint8)
    person = replace(_person({0: (150, 150), 1: (150, 200)}), track_id=4)
    SkeletonAnnotator(radius=3).annotate(img, [person])
    left, top, right, bottom = _label_box(img, track_color(4))
    assert bottom < 150 and left < 150 < right  # centred above the nose
    assert 150 - bottom < 30 and right - left < 40  # near it, and small
    assert img[top:bottom + 1, left:right + 1].reshape(-1, 3).tolist().count([0, 0, 0]) > 0


def test_label_colours_differ_between_ids_and_untracked_people_have_none():
    assert len({track_color(i) for i in range(1, 19)}) == 18
    plain = np.zeros((100, 100, 3), np.uint8)
    SkeletonAnnotator().annotate(plain, [_person({1: (50, 60)})])
    tracked = np.zeros((100, 100, 3), np.uint8)
    SkeletonAnnotator().annotate(tracked, [replace(_person({1: (50, 60)}), track_id=2)])
    assert _label_box(plain, track_color(2)) is None
    assert _label_box(tracked, track_color(2)) is not None  # above the neck when no nose
    no_labels = np.zeros((100, 100, 3), np.uint8)
    SkeletonAnnotator(labels=False).annotate(
        no_labels, [replace(_person({1: (50, 60)}), track_id=2)])
    assert (no_labels == plain).all()


def test_label_stays_inside_the_picture():
    img = np.zeros((40, 40, 3), np.uint8)
    SkeletonAnnotator().annotate(img, [replace(_person({0: (1, 1)}), track_id=123)])
    assert img.any()  # drawn, clamped into the frame, no error
