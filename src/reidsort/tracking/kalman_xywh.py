"""Constant-velocity Kalman filter in ``xywh`` space (BoT-SORT), vectorised over all tracks.

The model is the one of Aharon et al. 2022 (BoT-SORT) and of NirAharon/BoT-SORT
``tracker/kalman_filter.py``: the 8-d state is ``(x, y, w, h, vx, vy, vw, vh)`` (box centre,
width, height and their velocities) and the measurement is ``(x, y, w, h)``. Unlike DeepSORT's
``xyah`` filter (:mod:`reidsort.tracking.kalman_filter`), every noise standard deviation scales
with the box side it belongs to: ``x`` and ``w`` terms with the width, ``y`` and ``h`` terms
with the height. The paper found that estimating the width directly, instead of the aspect
ratio, fits the boxes better (mostly their width).

**Why the covariances are full ``(T, 8, 8)`` matrices.** Camera-motion compensation
(:meth:`KalmanFilterXYWH.warp`) rotates the ``(x, y)`` pairs (and ``(w, h)``, ``(vx, vy)``,
``(vw, vh)``) with the 2x2 part of an affine warp, which couples ``x`` with ``y``: the
per-coordinate block form of the ``xyah`` filter cannot hold such a covariance. Every step is
still one batched NumPy expression for all tracks (block row/column additions for the predict,
closed-form inverses of the innovation covariance's two 2x2 blocks for the update), with no
Python loop over tracks.
"""

from __future__ import annotations

import numpy as np

from reidsort.tracking.kalman_filter import check_warp

MEASUREMENT_DIM: int = 4
STATE_DIM: int = 2 * MEASUREMENT_DIM

#: Noise standard deviations relative to the box width (x, w terms) or height (y, h terms);
#: NirAharon/BoT-SORT ``KalmanFilter``: 1/20 for positions, 1/160 for velocities.
STD_WEIGHT_POSITION: float = 1.0 / 20
STD_WEIGHT_VELOCITY: float = 1.0 / 160
#: Initial-covariance multipliers of the weights above (BoT-SORT ``initiate``: a new track is
#: twice as uncertain in position and ten times in velocity as one step of process noise).
INITIAL_POSITION_FACTOR: float = 2.0
INITIAL_VELOCITY_FACTOR: float = 10.0
#: For each coordinate (x, y, w, h), the state column of the side its noise scales with:
#: x and w with the width (column 2), y and h with the height (column 3).
_SIDE_COLUMNS = np.array([2, 3, 2, 3])
#: The two coordinate groups that never couple: (x, y) and (w, h). The warp mixes x with y and
#: w with h only, and the motion model ties each coordinate to its own velocity, so from the
#: diagonal initial covariance on, S = H P H^T + R stays block-diagonal with two 2x2 blocks.
_POSITION_PAIR, _SIZE_PAIR = slice(0, 2), slice(2, 4)

#: Index of the centre x in the state; (x, y) are the first two entries.
CENTRE_X, CENTRE_Y = 0, 1
#: The width and height velocities, which BoT-SORT zeroes before predicting a track that is not
#: currently tracked (``STrack.multi_predict``): a lost box keeps its last size.
SIZE_VELOCITY: tuple[int, int] = (6, 7)


def _sides(means_or_measurements: np.ndarray) -> np.ndarray:
    """``(T, 4)`` = ``[w, h, w, h]`` per row: the scale of each coordinate's noise."""
    return means_or_measurements.take(_SIDE_COLUMNS, axis=1)


def _inverse_2x2(blocks: np.ndarray) -> np.ndarray:
    """Inverses of a stack of symmetric positive-definite 2x2 matrices, ``(T, 2, 2)``."""
    a, b, d = blocks[:, 0, 0], blocks[:, 0, 1], blocks[:, 1, 1]
    inverse = np.empty_like(blocks)
    inverse[:, 0, 0], inverse[:, 1, 1] = d, a
    inverse[:, 0, 1] = inverse[:, 1, 0] = -b
    inverse /= (a * d - b * b)[:, None, None]
    return inverse


