"""KalmanFilterXYWH (BoT-SORT's x-y-w-h filter) against a plain per-track 8x8 implementation."""

from __future__ import annotations

import numpy as np
import pytest

from reidsort.tracking.kalman_xywh import (
    STD_WEIGHT_POSITION,
    STD_WEIGHT_VELOCITY,
    KalmanFilterXYWH,
    tlwh_to_xywh,
    xywh_to_tlwh,
)

# -- the same equations, one track at a time, written out with explicit 8x8 matrices ----------
MOTION = np.eye(8)
MOTION[:4, 4:] = np.eye(4)  # x += vx, y += vy, w += vw, h += vh
OBSERVATION = np.eye(4, 8)


def _scales(w: float, h: float) -> np.ndarray:
    return np.array([w, h, w, h])


def ref_initiate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = _scales(z[2], z[3])
    std = np.r_[2 * STD_WEIGHT_POSITION * s, 10 * STD_WEIGHT_VELOCITY * s]
    return np.r_[z, np.zeros(4)], np.diag(std**2)


def ref_predict(x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = _scales(x[2], x[3])
    q = np.diag(np.r_[STD_WEIGHT_POSITION * s, STD_WEIGHT_VELOCITY * s] ** 2)
    return MOTION @ x, MOTION @ p @ MOTION.T + q


def ref_update(x: np.ndarray, p: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.diag((STD_WEIGHT_POSITION * _scales(x[2], x[3])) ** 2)
    s = OBSERVATION @ p @ OBSERVATION.T + r
    k = p @ OBSERVATION.T @ np.linalg.inv(s)
    return x + k @ (z - OBSERVATION @ x), p - k @ s @ k.T


def ref_warp_matrix(warp: np.ndarray) -> np.ndarray:
    """block-diag(R, R, R, R), assembled by hand."""
    r8 = np.zeros((8, 8))
    for block in range(4):
        r8[2 * block : 2 * block + 2, 2 * block : 2 * block + 2] = warp[:, :2]
    return r8


def _random_measurements(rng, count):
    return np.column_stack(
        [
            rng.uniform(0, 1000, count),
            rng.uniform(0, 600, count),
            rng.uniform(10, 120, count),
            rng.uniform(20, 300, count),
        ]
    )


def test_initiate_predict_update_match_per_track_matrices():
    rng = np.random.default_rng(0)
    kf = KalmanFilterXYWH()
    z0 = _random_measurements(rng, 7)
    means, covs = kf.initiate(z0)
    refs = [ref_initiate(z) for z in z0]
    warp = np.array([[0.995, -0.05, 12.0], [0.05, 0.995, -7.0]])  # couples x and y
    for step in range(6):
        means, covs = kf.predict(means, covs)
        refs = [ref_predict(x, p) for x, p in refs]
        if step == 2:
            means, covs = kf.warp(means, covs, warp)
            r8 = ref_warp_matrix(warp)
            refs = [(r8 @ x + np.r_[warp[:, 2], np.zeros(6)], r8 @ p @ r8.T) for x, p in refs]
        z = z0 + rng.normal(0, 3, z0.shape) + step * np.array([5.0, -2.0, 0.5, 1.0])
        means, covs = kf.update(means, covs, z)
        refs = [ref_update(x, p, zi) for (x, p), zi in zip(refs, z)]
        np.testing.assert_allclose(means, [x for x, _ in refs], rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(covs, [p for _, p in refs], rtol=1e-10, atol=1e-8)
    # the warp made the covariance couple x with y, which the filter must keep
    assert np.abs(covs[:, 0, 1]).min() > 0


def test_update_of_any_covariance_uses_the_general_inverse():
    # a covariance coupling x with w (never produced by this filter) takes the general path
    rng = np.random.default_rng(1)
    kf = KalmanFilterXYWH()
    z = _random_measurements(rng, 3)
    means, covs = kf.initiate(z)
    covs[:, 0, 2] = covs[:, 2, 0] = 0.5 * np.sqrt(covs[:, 0, 0] * covs[:, 2, 2])
    new_means, new_covs = kf.update(means, covs, z + 4.0)
    for i in range(3):
        x, p = ref_update(means[i], covs[i], z[i] + 4.0)
        np.testing.assert_allclose(new_means[i], x, rtol=1e-10)
        np.testing.assert_allclose(new_covs[i], p, rtol=1e-10, atol=1e-10)


def test_noise_scales_with_width_for_x_and_height_for_y():
    kf = KalmanFilterXYWH()
    means = np.array([[100.0, 100.0, 40.0, 160.0, 0, 0, 0, 0]])
    _, covs = kf.predict(means, np.zeros((1, 8, 8)))
    expected = np.r_[[40 / 20, 160 / 20, 40 / 20, 160 / 20], [40 / 160, 160 / 160, 40 / 160, 1.0]]
    np.testing.assert_allclose(np.diag(covs[0]), expected**2)
    _, innovation = kf.project(means, np.zeros((1, 8, 8)))
    np.testing.assert_allclose(np.diag(innovation[0]), (expected[:4]) ** 2)


def test_warp_moves_mean_and_rotates_covariance():
    kf = KalmanFilterXYWH()
    means, covs = kf.initiate(np.array([[100.0, 50.0, 40.0, 80.0]]))
    means[0, 4:] = [3.0, -1.0, 0.5, 0.25]
    angle = np.deg2rad(90)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    warp = np.column_stack([rotation, [10.0, 20.0]])
    new_means, new_covs = kf.warp(means, covs, warp)
    r8 = ref_warp_matrix(warp)
    np.testing.assert_allclose(new_means[0], r8 @ means[0] + np.r_[10.0, 20.0, np.zeros(6)])
    np.testing.assert_allclose(new_covs[0], r8 @ covs[0] @ r8.T, atol=1e-12)
    # a quarter turn swaps the x and y variances (and w/h): the width-scaled x variance is now y's
    np.testing.assert_allclose(new_covs[0, 1, 1], covs[0, 0, 0])
    np.testing.assert_allclose(new_covs[0, 0, 0], covs[0, 1, 1])
    # velocities are rotated, never translated
    np.testing.assert_allclose(new_means[0, 4:6], rotation @ means[0, 4:6])
    # the identity warp changes nothing
    same_means, same_covs = kf.warp(means, covs, np.eye(2, 3))
    np.testing.assert_array_equal(same_means, means)
    np.testing.assert_array_equal(same_covs, covs)


def test_warp_of_no_tracks_and_bad_shape():
    kf = KalmanFilterXYWH()
    means, covs = kf.warp(np.zeros((0, 8)), np.zeros((0, 8, 8)), np.eye(2, 3))
    assert means.shape == (0, 8) and covs.shape == (0, 8, 8)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        kf.warp(np.zeros((1, 8)), np.zeros((1, 8, 8)), np.eye(3))


def test_update_of_no_tracks_and_box_conversions():
    kf = KalmanFilterXYWH()
    means, _ = kf.update(np.zeros((0, 8)), np.zeros((0, 8, 8)), np.zeros((0, 4)))
    assert means.shape == (0, 8)
    tlwh = np.array([[10.0, 20.0, 30.0, 60.0]])
    np.testing.assert_allclose(tlwh_to_xywh(tlwh), [[25.0, 50.0, 30.0, 60.0]])
    np.testing.assert_allclose(xywh_to_tlwh(tlwh_to_xywh(tlwh)), tlwh)
    with pytest.raises(ValueError, match="must be > 0"):
        KalmanFilterXYWH(std_weight_position=0.0)
