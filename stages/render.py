"""Drawing skeletons onto frames."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from stages.frames import Person, Result

# Limbs drawn, as (part, part) in the 18-part order; the two ear-shoulder
# pairs the network also predicts are not drawn (as tf-pose-estimation).
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# One BGR colour per part (and per limb, by limb index), OpenPose's palette.
COLORS = (
    (0, 0, 255), (0, 85, 255), (0, 170, 255), (0, 255, 255), (0, 255, 170), (0, 255, 85),
    (0, 255, 0), (85, 255, 0), (170, 255, 0), (255, 255, 0), (255, 170, 0), (255, 85, 0),
    (255, 0, 0), (255, 0, 85), (255, 0, 170), (255, 0, 255), (170, 0, 255), (85, 0, 255),
)


class SkeletonAnnotator:
    """Draws joints and limbs of every person.

    Args:
        thickness: Limb line width in pixels; scaled up for large frames when 0.
        radius: Joint radius in pixels; scaled up for large frames when 0.
    """

    def __init__(self, *, thickness: int = 0, radius: int = 0) -> None:
        self.thickness = thickness
        self.radius = radius

    def annotate(self, image: np.ndarray, people: tuple[Person, ...] | list[Person]) -> np.ndarray:
        """Draw ``people`` onto ``image`` in place and return it."""
        scale = max(1, round(max(image.shape[:2]) / 640))
        thickness = self.thickness or 2 * scale
        radius = self.radius or 3 * scale
        for person in people:
            pts = np.rint(person.keypoints[:, :2]).astype(int)
            present = person.present
            for i, (a, b) in enumerate(LIMBS):
                if present[a] and present[b]:
                    cv2.line(image, tuple(pts[a]), tuple(pts[b]), COLORS[i], thickness, cv2.LINE_AA)
            for part in np.flatnonzero(present):
                cv2.circle(image, tuple(pts[part]), radius, COLORS[part], -1, cv2.LINE_AA)
        return image


class Renderer:
    """Pipeline step drawing each Result's people onto a copy of its frame."""

    def __init__(self, annotator: SkeletonAnnotator | None = None) -> None:
        self.annotator = annotator or SkeletonAnnotator()

    def __call__(self, result: Result) -> Result:
        """Return the result with ``image`` set to the annotated picture."""
        image = self.annotator.annotate(result.frame.image.copy(), result.people)
        return replace(result, image=image)
