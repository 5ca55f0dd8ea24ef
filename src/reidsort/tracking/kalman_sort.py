"""SORT's constant-velocity Kalman filter in ``xysr`` space, vectorised over all tracks.

The model is the one of SORT (Bewley et al. 2016) that OC-SORT (Cao et al. 2023) keeps
unchanged (noahcao/OC_SORT ``trackers/ocsort_tracker/ocsort.py``, ``KalmanBoxTracker``):

* state ``(x, y, s, r, vx, vy, vs)``: box centre, area ``s = w * h``, aspect ratio ``r = w / h``
  and the velocities of centre and area (the aspect ratio is modelled as constant);
* measurement ``(x, y, s, r)``;
* fixed (box-size independent) noise, built in the reference as scaled identities:
  measurement ``R = diag(1, 1, 10, 10)``, initial ``P = diag(10, 10, 10, 10, 1e4, 1e4, 1e4)``
  (unobserved velocities get a large variance), process ``Q = diag(1, 1, 1, 1, 0.01, 0.01, 1e-4)``.

The correction is the Joseph form ``P' = (I - KH) P (I - KH)^T + K R K^T`` with
``K = P H^T S^-1``, as in filterpy's ``KalmanFilter.update`` that the reference uses.

**Why full ``(T, 7, 7)`` covariances** (unlike the block storage of
:mod:`reidsort.tracking.kalman_filter`): without camera motion this model's coordinates are
decoupled too, but a camera-motion warp with rotation couples ``x`` and ``y`` (see
:meth:`KalmanFilterXYSR.warp`), so the general form is kept. Every operation is one batched
``matmul`` over all tracks; the 7x7 products cost microseconds for hundreds of tracks.

Means are ``(T, 7)``, covariances ``(T, 7, 7)``; every method returns new arrays. A single track
is the ``T = 1`` case (OC-SORT's re-update replays one or a few tracks through
:meth:`KalmanFilterXYSR.update` / :meth:`KalmanFilterXYSR.predict` step by step).
"""

from __future__ import annotations

import numpy as np

try:  # the gufunc behind np.linalg.inv, without its per-call wrapper (half its cost here)
    from numpy.linalg import _umath_linalg

    def _batched_inverse(matrices: np.ndarray) -> np.ndarray:
        return _umath_linalg.inv(matrices, signature="d->d")

except ImportError:  # pragma: no cover - a NumPy without the private module
    _batched_inverse = np.linalg.inv

STATE_DIM: int = 7
MEASUREMENT_DIM: int = 4
#: State indices.
X, Y, AREA, ASPECT, VX, VY, VAREA = range(STATE_DIM)

#: SORT/OC-SORT noise (``KalmanBoxTracker.__init__``: R[2:, 2:] *= 10, P[4:, 4:] *= 1000,
#: P *= 10, Q[-1, -1] *= 0.01, Q[4:, 4:] *= 0.01, starting from identities).
MEASUREMENT_VARIANCE_CENTRE: float = 1.0
MEASUREMENT_VARIANCE_SHAPE: float = 10.0
INITIAL_VARIANCE_BOX: float = 10.0
INITIAL_VARIANCE_VELOCITY: float = 10.0 * 1000.0
PROCESS_VARIANCE_BOX: float = 1.0
PROCESS_VARIANCE_CENTRE_VELOCITY: float = 0.01
PROCESS_VARIANCE_AREA_VELOCITY: float = 0.01 * 0.01
#: ``r = w / (h + ASPECT_EPS)`` as in the reference's ``convert_bbox_to_z``.
ASPECT_EPS: float = 1e-6


def xyxy_to_xysr(xyxy: np.ndarray) -> np.ndarray:
    """``(x1, y1, x2, y2)`` -> ``(centre x, centre y, area, w / h)``, vectorised over rows."""
    xyxy = np.asarray(xyxy, dtype=np.float64)
    wh = xyxy[..., 2:4] - xyxy[..., 0:2]
    xysr = np.empty_like(xyxy)
    xysr[..., 0:2] = xyxy[..., 0:2] + wh / 2.0
    xysr[..., 2] = wh[..., 0] * wh[..., 1]
    xysr[..., 3] = wh[..., 0] / (wh[..., 1] + ASPECT_EPS)
    return xysr


def xysr_to_xyxy(xysr: np.ndarray) -> np.ndarray:
    """``(centre x, centre y, area, w / h)`` (a state or a measurement) -> ``(x1, y1, x2, y2)``.

    ``w = sqrt(s r)``, ``h = s / w`` as in the reference's ``convert_x_to_bbox``; a non-positive
    area or aspect gives NaN (no warning), which the tracker treats as a dead track.
    """
    xysr = np.asarray(xysr, dtype=np.float64)
    area_aspect = xysr[..., 2] * xysr[..., 3]
    xyxy = np.empty(xysr.shape[:-1] + (4,))
    if np.count_nonzero(area_aspect > 0) == area_aspect.size:
        w = np.sqrt(area_aspect)
        h = xysr[..., 2] / w
    else:  # only here can the square root or the division produce NaN
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.sqrt(area_aspect)
            h = xysr[..., 2] / w
    w /= 2.0
    h /= 2.0
    np.subtract(xysr[..., 0], w, out=xyxy[..., 0])
    np.subtract(xysr[..., 1], h, out=xyxy[..., 1])
    np.add(xysr[..., 0], w, out=xyxy[..., 2])
    np.add(xysr[..., 1], h, out=xyxy[..., 3])
    return xyxy


