"""Colour-histogram baseline: shape, normalisation, stripes, torch-free import, real crops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from reidsort.reid.histogram import color_histogram_dim, color_histogram_features

RED_BGR = (0, 0, 220)
BLUE_BGR = (220, 0, 0)


def _two_tone_person(top_bgr, bottom_bgr, height=160, width=70) -> np.ndarray:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[: height // 2] = top_bgr
    image[height // 2 :] = bottom_bgr
    return image


def _random_crops(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(int(rng.integers(40, 300)), int(rng.integers(20, 150))) for _ in range(count)]
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]


def test_shape_dtype_and_unit_norm_for_crops_of_any_size():
    crops = _random_crops(5) + [np.full((3, 2, 3), 128, dtype=np.uint8)]
    features = color_histogram_features(crops)
    assert features.shape == (6, color_histogram_dim()) == (6, 6 * 8 * 4 * 4)
    assert features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-6)
    assert (features >= 0).all()


def test_same_image_gives_the_same_vector_and_results_are_deterministic():
    crops = _random_crops(3, seed=4)
    first = color_histogram_features(crops)
    again = color_histogram_features([crop.copy() for crop in crops])
    np.testing.assert_array_equal(first, again)
    stacked = color_histogram_features(np.stack([crops[0], crops[0]]))
    np.testing.assert_array_equal(stacked[0], stacked[1])
    np.testing.assert_array_equal(stacked[0], first[0])


def test_swapping_upper_and_lower_colours_changes_the_feature():
    red_over_blue = _two_tone_person(RED_BGR, BLUE_BGR)
    blue_over_red = _two_tone_person(BLUE_BGR, RED_BGR)
    striped = color_histogram_features([red_over_blue, blue_over_red, red_over_blue])
    assert float(striped[0] @ striped[1]) < 0.2  # stripes keep where each colour is
    assert float(striped[0] @ striped[2]) == pytest.approx(1.0)
    # A single whole-body histogram cannot tell them apart: the stripes are what matters.
    whole = color_histogram_features([red_over_blue, blue_over_red], stripes=1)
    np.testing.assert_allclose(whole[0], whole[1], atol=1e-6)


def test_empty_input_gives_zero_rows():
    assert color_histogram_features([]).shape == (0, color_histogram_dim())
    empty_stack = np.zeros((0, 128, 64, 3), dtype=np.uint8)
    assert color_histogram_features(empty_stack, stripes=2, bins=(4, 2, 2)).shape == (0, 32)


def test_bad_images_and_settings_are_rejected():
    with pytest.raises(ValueError, match="image 1 must be an HxWx3 uint8 BGR array"):
        color_histogram_features([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="image 0 is empty"):
        color_histogram_features([np.zeros((0, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="image 0 must be an HxWx3 uint8"):
        color_histogram_features([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match=r"bins must lie in"):
        color_histogram_features(_random_crops(1), bins=(0, 4, 4))


def test_module_does_not_import_torch():
    src = Path(__file__).resolve().parents[2] / "src"
    code = (
        "import sys; import reidsort.reid.histogram as h; "
        "h.color_histogram_features([]); "
        "print('torch' in sys.modules)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    assert completed.stdout.strip() == "False"


def _market_split(folder: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    files = sorted(folder.glob("*.jpg"))
    names = [re.match(r"(-?\d+)_c(\d+)s\d+_", path.name) for path in files]
    images = [cv2.imread(str(path)) for path in files]
    pids = np.array([int(match.group(1)) for match in names])
    camids = np.array([int(match.group(2)) for match in names])
    return images, pids, camids


def test_retrieval_on_real_market1501_crops_beats_chance(shared_data):
    torch = pytest.importorskip("torch")
    from reidsort.reid.metrics import evaluate_retrieval

    root = shared_data / "reid" / "mini_market1501"
    q_images, q_pids, q_camids = _market_split(root / "query")
    g_images, g_pids, g_camids = _market_split(root / "bounding_box_test")
    result = evaluate_retrieval(
        torch.from_numpy(color_histogram_features(q_images)),
        torch.from_numpy(color_histogram_features(g_images)),
        q_pids, g_pids, q_camids, g_camids,
    )
    # Queries with a same-identity gallery image from another camera, counted from file names.
    expected_valid = [
        bool(((g_pids == pid) & (g_camids != cam)).any()) for pid, cam in zip(q_pids, q_camids)
    ]
    assert result.valid_query.tolist() == expected_valid
    # Random features give mAP about 0.15 here (99th percentile 0.23 over 200 draws); the
    # histogram baseline measured 0.458 mAP, 0.267 Rank-1 on these 30 valid queries.
    assert result.mAP > 0.35
    assert result.rank(10) > 0.7
