"""FairMOT training targets: Gaussian peaks, size / offset / index tables, clipping and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reidsort.jde.targets import build_targets, draw_gaussian, gaussian_kernel, gaussian_radius
from reidsort.utils.errors import ReidsortError


def test_gaussian_radius_is_centernets_smallest_case():
    # h = w = 10, overlap 0.7: case 3 (a3 = 2.8, b3 = -28, c3 = -30) is the smallest
    assert gaussian_radius(10, 10) == pytest.approx((-28 + math.sqrt(28 ** 2 + 4 * 2.8 * 30)) / 2)
    assert gaussian_radius(10, 10) == pytest.approx(2.7332, abs=1e-4)
    assert gaussian_radius(40, 10) > gaussian_radius(10, 10)
    assert gaussian_radius(10, 10, min_overlap=0.9) < gaussian_radius(10, 10)


def test_gaussian_kernel_has_peak_one_and_sigma_a_sixth_of_the_diameter():
    kernel = gaussian_kernel(2)
    sigma = 5 / 6
    assert kernel.shape == (5, 5) and kernel[2, 2] == 1.0
    assert kernel[2, 3] == pytest.approx(math.exp(-1 / (2 * sigma ** 2)))
    assert kernel[0, 0] == pytest.approx(math.exp(-8 / (2 * sigma ** 2)))
    assert gaussian_kernel(0).tolist() == [[1.0]]


def test_draw_gaussian_keeps_the_maximum_and_cuts_at_borders():
    heatmap = np.zeros((6, 8), np.float32)
    draw_gaussian(heatmap, (0, 0), 2)  # corner: only the bottom-right quarter lands
    assert heatmap[0, 0] == 1.0 and heatmap[2, 2] == pytest.approx(gaussian_kernel(2)[4, 4])
    assert heatmap[3:, :].max() == 0 and heatmap[:, 3:].max() == 0
    draw_gaussian(heatmap, (1, 0), 1)  # overlaps: element-wise max, not a sum
    assert heatmap.max() == 1.0 and heatmap[0, 1] == 1.0 and heatmap[0, 0] == 1.0
    with pytest.raises(ReidsortError, match="outside"):
        draw_gaussian(heatmap, (8, 0), 1)


def test_one_box_fills_every_table_as_computed_by_hand():
    boxes = np.array([[10, 14, 42, 50]], np.float32)  # /4: (2.5, 3.5, 10.5, 12.5)
    wh = build_targets(boxes, np.array([7]), (64, 64), max_objects=4)
    # centre (6.5, 8.0) -> cell (6, 8), offset (0.5, 0); 16x16 map
    assert wh.heatmap.shape == (1, 16, 16) and wh.heatmap.dtype == np.float32
    assert wh.heatmap[0, 8, 6] == 1.0 and (wh.heatmap == 1.0).sum() == 1
    assert wh.index.tolist() == [8 * 16 + 6, 0, 0, 0]
    assert wh.mask.tolist() == [True, False, False, False]
    assert wh.ids.tolist() == [7, -1, -1, -1]
    np.testing.assert_allclose(wh.offset[0], [0.5, 0.0])
    np.testing.assert_allclose(wh.size[0], [8.0, 9.0])
    np.testing.assert_allclose(wh.boxes[0], boxes[0])
    assert wh.size.shape == (4, 2) and not wh.size[1:].any()
    ltrb = build_targets(boxes, np.array([7]), (64, 64), max_objects=4, size_mode="ltrb")
    np.testing.assert_allclose(ltrb.size[0], [4.0, 4.5, 4.0, 4.5])
    np.testing.assert_array_equal(ltrb.heatmap, wh.heatmap)


def test_boxes_are_clipped_and_zero_area_ones_dropped():
    boxes = np.array([
        [-20, 8, 20, 40],  # half outside on the left: clipped to x1 = 0
        [70, 0, 90, 20],  # entirely right of the 64-wide image: zero area after clipping
        [30, 30, 30, 50],  # zero width
        [40, 40, 80, 80],  # bottom-right corner
    ], np.float32)
    targets = build_targets(boxes, np.array([1, 2, 3, 4]), (64, 64), max_objects=8)
    assert targets.mask.sum() == 2
    assert targets.ids[:2].tolist() == [1, 4]
    np.testing.assert_allclose(targets.boxes[:2], [[0, 8, 20, 40], [40, 40, 64, 64]])
    # the clipped box's centre is on its visible part: x = 10 px = 2.5 cells
    np.testing.assert_allclose(targets.size[0], [5.0, 8.0])
    assert targets.index[0] == 6 * 16 + 2 and targets.heatmap[0, 6, 2] == 1.0


def test_amodal_boxes_keep_their_full_extent_from_a_clamped_centre():
    boxes = np.array([[-40, 8, 8, 40], [70, 0, 90, 20]], np.float32)  # /4: (-10, 2, 2, 10)
    targets = build_targets(boxes, np.array([1, 2]), (64, 64), max_objects=2, size_mode="ltrb",
                            amodal=True)
    assert targets.mask.tolist() == [True, False]  # the invisible box is still dropped
    # centre (-4, 6) clamped to (0, 6); ltrb to the full box's sides
    assert targets.index[0] == 6 * 16 + 0 and targets.heatmap[0, 6, 0] == 1.0
    np.testing.assert_allclose(targets.offset[0], [0.0, 0.0])
    np.testing.assert_allclose(targets.size[0], [10.0, 4.0, 2.0, 4.0])
    np.testing.assert_allclose(targets.boxes[0], boxes[0])


def test_ids_minus_one_stay_detection_targets_and_classes_pick_the_heatmap():
    boxes = np.array([[0, 0, 16, 16], [32, 32, 48, 60]], np.float32)
    targets = build_targets(boxes, np.array([-1, 3]), (64, 64), classes=np.array([1, 0]),
                            num_classes=2, max_objects=2)
    assert targets.mask.tolist() == [True, True] and targets.ids.tolist() == [-1, 3]
    assert targets.heatmap[1, 2, 2] == 1.0 and targets.heatmap[0, 2, 2] < 1.0
    assert targets.heatmap[0, 11, 10] == 1.0


def test_no_boxes_give_empty_targets():
    targets = build_targets(np.zeros((0, 4)), np.zeros(0, np.int64), (32, 64), max_objects=3)
    assert targets.heatmap.shape == (1, 8, 16) and not targets.heatmap.any()
    assert not targets.mask.any() and targets.ids.tolist() == [-1, -1, -1]


def test_too_many_objects_is_an_error_naming_the_count():
    boxes = np.array([[i * 4, 0, i * 4 + 4, 8] for i in range(6)], np.float32)
    with pytest.raises(ReidsortError, match="6 boxes in one image exceed max_objects=5"):
        build_targets(boxes, np.arange(6), (32, 32), max_objects=5)
    # boxes dropped by clipping do not count
    outside = np.concatenate([boxes[:5], [[100, 100, 120, 120]]])
    assert build_targets(outside, np.arange(6), (32, 32), max_objects=5).mask.sum() == 5


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ids": np.array([1.5])}, "ids must be integers"),
    ({"ids": np.array([-2])}, "ids must be >= -1"),
    ({"ids": np.array([1, 2])}, "one value per box"),
    ({"classes": np.array([1])}, r"class 1 outside \[0, 1\)"),
    ({"input_hw": (30, 64)}, "multiples of the stride 4"),
    ({"boxes_xyxy": np.array([[10, 10, 5, 20]])}, "x2 < x1"),
    ({"boxes_xyxy": np.array([[0, 0, np.nan, 4]])}, "finite"),
    ({"size_mode": "xywh"}, "size_mode must be one of wh, ltrb"),
])
def test_bad_input_is_one_clear_error(kwargs, message):
    args = {"boxes_xyxy": np.array([[0, 0, 8, 8]]), "ids": np.array([0]), "input_hw": (32, 32),
            **kwargs}
    with pytest.raises(ReidsortError, match=message):
        build_targets(**args)