def _innovation_inverse(innovation_cov: np.ndarray) -> np.ndarray:
    """``S^-1`` of a stack ``(T, 4, 4)``: two closed-form 2x2 inverses when S is block-diagonal
    in (x, y) and (w, h) (always, for states made by this filter), a general solve otherwise."""
    if np.count_nonzero(innovation_cov[:, _POSITION_PAIR, _SIZE_PAIR]) or np.count_nonzero(
        innovation_cov[:, _SIZE_PAIR, _POSITION_PAIR]
    ):
        return np.linalg.inv(innovation_cov)
    inverse = np.zeros_like(innovation_cov)
    inverse[:, _POSITION_PAIR, _POSITION_PAIR] = _inverse_2x2(
        innovation_cov[:, _POSITION_PAIR, _POSITION_PAIR]
    )
    inverse[:, _SIZE_PAIR, _SIZE_PAIR] = _inverse_2x2(innovation_cov[:, _SIZE_PAIR, _SIZE_PAIR])
    return inverse


def _diagonal(variances: np.ndarray) -> np.ndarray:
    """``(T, K)`` variances -> ``(T, K, K)`` diagonal matrices."""
    count, size = variances.shape
    out = np.zeros((count, size, size))
    index = np.arange(size)
    out[:, index, index] = variances
    return out


