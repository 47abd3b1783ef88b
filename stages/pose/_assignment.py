"""One-to-one assignment of least total cost (the Hungarian method).

``min_cost_pairs`` pairs the rows and columns of a cost matrix so that no
row or column is used twice and the sum of the chosen costs is smallest; a
pair whose cost is infinite is never chosen. The tracker uses it to pair
tracks with the people of a frame, and the tracking bench to pair detections
with the people composited into its clip. A handful of people per frame:
the O(n^3) shortest-augmenting-path form below (Kuhn-Munkres with
potentials, as in Jonker-Volgenant) takes microseconds, and spares the
second it takes to import ``scipy.optimize``.
"""

from __future__ import annotations

import math

import numpy as np


def min_cost_pairs(cost: np.ndarray) -> list[tuple[int, int]]:
    """The (row, column) pairs of least total cost, infinite costs left out.

    Among the assignments that pair the most rows and columns at finite
    cost, the cheapest; pairs come sorted by row.

    Args:
        cost: A 2-D array of costs, ``inf`` where a row and a column must
            not be paired. Finite costs may be negative.

    Returns:
        Sorted ``(row, column)`` pairs, each row and column at most once.

    Raises:
        ValueError: ``cost`` is not 2-D or holds NaN.
    """
    cost = np.asarray(cost, dtype=float)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D array, got shape {cost.shape}")
    if np.isnan(cost).any():
        raise ValueError("cost holds NaN")
    rows, cols = cost.shape
    finite = np.isfinite(cost)
    if not finite.any():
        return []
    # An infinite cost becomes one larger than any full assignment of finite
    # ones, so pairing more at finite cost always wins over fewer.
    span = np.ptp(cost[finite]) + 1.0
    big = float(cost[finite].min() + span * (min(rows, cols) + 1))
    square = np.full((max(rows, cols),) * 2, big)
    square[:rows, :cols] = np.where(finite, cost, big)
    column_of_row = _hungarian(square)
    return [(r, c) for r, c in enumerate(column_of_row[:rows]) if c < cols and finite[r, c]]


def _hungarian(cost: np.ndarray) -> list[int]:
    """The column of each row in a least-cost perfect assignment of a square matrix."""
    n = len(cost)
    u, v = [0.0] * (n + 1), [0.0] * (n + 1)  # potentials of rows and columns (1-based)
    row_of = [0] * (n + 1)  # row_of[j]: the row in column j, 0 for none
    for i in range(1, n + 1):
        row_of[0], j0 = i, 0
        slack, way, used = [math.inf] * (n + 1), [0] * (n + 1), [False] * (n + 1)
        while row_of[j0]:  # grow the tree of tight edges until a free column is reached
            used[j0] = True
            i0, delta, j1 = row_of[j0], math.inf, 0
            for j in range(1, n + 1):
                if used[j]:
                    continue
                reduced = cost[i0 - 1, j - 1] - u[i0] - v[j]
                if reduced < slack[j]:
                    slack[j], way[j] = reduced, j0
                if slack[j] < delta:
                    delta, j1 = slack[j], j
            for j in range(n + 1):
                if used[j]:
                    u[row_of[j]] += delta
                    v[j] -= delta
                else:
                    slack[j] -= delta
            j0 = j1
        while j0:  # flip the augmenting path
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    column_of = [0] * n
    for j in range(1, n + 1):
        column_of[row_of[j] - 1] = j - 1
    return column_of
