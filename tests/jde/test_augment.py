"""FairMOT augmentation (reidsort.jde.augment): letterbox mapping, affine, flip, HSV."""

from __future__ import annotations

import numpy as np
import pytest

from reidsort.jde.augment import (
    PAD_VALUE,
    AugmentConfig,
    box_candidates,
    hflip,
    hsv_jitter,
    letterbox_frame,
    normalised_to_xyxy,
    random_affine,
    transform_boxes,
)
from reidsort.utils.errors import ReidsortError


def _bright_box(image: np.ndarray, threshold: float = 200) -> np.ndarray:
    """xyxy (pixel edges) of the pixels brighter than ``threshold``."""
    ys, xs = np.nonzero(image[:, :, 0] > threshold)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def _frame_with_rectangle(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    return image


def test_letterbox_maps_boxes_exactly():
    # 100x50 frame into a 96x128 input: scale 1.28, resized 128x64, 16 rows of padding on top
    image = _frame_with_rectangle(50, 100, (20, 10, 60, 40))
    boxes = np.array([[20.0, 10.0, 60.0, 40.0], [0.0, 0.0, 100.0, 50.0]])
    out, mapped, transform = letterbox_frame(image, boxes, (96, 128))
    assert out.shape == (96, 128, 3) and out.dtype == np.float32
    assert (transform.scale, transform.pad_x, transform.pad_y) == (1.28, 0.0, 16.0)
    np.testing.assert_allclose(mapped, [[25.6, 28.8, 76.8, 67.2], [0.0, 16.0, 128.0, 80.0]],
                               atol=1e-9)
    np.testing.assert_allclose(transform.to_image(mapped), boxes, atol=1e-9)
    # the pixels agree with the mapped box (interpolation blurs the edge by at most a pixel)
    np.testing.assert_allclose(_bright_box(out, 128), mapped[0], atol=1.0)
    # FairMOT's padding grey, exactly
    assert (out[:16] == PAD_VALUE).all() and (out[80:] == PAD_VALUE).all()


def test_normalised_labels_to_pixels():
    boxes = normalised_to_xyxy(np.array([[0.5, 0.5, 0.2, 0.4], [0.05, 0.9, 0.1, 0.4]]), 200, 100)
    np.testing.assert_allclose(boxes, [[80, 30, 120, 70], [0, 70, 20, 110]])


def test_hflip_mirrors_image_and_boxes():
    image = _frame_with_rectangle(40, 64, (4, 8, 20, 30))
    flipped, boxes = hflip(image, np.array([[4.0, 8.0, 20.0, 30.0]]))
    np.testing.assert_allclose(boxes, [[44.0, 8.0, 60.0, 30.0]])
    np.testing.assert_array_equal(_bright_box(flipped), boxes[0])
    np.testing.assert_array_equal(flipped, image[:, ::-1])


def test_affine_moves_boxes_with_the_pixels():
    """A fixed scale + translation + rotation: the box follows the warped rectangle."""
    image = _frame_with_rectangle(96, 128, (40, 20, 72, 80)).astype(np.float32)
    config = AugmentConfig(degrees=(4, 4), scale=(0.8, 0.8), shear=(0, 0), translate=(0.1, 0.1))
    for seed in range(3):
        warped, boxes, keep = random_affine(image, np.array([[40.0, 20.0, 72.0, 80.0]]),
                                            np.random.default_rng(seed), config)
        assert keep.tolist() == [True] and warped.shape == image.shape
        # corners of a 4-degree rotated box overshoot; FairMOT's reduction shrinks it by ~0.1 %
        np.testing.assert_allclose(boxes[0], _bright_box(warped, 128), atol=1.5)
    assert (warped[0, 0] == PAD_VALUE).all()  # border filled with FairMOT's grey


def test_affine_identity_keeps_boxes_and_drops_mostly_outside_and_tiny_ones():
    image = np.zeros((96, 128, 3), np.float32)
    boxes = np.array([[10.0, 10.0, 50.0, 90.0],    # kept
                      [-90.0, 10.0, 10.0, 90.0],   # 10 % inside: dropped (< 20 %)
                      [-60.0, 10.0, 40.0, 90.0],   # 40 % inside: kept, amodal
                      [60.0, 60.0, 63.0, 63.0],    # 3 px: tiny, dropped
                      [70.0, 10.0, 110.0, 14.0]])  # aspect 10: dropped
    still = AugmentConfig(degrees=(0, 0), scale=(1, 1), shear=(0, 0), translate=(0, 0))
    warped, kept, keep = random_affine(image, boxes, np.random.default_rng(0), still)
    assert keep.tolist() == [True, False, True, False, False]
    np.testing.assert_allclose(kept, boxes[keep], atol=1e-9)
    np.testing.assert_array_equal(warped, image)


@pytest.mark.parametrize("seed", range(8))
def test_random_affine_survivors_are_mostly_inside_and_not_tiny(seed):
    rng = np.random.default_rng(100 + seed)
    image = np.full((96, 128, 3), 50, np.float32)
    x1, y1 = rng.uniform(-30, 120, 40), rng.uniform(-30, 90, 40)
    boxes = np.column_stack([x1, y1, x1 + rng.uniform(2, 40, 40), y1 + rng.uniform(2, 60, 40)])
    _, kept, keep = random_affine(image, boxes, rng, AugmentConfig())
    assert len(kept) == keep.sum() and 0 < keep.sum() < len(boxes)
    visible = kept.copy()
    visible[:, 0::2] = visible[:, 0::2].clip(0, 128)
    visible[:, 1::2] = visible[:, 1::2].clip(0, 96)
    vw, vh = visible[:, 2] - visible[:, 0], visible[:, 3] - visible[:, 1]
    area = (kept[:, 2] - kept[:, 0]) * (kept[:, 3] - kept[:, 1])
    assert (vw > 4).all() and (vh > 4).all() and (vw * vh >= 0.2 * area - 1e-9).all()


def test_box_candidates_thresholds():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 4, 10], [-8, 0, 2, 10], [-7, 0, 5, 10.0]])
    keep = box_candidates(boxes, (20, 20), min_area_fraction=0.2, min_size=4)
    assert keep.tolist() == [True, False, False, True]


