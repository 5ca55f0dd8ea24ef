"""Decoding FairMOT maps: max-pool NMS, and boxes drawn into targets come back out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reidsort.detection.letterbox import LetterboxTransform
from reidsort.jde.decode import decode, decode_batch, max_pool_nms
from reidsort.jde.targets import build_targets
from reidsort.utils.errors import ReidsortError

SRC = Path(__file__).resolve().parents[2] / "src"
INPUT_HW = (96, 128)
#: several boxes, two of them cut by the image border (clipped by build_targets)
BOXES = np.array([
    [10.0, 12.0, 42.0, 70.0],
    [60.5, 20.25, 75.0, 50.0],
    [-8.0, 50.0, 14.0, 95.0],
    [100.0, 70.0, 140.0, 110.0],
    [88.0, 4.0, 99.0, 26.0],
], np.float32)


def test_max_pool_nms_keeps_only_local_maxima():
    heatmap = np.array([[
        [0.1, 0.2, 0.1, 0.0],
        [0.2, 0.9, 0.3, 0.0],
        [0.1, 0.3, 0.2, 0.7],
        [0.0, 0.0, 0.5, 0.6],
    ]], np.float32)
    expected = np.zeros_like(heatmap)
    expected[0, 1, 1], expected[0, 2, 3] = 0.9, 0.7
    np.testing.assert_array_equal(max_pool_nms(heatmap), expected)
    # ties are all kept (CenterNet's hmax == heat); channels are independent
    two = np.zeros((2, 3, 3), np.float32)
    two[0, 1, 1] = two[0, 1, 2] = 0.5
    two[1, 0, 0] = 0.4
    kept = max_pool_nms(two)
    assert kept[0, 1, 1] == kept[0, 1, 2] == 0.5 and kept[1, 0, 0] == 0.4
    assert np.count_nonzero(kept) == 3


def _maps_from_targets(boxes, size_mode, embedding_dim=8, seed=0, amodal=False):
    """Fill size / offset / embedding maps at the target centres, like a perfect network."""
    targets = build_targets(boxes, np.arange(len(boxes)), INPUT_HW, max_objects=16,
                            size_mode=size_mode, amodal=amodal)
    count = int(targets.mask.sum())
    _, height, width = targets.heatmap.shape
    ys, xs = np.divmod(targets.index[:count], width)
    size = np.zeros((targets.size.shape[1], height, width), np.float32)
    offset = np.zeros((2, height, width), np.float32)
    embedding = np.random.default_rng(seed).normal(size=(embedding_dim, height, width))
    size[:, ys, xs] = targets.size[:count].T
    offset[:, ys, xs] = targets.offset[:count].T
    return targets, count, size, offset, embedding.astype(np.float32), (ys, xs)


@pytest.mark.parametrize(("size_mode", "amodal"), [("wh", False), ("ltrb", False),
                                                   ("ltrb", True)])
def test_boxes_come_back_through_targets_and_decoding(size_mode, amodal):
    targets, count, size, offset, embedding, (ys, xs) = _maps_from_targets(BOXES, size_mode,
                                                                           amodal=amodal)
    assert count == len(BOXES)
    # boxes cut by the border come back clipped, or whole when amodal
    width_height = [INPUT_HW[1], INPUT_HW[0]] * 2
    np.testing.assert_array_equal(targets.boxes[:count],
                                  BOXES if amodal else np.clip(BOXES, 0, width_height))
    frame = decode(targets.heatmap, size, offset, embedding, size_mode=size_mode)
    assert frame.dets.shape == (count, 6) and frame.dets.dtype == np.float32
    np.testing.assert_array_equal(frame.dets[:, 4], 1.0)  # exactly the drawn peaks, no others
    np.testing.assert_array_equal(frame.dets[:, 5], 0)
    order = np.lexsort((frame.dets[:, 1], frame.dets[:, 0]))
    expected_order = np.lexsort((targets.boxes[:count, 1], targets.boxes[:count, 0]))
    np.testing.assert_allclose(frame.dets[order, :4], targets.boxes[expected_order], atol=1e-3)
    # embeddings: the vectors at the peaks, unit length
    vectors = embedding[:, ys, xs].T
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(frame.embeddings[order], vectors[expected_order], atol=1e-6)


def test_top_k_threshold_letterbox_and_batch():
    targets, count, size, offset, embedding, (ys, xs) = _maps_from_targets(BOXES, "wh")
    heatmap = np.zeros_like(targets.heatmap)
    heatmap[0, ys, xs] = np.linspace(0.3, 0.9, count)  # distinct peak scores
    full = decode(heatmap, size, offset)
    assert full.embeddings is None and np.all(np.diff(full.dets[:, 4]) <= 0)
    top2 = decode(heatmap, size, offset, top_k=2)
    np.testing.assert_array_equal(top2.dets, full.dets[:2])
    high = decode(heatmap, size, offset, score_threshold=0.6)
    np.testing.assert_array_equal(high.dets, full.dets[full.dets[:, 4] > 0.6])
    # letterbox undo: input = image * 0.5 + (0, 16)
    transform = LetterboxTransform(scale=0.5, pad_x=0.0, pad_y=16.0)
    image = decode(heatmap, size, offset, letterbox=transform)
    expected = full.dets[:, :4].copy()
    expected[:, 1::2] -= 16
    np.testing.assert_allclose(image.dets[:, :4], expected / 0.5, atol=1e-4)
    frames = decode_batch(np.stack([heatmap, targets.heatmap]), np.stack([size, size]),
                          np.stack([offset, offset]), np.stack([embedding, embedding]))
    assert len(frames) == 2 and frames[1].dets.shape == (count, 6)
    np.testing.assert_array_equal(frames[0].dets, full.dets)


def test_bad_maps_are_clear_errors():
    heatmap = np.zeros((1, 8, 8), np.float32)
    maps = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(ReidsortError, match=r"size map must be \(4, 8, 8\)"):
        decode(heatmap, maps, maps, size_mode="ltrb")
    with pytest.raises(ReidsortError, match="offset map must be"):
        decode(heatmap, maps, np.zeros((2, 4, 4)))
    with pytest.raises(ReidsortError, match="heatmap must be"):
        decode(np.zeros((8, 8)), maps, maps)


def test_decode_and_targets_import_without_torch():
    code = (f"import sys; sys.path.insert(0, {str(SRC)!r})\n"
            "import reidsort.jde.decode, reidsort.jde.targets\n"
            "print(','.join(m for m in sys.modules if m.split('.')[0] in ('torch', 'cv2')))\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True)
    assert completed.stdout.strip() == ""
