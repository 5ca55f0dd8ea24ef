"""SORT's xysr Kalman filter (batched) against a plain one-track-at-a-time 7x7 implementation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reidsort.tracking.kalman_sort import (
    AREA,
    VAREA,
    KalmanFilterXYSR,
    xysr_to_xyxy,
    xyxy_to_xysr,
)


class PlainSortKalman:
    """One track's filter written out as in SORT / OC-SORT ``KalmanBoxTracker`` (filterpy-style
    textbook matrices; ``x`` is a (7,) vector, ``P`` a 7x7 matrix). Also used by test_ocsort."""

    F = np.array(
        [
            [1, 0, 0, 0, 1, 0, 0],
            [0, 1, 0, 0, 0, 1, 0],
            [0, 0, 1, 0, 0, 0, 1],
            [0, 0, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 1],
        ],
        dtype=float,
    )
    H = np.eye(4, 7)

    def __init__(self, z: np.ndarray) -> None:
        self.R = np.eye(4)
        self.R[2:, 2:] *= 10.0
        self.P = np.eye(7)
        self.P[4:, 4:] *= 1000.0
        self.P *= 10.0
        self.Q = np.eye(7)
        self.Q[-1, -1] *= 0.01
        self.Q[4:, 4:] *= 0.01
        self.x = np.zeros(7)
        self.x[:4] = z

    def predict(self, clamp: bool = True) -> None:
        if clamp and self.x[6] + self.x[2] <= 0:
            self.x[6] *= 0.0
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + self.Q

    def update(self, z: np.ndarray) -> None:
        y = z - self.H @ self.x
        S = self.H @ self.P @ self.H.T + self.R
        K = self.P @ self.H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        I_KH = np.eye(7) - K @ self.H
        self.P = I_KH @ self.P @ I_KH.T + K @ self.R @ K.T


def _boxes(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top_left = rng.uniform(0, 600, (count, 2))
    return np.column_stack([top_left, top_left + rng.uniform([20, 40], [100, 250], (count, 2))])


def test_noise_matrices_are_the_references():
    kf = KalmanFilterXYSR()
    plain = PlainSortKalman(np.zeros(4))
    np.testing.assert_array_equal(kf.measurement_covariance, plain.R)
    np.testing.assert_array_equal(kf.process_covariance, plain.Q)
    np.testing.assert_array_equal(kf.initiate(np.zeros((1, 4)))[1][0], plain.P)
    np.testing.assert_array_equal(kf.motion_matrix, plain.F)


def test_batched_filter_matches_plain_filter_over_many_steps():
    kf = KalmanFilterXYSR()
    rng = np.random.default_rng(0)
    start = xyxy_to_xysr(_boxes(9, 1))
    means, covariances = kf.initiate(start)
    plain = [PlainSortKalman(z) for z in start]
    motion = rng.normal(0, 4, (9, 4)) * [1, 1, 50, 0.001]
    for step in range(30):
        means, covariances = kf.predict(means, covariances)
        for track in plain:
            track.predict()
        np.testing.assert_allclose(means, [t.x for t in plain], rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(covariances, [t.P for t in plain], rtol=1e-10, atol=1e-8)
        measured = start + motion * step + rng.normal(0, 2, start.shape) * [1, 1, 30, 0.01]
        observed = rng.random(9) < 0.7  # the others are missed this frame
        rows = observed.nonzero()[0]
        means[rows], covariances[rows] = kf.update(means[rows], covariances[rows], measured[rows])
        for row in rows:
            plain[row].update(measured[row])
    np.testing.assert_allclose(means, [t.x for t in plain], rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(covariances, [t.P for t in plain], rtol=1e-10, atol=1e-8)


def test_area_velocity_clamp_only_when_asked():
    kf = KalmanFilterXYSR()
    means, covariances = kf.initiate(np.array([[100.0, 100.0, 400.0, 0.5], [0, 0, 400.0, 0.5]]))
    means[:, VAREA] = [-500.0, -100.0]  # first: s + vs <= 0 -> clamped; second: fine
    clamped, _ = kf.predict(means, covariances)
    assert clamped[0, VAREA] == 0.0 and clamped[0, AREA] == 400.0
    assert clamped[1, VAREA] == -100.0 and clamped[1, AREA] == 300.0
    raw, _ = kf.predict(means, covariances, clamp_area_velocity=False)
    assert raw[0, AREA] == -100.0
    assert means[0, VAREA] == -500.0, "predict must not modify its input"


def test_box_conversions_round_trip_and_degenerate_boxes_give_nan_silently():
    boxes = _boxes(20, 3)
    xysr = xyxy_to_xysr(boxes)
    np.testing.assert_allclose(
        xysr[:, 2], (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    )
    np.testing.assert_allclose(xysr_to_xyxy(xysr), boxes, rtol=1e-6, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        degenerate = xysr_to_xyxy(np.array([[10.0, 10.0, -5.0, 0.5], [10.0, 10.0, 0.0, 0.5]]))
    assert np.isnan(degenerate).any(axis=1).all()


def test_warp_moves_mean_and_covariance_like_the_box():
    kf = KalmanFilterXYSR()
    boxes = _boxes(4, 5)
    means, covariances = kf.initiate(xyxy_to_xysr(boxes))
    means[:, 4:] = [[3.0, -1.0, 20.0]] * 4
    means, covariances = kf.predict(means, covariances)
    means, covariances = kf.update(means, covariances, xyxy_to_xysr(boxes + 2.0))
    covariances[:, 0, 0] *= 3.0  # anisotropic in x / y, so that a rotation couples them

    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    same_means, same_covariances = kf.warp(means, covariances, identity)
    np.testing.assert_allclose(same_means, means)
    np.testing.assert_allclose(same_covariances, covariances)

    angle, scale = 0.1, 1.2
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = np.column_stack([linear, [15.0, -7.0]])
    warped, warped_covariances = kf.warp(means, covariances, affine)
    np.testing.assert_allclose(warped[:, :2], means[:, :2] @ linear.T + [15.0, -7.0])
    np.testing.assert_allclose(warped[:, 4:6], means[:, 4:6] @ linear.T)
    np.testing.assert_allclose(warped[:, [2, 6]], means[:, [2, 6]] * scale**2)
    np.testing.assert_allclose(warped[:, 3], means[:, 3])
    transform = np.eye(7)
    transform[:2, :2] = transform[4:6, 4:6] = linear
    transform[2, 2] = transform[6, 6] = scale**2
    expected = transform @ covariances @ transform.T
    np.testing.assert_allclose(warped_covariances, expected, rtol=1e-12)
    assert not np.allclose(warped_covariances[:, 0, 1], 0.0), "rotation couples x and y"


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    steps=st.integers(1, 15),
    miss_rate=st.floats(0.0, 0.9),
)
def test_covariances_stay_symmetric_positive_definite(seed, steps, miss_rate):
    kf = KalmanFilterXYSR()
    rng = np.random.default_rng(seed)
    start = xyxy_to_xysr(_boxes(5, seed))
    means, covariances = kf.initiate(start)
    for step in range(steps):
        means, covariances = kf.predict(means, covariances)
        rows = (rng.random(5) >= miss_rate).nonzero()[0]
        measured = start[rows] + rng.normal(0, 5, (len(rows), 4)) * [1, 1, 20, 0.01]
        means[rows], covariances[rows] = kf.update(means[rows], covariances[rows], measured)
        np.testing.assert_allclose(covariances, covariances.transpose(0, 2, 1), atol=1e-6)
        assert (np.linalg.eigvalsh(covariances) > 0).all()
        assert np.isfinite(means).all()


def test_empty_stacks():
    kf = KalmanFilterXYSR()
    means, covariances = kf.initiate(np.zeros((0, 4)))
    assert means.shape == (0, 7) and covariances.shape == (0, 7, 7)
    means, covariances = kf.predict(means, covariances)
    means, covariances = kf.update(means, covariances, np.zeros((0, 4)))
    assert means.shape == (0, 7) and covariances.shape == (0, 7, 7)


@pytest.mark.parametrize("rows", [1, 3])
def test_single_track_is_the_t1_case(rows):
    kf = KalmanFilterXYSR()
    z = xyxy_to_xysr(_boxes(rows, 9))
    means, covariances = kf.initiate(z)
    means, covariances = kf.predict(means, covariances)
    means, covariances = kf.update(means, covariances, z + 1.0)
    for row in range(rows):
        one_mean, one_covariance = kf.initiate(z[row : row + 1])
        one_mean, one_covariance = kf.predict(one_mean, one_covariance)
        one_mean, one_covariance = kf.update(one_mean, one_covariance, z[row : row + 1] + 1.0)
        np.testing.assert_allclose(one_mean[0], means[row], rtol=1e-12)
        np.testing.assert_allclose(one_covariance[0], covariances[row], rtol=1e-12)