def test_transform_boxes_by_corners():
    shift_and_double = np.array([[2.0, 0, 5], [0, 2.0, -3], [0, 0, 1]])
    out = transform_boxes(np.array([[1.0, 2.0, 3.0, 6.0]]), shift_and_double)
    np.testing.assert_allclose(out, [[7, 1, 11, 9]])


def test_hsv_jitter_changes_saturation_and_value_within_the_fraction():
    rng = np.random.default_rng(0)
    image = rng.integers(60, 180, (32, 32, 3)).astype(np.uint8)
    same = hsv_jitter(image, np.random.default_rng(1), 0.0)
    assert np.abs(same.astype(int) - image).max() <= 2  # HSV round trip only
    jittered = hsv_jitter(image, np.random.default_rng(1), 0.5)
    assert np.abs(jittered.astype(int) - image).mean() > 2
    np.testing.assert_array_equal(jittered, hsv_jitter(image, np.random.default_rng(1), 0.5))
    ratio = jittered.astype(float).max(axis=2).mean() / image.astype(float).max(axis=2).mean()
    assert 0.5 - 0.02 <= ratio <= 1.5 + 0.02  # V scaled by a factor in [1 - f, 1 + f]


def test_augment_config_defaults_and_errors():
    config = AugmentConfig.from_config(True)
    assert (config.degrees, config.translate, config.scale, config.shear) == (
        (-5.0, 5.0), (0.1, 0.1), (0.5, 1.2), (-2.0, 2.0))
    assert (config.hsv_fraction, config.flip, config.min_area_fraction) == (0.5, 0.5, 0.2)
    assert not AugmentConfig.from_config(False).enabled
    assert AugmentConfig.from_config({"flip": 0.0}).flip == 0.0
    with pytest.raises(ReidsortError, match="unknown options"):
        AugmentConfig.from_config({"rotate": 3})
    with pytest.raises(ReidsortError, match="low > high"):
        AugmentConfig(scale=(1.2, 0.5))
    with pytest.raises(ReidsortError, match="bad settings"):
        AugmentConfig(flip=2.0)