class KalmanFilterXYWH:
    """Batched Kalman filter for boxes in ``xywh`` space (one instance serves all tracks).

    Means are ``(T, 8)`` and covariances ``(T, 8, 8)``; every method returns new arrays.
    """

    def __init__(
        self,
        std_weight_position: float = STD_WEIGHT_POSITION,
        std_weight_velocity: float = STD_WEIGHT_VELOCITY,
    ) -> None:
        if not (std_weight_position > 0 and std_weight_velocity > 0):
            raise ValueError(
                "std_weight_position and std_weight_velocity must be > 0, got "
                f"{std_weight_position} and {std_weight_velocity}"
            )
        self.std_weight_position = float(std_weight_position)
        self.std_weight_velocity = float(std_weight_velocity)

    # -- noise models ------------------------------------------------------------------------
    def _state_variance(self, sides: np.ndarray, position: float, velocity: float) -> np.ndarray:
        """``(T, 8)`` variances ``(weight * side)^2`` for positions then velocities."""
        return np.square(np.concatenate([sides * position, sides * velocity], axis=1))

    def measurement_variance(self, means: np.ndarray) -> np.ndarray:
        """``(T, 4)`` diagonal of the measurement noise R, from the track's predicted size."""
        return np.square(_sides(means) * self.std_weight_position)

    # -- filter steps ------------------------------------------------------------------------
    def initiate(self, measurements_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from unassociated measurements ``(N, 4)``: zero velocity, wide covariance."""
        measurements_xywh = np.asarray(measurements_xywh, dtype=np.float64).reshape(
            -1, MEASUREMENT_DIM
        )
        means = np.zeros((len(measurements_xywh), STATE_DIM))
        means[:, :MEASUREMENT_DIM] = measurements_xywh
        variances = self._state_variance(
            _sides(measurements_xywh),
            INITIAL_POSITION_FACTOR * self.std_weight_position,
            INITIAL_VELOCITY_FACTOR * self.std_weight_velocity,
        )
        return means, _diagonal(variances)

    def predict(self, means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One constant-velocity step for all tracks: ``F x`` and ``F P F^T + Q``.

        With ``F = [[I, I], [0, I]]`` (4x4 blocks), ``F P`` adds the velocity rows to the position
        rows and ``(F P) F^T`` adds the velocity columns to the position columns. Q is taken at
        the size before the step, as in the reference.
        """
        noise = self._state_variance(
            _sides(means), self.std_weight_position, self.std_weight_velocity
        )
        new_means = means.copy()
        new_means[:, :MEASUREMENT_DIM] += means[:, MEASUREMENT_DIM:]
        new_cov = covariances.copy()
        new_cov[:, :MEASUREMENT_DIM, :] += covariances[:, MEASUREMENT_DIM:, :]
        new_cov[:, :, :MEASUREMENT_DIM] += new_cov[:, :, MEASUREMENT_DIM:]
        index = np.arange(STATE_DIM)
        new_cov[:, index, index] += noise
        return new_means, new_cov

    def project(self, means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projected means ``(T, 4)`` and innovation covariances ``S = H P H^T + R``, ``(T, 4, 4)``."""
        innovation_cov = covariances[:, :MEASUREMENT_DIM, :MEASUREMENT_DIM].copy()
        index = np.arange(MEASUREMENT_DIM)
        innovation_cov[:, index, index] += self.measurement_variance(means)
        return means[:, :MEASUREMENT_DIM].copy(), innovation_cov

    def update(
        self, means: np.ndarray, covariances: np.ndarray, measurements_xywh: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct each track ``i`` with measurement ``i`` (row-aligned stacks).

        ``K = P H^T S^-1``, ``x' = x + K (z - H x)`` and ``P' = P - K S K^T``, the reference's
        expressions (which solves with a Cholesky factor of S; S^-1 here comes in closed form
        from its two 2x2 blocks, see :func:`_innovation_inverse`).
        """
        if len(means) == 0:
            return means.copy(), covariances.copy()
        projected, innovation_cov = self.project(means, covariances)
        # P H^T is the first four columns of P.
        gain = covariances[:, :, :MEASUREMENT_DIM] @ _innovation_inverse(innovation_cov)
        residual = np.asarray(measurements_xywh, dtype=np.float64).reshape(-1, MEASUREMENT_DIM)
        residual = residual - projected
        new_means = means + np.einsum("tij,tj->ti", gain, residual)
        new_cov = covariances - gain @ innovation_cov @ gain.transpose(0, 2, 1)
        return new_means, new_cov

    @staticmethod
    def warp(
        means: np.ndarray, covariances: np.ndarray, warp_2x3: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Apply a camera-motion affine ``warp_2x3`` (previous frame -> current) to all tracks.

        As BoT-SORT's GMC (``STrack.multi_gmc``): with ``R = warp[:, :2]`` and
        ``R8 = block-diag(R, R, R, R)`` acting on the pairs ``(x, y)``, ``(w, h)``, ``(vx, vy)``
        and ``(vw, vh)``, the mean becomes ``R8 x`` plus the translation on ``(x, y)``, and the
        covariance ``R8 P R8^T``.
        """
        warp_2x3 = check_warp(warp_2x3)
        rotation = warp_2x3[:, :2]
        r8 = np.zeros((STATE_DIM, STATE_DIM))
        for pair in range(0, STATE_DIM, 2):
            r8[pair : pair + 2, pair : pair + 2] = rotation
        new_means = (means.reshape(-1, MEASUREMENT_DIM, 2) @ rotation.T).reshape(-1, STATE_DIM)
        new_means[:, CENTRE_X : CENTRE_Y + 1] += warp_2x3[:, 2]
        new_cov = r8 @ covariances @ r8.T
        return new_means, new_cov


def xywh_to_tlwh(xywh: np.ndarray) -> np.ndarray:
    """``(centre x, centre y, w, h)`` -> ``(x, y, w, h)`` (top-left corner)."""
    xywh = np.asarray(xywh, dtype=np.float64)
    tlwh = xywh.copy()
    tlwh[..., :2] -= xywh[..., 2:4] / 2
    return tlwh


def tlwh_to_xywh(tlwh: np.ndarray) -> np.ndarray:
    """``(x, y, w, h)`` (top-left corner) -> ``(centre x, centre y, w, h)``."""
    tlwh = np.asarray(tlwh, dtype=np.float64)
    xywh = tlwh.copy()
    xywh[..., :2] += tlwh[..., 2:4] / 2
    return xywh
