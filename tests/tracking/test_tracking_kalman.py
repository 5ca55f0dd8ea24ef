"""Batched Kalman filter against the reference's one-track-at-a-time filter."""

from __future__ import annotations

import numpy as np
import pytest

from reidsort.tracking import CHI2_INV_95, KalmanFilterXYAH
from reidsort.tracking.kalman_filter import blocks_to_covariance, covariance_to_blocks


def _measurements(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.uniform(0, 600, (count, 2)), rng.uniform(0.3, 0.6, count), rng.uniform(40, 300, count)]
    )


def test_matches_reference_over_many_steps():
    reference_module = pytest.importorskip("deep_sort_realtime.deep_sort.kalman_filter")
    reference = reference_module.KalmanFilter()
    kf = KalmanFilterXYAH()
    rng = np.random.default_rng(0)
    start = _measurements(12, 1)
    means, blocks = kf.initiate(start)
    ref = [reference.initiate(m) for m in start]
    for step in range(25):
        means, blocks = kf.predict(means, blocks)
        ref = [reference.predict(m, c) for m, c in ref]
        ref_means = np.array([m for m, _ in ref])
        ref_covs = np.array([c for _, c in ref])
        np.testing.assert_allclose(means, ref_means, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(blocks_to_covariance(blocks), ref_covs, rtol=1e-10, atol=1e-9)
        measured = (
            start
            + rng.normal(0, 3, start.shape) * [1, 1, 0.01, 1]
            + step * np.array([2, 1, 0, 0.5])
        )
        gating = kf.gating_distance(means, blocks, measured)
        expected = np.stack([reference.gating_distance(m, c, measured) for m, c in ref])
        np.testing.assert_allclose(gating, expected, rtol=1e-10)
        gating_xy = kf.gating_distance(means, blocks, measured, only_position=True)
        expected_xy = np.stack([reference.gating_distance(m, c, measured, True) for m, c in ref])
        np.testing.assert_allclose(gating_xy, expected_xy, rtol=1e-10)
        if step % 3 != 2:  # some frames without a measurement
            means, blocks = kf.update(means, blocks, measured)
            ref = [reference.update(m, c, z) for (m, c), z in zip(ref, measured)]
    projected_mean, projected_cov = kf.project(means, blocks)
    expected = [reference.project(m, c) for m, c in ref]
    np.testing.assert_allclose(projected_cov, np.array([c for _, c in expected]), rtol=1e-10)


def test_covariance_blocks_round_trip_and_reject_coupling():
    kf = KalmanFilterXYAH()
    means, blocks = kf.initiate(_measurements(3, 0))
    means, blocks = kf.predict(means, blocks)
    full = blocks_to_covariance(blocks)
    assert np.allclose(full, np.swapaxes(full, 1, 2))
    assert np.all(np.linalg.eigvalsh(full) > 0)
    np.testing.assert_array_equal(covariance_to_blocks(full), blocks)
    full[0, 0, 1] = full[0, 1, 0] = 1.0
    with pytest.raises(ValueError, match="couples"):
        covariance_to_blocks(full)


def test_gate_threshold_and_empty_inputs():
    kf = KalmanFilterXYAH()
    assert CHI2_INV_95[4] == 9.4877
    means, blocks = kf.initiate(_measurements(2, 0))
    assert kf.gating_distance(means, blocks, np.zeros((0, 4))).shape == (2, 0)
    assert kf.gating_distance(means[:0], blocks[:0], _measurements(3, 1)).shape == (0, 3)
    same = kf.gating_distance(means, blocks, means[:, :4])
    np.testing.assert_allclose(np.diag(same), 0.0, atol=1e-12)
    new_means, new_blocks = kf.update(means[:0], blocks[:0], np.zeros((0, 4)))
    assert new_means.shape == (0, 8) and new_blocks.shape == (0, 3, 4)