def _motion_matrix() -> np.ndarray:
    motion = np.eye(STATE_DIM)
    motion[X, VX] = motion[Y, VY] = motion[AREA, VAREA] = 1.0
    return motion


class KalmanFilterXYSR:
    """Batched SORT Kalman filter (one instance serves all tracks; it holds only constants)."""

    def __init__(self) -> None:
        self.motion_matrix = _motion_matrix()
        self.observation_matrix = np.eye(MEASUREMENT_DIM, STATE_DIM)
        self.measurement_covariance = np.diag(
            [MEASUREMENT_VARIANCE_CENTRE] * 2 + [MEASUREMENT_VARIANCE_SHAPE] * 2
        )
        self.initial_covariance = np.diag(
            [INITIAL_VARIANCE_BOX] * 4 + [INITIAL_VARIANCE_VELOCITY] * 3
        )
        self._measurement_variances = np.diag(self.measurement_covariance).copy()
        self._identity = np.eye(STATE_DIM)
        self.process_covariance = np.diag(
            [PROCESS_VARIANCE_BOX] * 4
            + [PROCESS_VARIANCE_CENTRE_VELOCITY] * 2
            + [PROCESS_VARIANCE_AREA_VELOCITY]
        )

    def initiate(self, measurements_xysr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks at measurements ``(N, 4)``: zero velocity, the reference's initial P."""
        measurements_xysr = np.asarray(measurements_xysr, dtype=np.float64).reshape(
            -1, MEASUREMENT_DIM
        )
        means = np.zeros((len(measurements_xysr), STATE_DIM))
        means[:, :MEASUREMENT_DIM] = measurements_xysr
        covariances = np.broadcast_to(
            self.initial_covariance, (len(means), STATE_DIM, STATE_DIM)
        ).copy()
        return means, covariances

    def predict(
        self, means: np.ndarray, covariances: np.ndarray, clamp_area_velocity: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """One step ``x' = F x``, ``P' = F P F^T + Q`` for all tracks.

        ``clamp_area_velocity``: first zero ``vs`` where ``s + vs <= 0``, so a shrinking box never
        predicts a non-positive area. The reference does this in ``KalmanBoxTracker.predict``
        only, not in the raw filter step that OC-SORT's re-update replay calls, hence the flag.
        """
        means = np.asarray(means, dtype=np.float64)
        if clamp_area_velocity and len(means):
            shrinking = means[:, AREA] + means[:, VAREA] <= 0
            if shrinking.any():
                means = means.copy()
                means[shrinking, VAREA] *= 0.0  # the reference's `*= 0.0` (keeps NaN as NaN)
        new_means = means @ self.motion_matrix.T
        new_covariances = self.motion_matrix @ covariances @ self.motion_matrix.T
        new_covariances += self.process_covariance
        return new_means, new_covariances

    def update(
        self, means: np.ndarray, covariances: np.ndarray, measurements_xysr: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct track ``i`` with measurement ``i`` (row-aligned stacks), Joseph form."""
        means = np.asarray(means, dtype=np.float64)
        covariances = np.asarray(covariances, dtype=np.float64)
        if len(means) == 0:
            return means.copy(), covariances.copy()
        measurements_xysr = np.asarray(measurements_xysr, dtype=np.float64).reshape(
            -1, MEASUREMENT_DIM
        )
        # H selects the first four coordinates: H P H^T and P H^T are slices of P.
        p_ht = covariances[:, :, :MEASUREMENT_DIM]
        # S = H P H^T + R is symmetric positive definite (R > 0), never singular: the raw
        # gufunc's missing singularity check cannot matter
        gain = p_ht @ _batched_inverse(p_ht[:, :MEASUREMENT_DIM] + self.measurement_covariance)
        residual = measurements_xysr - means[:, :MEASUREMENT_DIM]
        new_means = means + (gain @ residual[:, :, None])[:, :, 0]
        i_kh = np.empty_like(covariances)
        i_kh[:] = self._identity
        i_kh[:, :, :MEASUREMENT_DIM] -= gain
        new_covariances = i_kh @ covariances @ i_kh.transpose(0, 2, 1)
        new_covariances += (gain * self._measurement_variances) @ gain.transpose(0, 2, 1)
        return new_means, new_covariances

    @staticmethod
    def warp(
        means: np.ndarray, covariances: np.ndarray, affine: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map states from the previous frame's pixel coordinates to the current frame's.

        ``affine`` is ``(2, 3)`` ``[M | t]``: the centre becomes ``M c + t``, the centre velocity
        ``M v``; area and area velocity scale by ``|det M|`` (the area factor of the warp, exact
        for a similarity transform) and the aspect ratio is kept. The covariance is transformed
        with the same linear map, ``P' = A P A^T``.
        """
        affine = np.asarray(affine, dtype=np.float64).reshape(2, 3)
        linear, translation = affine[:, :2], affine[:, 2]
        area_scale = abs(float(np.linalg.det(linear)))
        transform = np.eye(STATE_DIM)
        transform[np.ix_([X, Y], [X, Y])] = linear
        transform[np.ix_([VX, VY], [VX, VY])] = linear
        transform[AREA, AREA] = transform[VAREA, VAREA] = area_scale
        new_means = np.asarray(means, dtype=np.float64) @ transform.T
        new_means[:, [X, Y]] += translation
        new_covariances = transform @ np.asarray(covariances, dtype=np.float64) @ transform.T
        return new_means, new_covariances
