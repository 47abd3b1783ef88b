"""Calibration frames for int8 quantization, made from photos with people that ship with a package.

Post-training quantization measures the range of every activation on a few
frames. These are made here, deterministically, from scikit-image's bundled
astronaut and cameraman (a project dependency already), never from the
user's data: each photo whole and mirrored, cut into random crops (people
large in the frame) and pasted small into letterboxes on a plain canvas
(people small in the frame), then stretched to the network size as the
pipeline's resize does.
"""

from __future__ import annotations

import cv2
import numpy as np

CALIBRATION_RECIPE = "skimage astronaut+camera, mirror, 6 crops 0.5-0.9, 2 letterboxes 0.35/0.6, seed 1 (v1)"


def calibration_photos() -> list[np.ndarray]:
    """The packaged photos the frames are made from, as HxWx3 uint8 BGR."""
    import skimage.data  # slow import; only needed when quantizing

    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    camera = np.repeat(skimage.data.camera()[:, :, None], 3, axis=2)
    return [astronaut, camera]


def calibration_frames(size: tuple[int, int], photos: list[np.ndarray] | None = None,
                       *, crops: int = 6, seed: int = 1) -> list[np.ndarray]:
    """Network inputs for calibration: [1, H, W, 3] float32 BGR 0..255 each.

    Args:
        size: Network input (width, height).
        photos: Pictures to make them from (default ``calibration_photos()``).
        crops: Random crops per photo and orientation.
        seed: Seed of the crop and letterbox positions.

    Returns:
        ``len(photos) * 2 * (crops + 3)`` frames.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for image in photos if photos is not None else calibration_photos():
        for mirrored in (False, True):
            picture = np.ascontiguousarray(image[:, ::-1]) if mirrored else image
            frames += [picture, *_crops(picture, rng, crops), *_letterboxes(picture, rng, size)]
    return [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC)[None].astype(np.float32) for f in frames]


def _crops(image: np.ndarray, rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Random crops of 50-90% of each side (people larger in the frame)."""
    h, w = image.shape[:2]
    out = []
    for _ in range(count):
        ch, cw = int(h * rng.uniform(0.5, 0.9)), int(w * rng.uniform(0.5, 0.9))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(np.ascontiguousarray(image[y:y + ch, x:x + cw]))
    return out


def _letterboxes(image: np.ndarray, rng: np.random.Generator, size: tuple[int, int]) -> list[np.ndarray]:
    """The photo pasted at 35% and 60% of a canvas twice the network size (people small)."""
    width, height = size[0] * 2, size[1] * 2
    h, w = image.shape[:2]
    out = []
    for share in (0.35, 0.6):
        canvas = np.full((height, width, 3), int(rng.integers(40, 200)), np.uint8)
        th = int(height * share)
        tw = min(int(th * w / h), width)
        tile = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
        y, x = int(rng.integers(0, height - th + 1)), int(rng.integers(0, width - tw + 1))
        canvas[y:y + th, x:x + tw] = tile
        out.append(canvas)
    return out
