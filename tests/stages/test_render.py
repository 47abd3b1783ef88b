import numpy as np

from stages.frames import Frame, Person, Result
from stages.render import COLORS, Renderer, SkeletonAnnotator


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
