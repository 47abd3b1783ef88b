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
    """Draws joints and limbs of every person, and its track id when it has one.

    Args:
        thickness: Limb line width in pixels; scaled up for large frames when 0.
        radius: Joint radius in pixels; scaled up for large frames when 0.
        labels: Draw each tracked person's id in a small box above the head
            (nose, else neck, else the topmost part), in the id's colour.
    """

    def __init__(self, *, thickness: int = 0, radius: int = 0, labels: bool = True) -> None:
        self.thickness = thickness
        self.radius = radius
        self.labels = labels

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
        if self.labels:
            for person in people:
                if person.track_id is not None and person.present.any():
                    _draw_label(image, person, scale, 2 * radius)
        return image


def track_color(track_id: int) -> tuple[int, int, int]:
    """The BGR colour of a track id; neighbouring ids get distant hues."""
    return COLORS[(7 * track_id) % len(COLORS)]


def _draw_label(image: np.ndarray, person: Person, scale: int, gap: int) -> None:
    present = person.present
    if present[0]:
        x, y = person.keypoints[0, :2]
    elif present[1]:
        x, y = person.keypoints[1, :2]
    else:
        top = np.flatnonzero(present)[np.argmin(person.keypoints[present, 1])]
        x, y = person.keypoints[top, :2]
    text = str(person.track_id)
    font_scale, weight = 0.4 * scale, scale
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, weight)
    pad = 2 * scale
    box_w, box_h = w + 2 * pad, h + base + 2 * pad
    height, width = image.shape[:2]
    left = int(min(max(round(x) - box_w // 2, 0), max(width - box_w, 0)))
    top = int(min(max(round(y) - gap - box_h, 0), max(height - box_h, 0)))
    color = track_color(person.track_id)
    cv2.rectangle(image, (left, top), (left + box_w - 1, top + box_h - 1), color, -1)
    ink = (0, 0, 0) if sum(color) > 300 else (255, 255, 255)
    cv2.putText(image, text, (left + pad, top + pad + h), cv2.FONT_HERSHEY_SIMPLEX,
                font_scale, ink, weight, cv2.LINE_AA)


class Renderer:
    """Pipeline step drawing each Result's people onto a copy of its frame."""

    def __init__(self, annotator: SkeletonAnnotator | None = None) -> None:
        self.annotator = annotator or SkeletonAnnotator()

    def __call__(self, result: Result) -> Result:
        """Return the result with ``image`` set to the annotated picture."""
        image = self.annotator.annotate(result.frame.image.copy(), result.people)
        return replace(result, image=image)
