"""Test pictures and maps of people: synthetic network maps (gaussian heatmaps,
PAFs along limbs) and photos composed from scikit-image's bundled pictures."""

from __future__ import annotations

import numpy as np

from stages.pose.paf_assembly import PAF_CHANNELS, PAIRS

# Joint offsets from the neck, in map pixels, DESIGN.md part order.
SKELETON = (
    (0, -5), (0, 0), (-4, 0), (-6, 6), (-7, 12), (4, 0), (6, 6), (7, 12),
    (-3, 13), (-3, 21), (-3, 29), (3, 13), (3, 21), (3, 29),
    (-1, -6), (1, -6), (-2, -5), (2, -5),
)


def person_joints(neck_x: float, neck_y: float, scale: float = 1.0) -> np.ndarray:
    """(18, 2) joint x, y of one standing person."""
    return np.array([neck_x, neck_y]) + scale * np.array(SKELETON, dtype=float)


def people_maps(h: int, w: int, people: list[np.ndarray], amplitude: float = 0.9,
                sigma: float = 2.0, limb_width: float = 1.0) -> np.ndarray:
    """Builds an (h, w, 57) network output with the given people.

    Args:
        h: Map height.
        w: Map width.
        people: (18, 2) joints per person; NaN rows are absent parts.
        amplitude: Heatmap peak value.
        sigma: Heatmap gaussian width in pixels.
        limb_width: Half-width of the constant PAF band along each limb.

    Returns:
        float32 maps: 19 heatmaps then 38 PAFs.
    """
    maps = np.zeros((h, w, 57), dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    for joints in people:
        for part, (x, y) in enumerate(joints):
            if not np.isnan(x):
                blob = amplitude * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
                maps[:, :, part] = np.maximum(maps[:, :, part], blob)
        for (a, b), (cx, cy) in zip(PAIRS, PAF_CHANNELS):
            _draw_limb(maps, xx, yy, joints[a], joints[b], 19 + cx, 19 + cy, limb_width)
    return maps


def _draw_limb(maps, xx, yy, pa, pb, cx, cy, width) -> None:
    d = pb - pa
    length = float(np.hypot(*d))
    if np.isnan(length) or length == 0:
        return
    u = d / length
    rx, ry = xx - pa[0], yy - pa[1]
    along = rx * u[0] + ry * u[1]
    across = np.abs(ry * u[0] - rx * u[1])
    band = (along >= -width) & (along <= length + width) & (across <= width)
    maps[:, :, cx][band] = u[0]
    maps[:, :, cy][band] = u[1]


# -- photos with people, composed from scikit-image's bundled pictures ------------

def photo(name: str) -> np.ndarray:
    """A scikit-image photo as HxWx3 uint8 BGR.

    Args:
        name: ``"astronaut"`` (colour) or ``"camera"`` (the grey cameraman,
            copied into three channels).
    """
    import cv2
    import skimage.data

    if name not in ("astronaut", "camera"):
        raise ValueError(f"unknown photo {name!r}")
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def compose(recipe: dict) -> np.ndarray:
    """Builds a picture from a recipe, deterministically.

    Args:
        recipe: ``{"size": [W, H], "fill": grey level, "tiles": [tile, ...]}``;
            each tile is ``{"photo": name, "crop": [x0, y0, x1, y1] (optional),
            "flip": mirror left-right (optional), "size": [w, h], "at": [x, y]}``.
            Tiles are cropped, mirrored, resized with ``INTER_AREA`` and pasted
            in order (later ones on top), clipped at the canvas border.

    Returns:
        HxWx3 uint8 BGR picture.
    """
    import cv2

    width, height = recipe["size"]
    canvas = np.full((height, width, 3), recipe.get("fill", 90), np.uint8)
    for tile in recipe["tiles"]:
        image = photo(tile["photo"])
        if "crop" in tile:
            x0, y0, x1, y1 = tile["crop"]
            image = image[y0:y1, x0:x1]
        if tile.get("flip", False):
            image = image[:, ::-1]
        image = cv2.resize(np.ascontiguousarray(image), tuple(tile["size"]),
                           interpolation=cv2.INTER_AREA)
        x, y = tile["at"]
        h, w = min(image.shape[0], height - y), min(image.shape[1], width - x)
        canvas[y:y + h, x:x + w] = image[:h, :w]
    return canvas
