"""Constant-velocity Kalman filter in ``xyah`` space, vectorised over all tracks.

The model is the one of Wojke et al. 2017 (DeepSORT) and of nwojke/deep_sort's
``kalman_filter.py``: the 8-d state is ``(x, y, a, h, vx, vy, va, vh)`` (box centre, aspect
ratio, height and their velocities), the measurement is ``(x, y, a, h)``, and the process and
measurement noise standard deviations are proportional to the box height (a large box moves more
pixels per frame and its corners are less precise) with fixed small values for the aspect ratio.

**Why the covariance is stored as blocks.** In this model every matrix decouples the four
coordinates: the motion matrix only adds velocity ``i`` to position ``i``, the observation matrix
picks the positions, and all noise covariances are diagonal. Starting from the diagonal initial
covariance, the only non-zero entries are therefore, per coordinate ``i``, the position variance
``P[i, i]``, the position-velocity covariance ``P[i, i+4] = P[i+4, i]`` and the velocity variance
``P[i+4, i+4]``. This holds exactly in floating point too (the other entries are sums of
products with an exact zero), so the reference's 8x8 products, Cholesky factorisations and
solves reduce to a few element-wise operations on ``(T, 4)`` arrays, with the same results.
A stack of covariances is kept as ``(T, 3, 4)`` blocks: ``[POSITION_VARIANCE]``,
``[CROSS_COVARIANCE]`` and ``[VELOCITY_VARIANCE]`` of the four coordinates;
:func:`blocks_to_covariance` and :func:`covariance_to_blocks` convert to and from ``(T, 8, 8)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: 0.95 quantile of the chi-square distribution with N degrees of freedom (N = 1..9), the
#: Mahalanobis gating thresholds; values as tabulated in nwojke/deep_sort (MATLAB ``chi2inv``).
CHI2_INV_95: dict[int, float] = {
    1: 3.8415,
    2: 5.9915,
    3: 7.8147,
    4: 9.4877,
    5: 11.070,
    6: 12.592,
    7: 14.067,
    8: 15.507,
    9: 16.919,
}

MEASUREMENT_DIM: int = 4
STATE_DIM: int = 2 * MEASUREMENT_DIM
#: Rows of a ``(T, 3, 4)`` covariance block stack.
POSITION_VARIANCE, CROSS_COVARIANCE, VELOCITY_VARIANCE = 0, 1, 2
BLOCK_ROWS: int = 3
#: ``P - K S K^T`` per block row is ``block - (k_i S) k_j`` with gain rows (i, j): (p, p) for the
#: position variance, (p, v) for the cross-covariance, (v, v) for the velocity variance.
_BLOCK_GAIN_ROWS = np.array([[0, 0, 1], [0, 1, 1]])

#: Noise standard deviations relative to the box height (nwojke/deep_sort ``KalmanFilter``).
STD_WEIGHT_POSITION: float = 1.0 / 20
STD_WEIGHT_VELOCITY: float = 1.0 / 160
#: Fixed standard deviations of the aspect ratio, which has no pixel scale.
STD_ASPECT_INIT: float = 1e-2
STD_ASPECT_VELOCITY_INIT: float = 1e-5
STD_ASPECT_PROCESS: float = 1e-2
STD_ASPECT_VELOCITY_PROCESS: float = 1e-5
STD_ASPECT_MEASUREMENT: float = 1e-1


def blocks_to_covariance(blocks: np.ndarray) -> np.ndarray:
    """``(T, 3, 4)`` covariance blocks -> full ``(T, 8, 8)`` covariance matrices."""
    blocks = np.asarray(blocks, dtype=np.float64)
    full = np.zeros((len(blocks), STATE_DIM, STATE_DIM))
    position = np.arange(MEASUREMENT_DIM)
    velocity = position + MEASUREMENT_DIM
    full[:, position, position] = blocks[:, POSITION_VARIANCE]
    full[:, position, velocity] = blocks[:, CROSS_COVARIANCE]
    full[:, velocity, position] = blocks[:, CROSS_COVARIANCE]
    full[:, velocity, velocity] = blocks[:, VELOCITY_VARIANCE]
    return full


def covariance_to_blocks(covariances: np.ndarray) -> np.ndarray:
    """Full ``(T, 8, 8)`` covariances of this model -> ``(T, 3, 4)`` blocks.

    Raises ``ValueError`` if a matrix couples different coordinates (not this model's form).
    """
    covariances = np.asarray(covariances, dtype=np.float64).reshape(-1, STATE_DIM, STATE_DIM)
    blocks = np.empty((len(covariances), BLOCK_ROWS, MEASUREMENT_DIM))
    position = np.arange(MEASUREMENT_DIM)
    velocity = position + MEASUREMENT_DIM
    blocks[:, POSITION_VARIANCE] = covariances[:, position, position]
    blocks[:, CROSS_COVARIANCE] = covariances[:, position, velocity]
    blocks[:, VELOCITY_VARIANCE] = covariances[:, velocity, velocity]
    if not np.array_equal(blocks_to_covariance(blocks), covariances):
        raise ValueError(
            "covariance couples different coordinates; not a constant-velocity xyah covariance"
        )
    return blocks


#: Shape of a camera-motion warp: the affine map ``[A | t]`` from the previous frame's pixel
#: coordinates to this frame's (:mod:`reidsort.tracking.cmc`).
WARP_SHAPE: tuple[int, int] = (2, 3)


def check_warp(warp: np.ndarray) -> np.ndarray:
    """``warp`` as a finite ``(2, 3)`` float64 array, or a one-line ``ValueError``."""
    array = np.asarray(warp, dtype=np.float64)
    if array.shape != WARP_SHAPE or not np.isfinite(array).all():
        raise ValueError(
            f"warp must be a finite (2, 3) affine matrix [A | t] (previous frame -> this one), "
            f"got {array.tolist() if array.size <= 9 else array.shape}"
        )
    return array


def warp_xyah(
    means: np.ndarray, blocks: np.ndarray, warp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move ``(T, 8)`` xyah states and their ``(T, 3, 4)`` covariance blocks by a camera motion.

    ``warp`` = ``[A | t]`` maps the previous frame's pixels to this frame's (camera-motion
    compensation, applied to the predicted states before association, as BoT-SORT's
    ``multi_gmc`` does for its xywh state). The box centre goes to ``A c + t`` and the centre
    velocity to ``A v``; the height and its velocity are multiplied by the warp's scale
    ``s = sqrt(|det A|)``; the aspect ratio and its velocity are unitless and stay. As a
    linear map ``M`` of the 8-d state the covariance becomes ``M P M^T``.

    The block form keeps, per block row (position variance, position-velocity covariance,
    velocity variance), the diagonal of ``A B A^T`` for the 2x2 diagonal x/y block ``B``,
    i.e. ``sum_j A_ij^2 B_jj``, and drops its off-diagonal ``A_00 A_10 B_xx + A_01 A_11 B_yy``.
    That is exact whenever the dropped term is zero, which covers everything this filter
    meets: pure translation and scale (diagonal ``A``), and any similarity ``A = s Rot(theta)``
    (what ``estimateAffinePartial2D`` and Euclidean ECC return, and every warp in BoT-SORT's
    MOT17 GMC files) applied to isotropic ``B_xx = B_yy``, which the DeepSORT filter always has
    (x and y share every noise weight). Only anisotropic blocks under a rotation lose a term,
    ``s^2 cos(theta) sin(theta) (B_xx - B_yy)``: for the largest frame-to-frame rotation in the
    MOT17 train-half GMC files (1.6 degrees, MOT17-13; 95th percentile 0.4 degrees) that is at
    most 2.8% of ``|B_xx - B_yy|``. Shear (a general affine ``A``) drops
    ``B (A_00 A_10 + A_01 A_11)``; none of the estimators produces it.
    """
    warp = check_warp(warp)
    linear, translation = warp[:, :2], warp[:, 2]
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    new_means = np.array(means, dtype=np.float64, copy=True)
    new_means[:, 0:2] = new_means[:, 0:2] @ linear.T
    new_means[:, 0:2] += translation
    new_means[:, 4:6] = new_means[:, 4:6] @ linear.T
    new_means[:, 3] *= scale
    new_means[:, 7] *= scale
    new_blocks = np.array(blocks, dtype=np.float64, copy=True)
    # diag(A B A^T) for all T x 3 diagonal x/y blocks B in one product
    new_blocks[:, :, 0:2] = new_blocks[:, :, 0:2] @ np.square(linear).T
    new_blocks[:, :, 3] *= scale * scale
    return new_means, new_blocks


class Innovation(NamedTuple):
    """Measurement-space prediction of a stack of tracks (shared by gate and correction).

    With decoupled coordinates the innovation covariance S = H P H^T + R is diagonal, so its
    Cholesky factor is ``sqrt(S)`` element-wise: ``std`` holds it, ``(T, 4)``.
    """

    projected_mean: np.ndarray  # (T, 4)
    variance: np.ndarray  # (T, 4), the diagonal of S
    std: np.ndarray  # (T, 4), sqrt of the diagonal of S

    def take(self, rows: np.ndarray) -> Innovation:
        return Innovation(
            self.projected_mean.take(rows, axis=0),
            self.variance.take(rows, axis=0),
            self.std.take(rows, axis=0),
        )


def squared_mahalanobis(
    innovation: Innovation, measurements: np.ndarray, dims: int = MEASUREMENT_DIM
) -> np.ndarray:
    """``r^T S^-1 r`` of every track x measurement, ``(T, N)``, over the first ``dims`` coordinates.

    Computed like the reference: ``z = L^-1 r`` (here ``r / sqrt(S)``), then the sum of ``z^2``.
    """
    z = measurements[None, :, :dims] - innovation.projected_mean[:, None, :dims]
    z /= innovation.std[:, None, :dims]
    z *= z
    return z.sum(axis=2)


class KalmanFilterXYAH:
    """Batched Kalman filter for boxes in ``xyah`` space (one instance serves all tracks).

    Means are ``(T, 8)``; covariances are ``(T, 3, 4)`` blocks (see the module docstring).
    """

    def __init__(
        self,
        std_weight_position: float = STD_WEIGHT_POSITION,
        std_weight_velocity: float = STD_WEIGHT_VELOCITY,
    ) -> None:
        self.std_weight_position = float(std_weight_position)
        self.std_weight_velocity = float(std_weight_velocity)
        position, velocity = self.std_weight_position, self.std_weight_velocity
        # Standard deviation = height * weight, or a fixed offset for the aspect ratio (weight 0).
        self._init_position = (
            np.array([2 * position] * 2 + [0.0, 2 * position]),
            np.array([0, 0, STD_ASPECT_INIT, 0]),
        )
        self._init_velocity = (
            np.array([10 * velocity] * 2 + [0.0, 10 * velocity]),
            np.array([0, 0, STD_ASPECT_VELOCITY_INIT, 0]),
        )
        # Process noise of position and velocity together, as (2, 4): one expression per frame.
        self._process = (
            np.array([[position] * 2 + [0.0, position], [velocity] * 2 + [0.0, velocity]]),
            np.array([[0, 0, STD_ASPECT_PROCESS, 0], [0, 0, STD_ASPECT_VELOCITY_PROCESS, 0]]),
        )
        self._measurement = (
            np.array([position] * 2 + [0.0, position]),
            np.array([0, 0, STD_ASPECT_MEASUREMENT, 0]),
        )

    @staticmethod
    def _variance(
        heights: np.ndarray, weights_offsets: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """Variances ``(weight * height + offset)^2`` (as the reference squares its stds), one row
        per height: ``(T, 4)`` for ``(4,)`` weights, ``(T, 2, 4)`` for ``(2, 4)`` weights."""
        weights, offsets = weights_offsets
        std = heights.reshape((-1,) + (1,) * weights.ndim) * weights
        std += offsets
        return np.square(std, out=std)

    def initiate(self, measurements_xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from unassociated measurements ``(N, 4)``: zero velocity, wide covariance."""
        measurements_xyah = np.asarray(measurements_xyah, dtype=np.float64).reshape(
            -1, MEASUREMENT_DIM
        )
        count = len(measurements_xyah)
        means = np.zeros((count, STATE_DIM))
        means[:, :MEASUREMENT_DIM] = measurements_xyah
        blocks = np.zeros((count, BLOCK_ROWS, MEASUREMENT_DIM))
        height = measurements_xyah[:, 3]
        blocks[:, POSITION_VARIANCE] = self._variance(height, self._init_position)
        blocks[:, VELOCITY_VARIANCE] = self._variance(height, self._init_velocity)
        return means, blocks

    def predict(self, means: np.ndarray, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One constant-velocity step for all tracks; returns new arrays.

        Per coordinate, F P F^T + Q with F = [[1, 1], [0, 1]] is
        ``p' = (p + c) + (c + v) + q_p``, ``c' = c + v``, ``v' = v + q_v`` (the reference's
        order of additions).
        """
        noise = self._variance(means[:, 3], self._process)  # (T, 2, 4): position, velocity
        new_means = means.copy()
        new_means[:, :MEASUREMENT_DIM] += means[:, MEASUREMENT_DIM:]
        position, cross, velocity = (
            blocks[:, POSITION_VARIANCE],
            blocks[:, CROSS_COVARIANCE],
            blocks[:, VELOCITY_VARIANCE],
        )
        new_blocks = np.empty_like(blocks)
        cross_plus_velocity = np.add(cross, velocity, out=new_blocks[:, CROSS_COVARIANCE])
        new_position = np.add(position, cross, out=new_blocks[:, POSITION_VARIANCE])
        new_position += cross_plus_velocity
        new_position += noise[:, 0]
        np.add(velocity, noise[:, 1], out=new_blocks[:, VELOCITY_VARIANCE])
        return new_means, new_blocks

    @staticmethod
    def warp(
        means: np.ndarray, blocks: np.ndarray, warp: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Camera-motion compensation of all tracks: :func:`warp_xyah`; returns new arrays."""
        return warp_xyah(means, blocks, warp)

    def innovation(
        self, means: np.ndarray, blocks: np.ndarray, confidence: np.ndarray | None = None
    ) -> Innovation:
        """Project all tracks into measurement space (the diagonal innovation covariance).

        ``confidence`` (``(T,)``, one detection score in [0, 1] per row; None = off, today's
        result bit for bit) enables StrongSORT's NSA Kalman filter (Du et al. 2023): a
        confident detection is a more precise measurement, so every measurement noise standard
        deviation is multiplied by ``1 - c``, i.e. the measurement covariance ``R`` by
        ``(1 - c)^2``. That squares the paper's formula, ``R~ = (1 - c) R`` (its eq. 5): the
        reference code (dyhBUPT/StrongSORT ``deep_sort/kalman_filter.py`` ``project``) scales
        the *std* list before squaring it, and this reproduces the code, in its order of
        operations (scale the std, then square). ``c = 1`` leaves no measurement noise; the
        innovation covariance is then the state's position variance, still positive.
        """
        if confidence is None:
            variance = blocks[:, POSITION_VARIANCE] + self._variance(means[:, 3], self._measurement)
            return Innovation(means[:, :MEASUREMENT_DIM], variance, np.sqrt(variance))
        confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
        if len(confidence) != len(means):
            raise ValueError(
                f"confidence must have one value per track ({len(means)}), got {len(confidence)}"
            )
        weights, offsets = self._measurement
        std = means[:, 3:4] * weights
        std += offsets
        std *= (1.0 - confidence)[:, None]  # NSA: noise std scaled by (1 - c), as the code does
        variance = blocks[:, POSITION_VARIANCE] + np.square(std)
        return Innovation(means[:, :MEASUREMENT_DIM], variance, np.sqrt(variance))

    def project(self, means: np.ndarray, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projected means ``(T, 4)`` and full innovation covariances ``(T, 4, 4)``."""
        innovation = self.innovation(means, blocks)
        covariance = np.zeros((len(means), MEASUREMENT_DIM, MEASUREMENT_DIM))
        diagonal = np.arange(MEASUREMENT_DIM)
        covariance[:, diagonal, diagonal] = innovation.variance
        return innovation.projected_mean.copy(), covariance

    def update(
        self,
        means: np.ndarray,
        blocks: np.ndarray,
        measurements_xyah: np.ndarray,
        innovation: Innovation | None = None,
        confidence: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct each track ``i`` with measurement ``i`` (row-aligned stacks); new arrays.

        Per coordinate the gain is ``k_p = p / S`` for the position and ``k_v = c / S`` for the
        velocity (computed as two divisions by ``sqrt(S)``, the reference's Cholesky solve), and
        ``P' = P - K S K^T``. ``innovation`` may carry :meth:`innovation` of exactly these rows.
        ``confidence`` ``(T,)`` (None = off) is the measurements' detection scores for the NSA
        filter (see :meth:`innovation`: measurement noise std times ``1 - c``); pass either it
        or a precomputed ``innovation``, not both (a gate's innovation has no NSA scaling).
        """
        if innovation is not None and confidence is not None:
            raise ValueError(
                "pass confidence or a precomputed innovation, not both "
                "(compute it with innovation(means, blocks, confidence))"
            )
        if len(means) == 0:
            return means.copy(), blocks.copy()
        if innovation is None:
            innovation = self.innovation(means, blocks, confidence)
        # gain[:, 0] for positions, gain[:, 1] for velocities: (P rows 0 and 1) / sqrt(S) / sqrt(S).
        std = innovation.std[:, None, :]
        gain = blocks[:, :2] / std
        gain /= std
        residual = np.asarray(measurements_xyah, dtype=np.float64) - innovation.projected_mean
        new_means = means + (gain * residual[:, None, :]).reshape(len(means), STATE_DIM)
        # P - K S K^T per coordinate: [p - (k_p S) k_p, c - (k_p S) k_v, v - (k_v S) k_v].
        gain_s = gain * innovation.variance[:, None, :]
        # All three block rows in one expression (gain rows per block row: _BLOCK_GAIN_ROWS).
        products = gain_s.take(_BLOCK_GAIN_ROWS[0], axis=1)
        products *= gain.take(_BLOCK_GAIN_ROWS[1], axis=1)
        new_blocks = blocks.copy()  # in place into a copy: keeps the blocks' dtype, as before
        new_blocks -= products
        return new_means, new_blocks

    def gating_distance(
        self,
        means: np.ndarray,
        blocks: np.ndarray,
        measurements_xyah: np.ndarray,
        only_position: bool = False,
        innovation: Innovation | None = None,
    ) -> np.ndarray:
        """Squared Mahalanobis distances of all tracks x all measurements, ``(T, N)``.

        Compare with ``CHI2_INV_95[4]`` (or ``[2]`` when ``only_position``, which uses the box
        centre only).
        """
        measurements_xyah = np.asarray(measurements_xyah, dtype=np.float64).reshape(
            -1, MEASUREMENT_DIM
        )
        if len(means) == 0 or len(measurements_xyah) == 0:
            return np.zeros((len(means), len(measurements_xyah)))
        if innovation is None:
            innovation = self.innovation(means, blocks)
        return squared_mahalanobis(
            innovation, measurements_xyah, 2 if only_position else MEASUREMENT_DIM
        )
