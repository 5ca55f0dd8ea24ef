"""Offline post-processing of tracker results: gap interpolation and Gaussian smoothing.

Works on result rows ``[frame, id, x, y, w, h, score]`` (``tlwh`` boxes, MOTChallenge result
files), so the output of any tracker, ours or a peer's, can be post-processed.

* ``linear``: the missing frames of a track's gap are filled by linear interpolation of the
  two boxes around it when the gap has at most ``max_gap`` missing frames (ByteTrack's
  ``tools/interpolation.py`` and StrongSORT's ``LinearInterpolation`` fill gaps with
  ``next - prev < interval``, interval 20: ``max_gap=18``).
* ``gsi``: StrongSORT's Gaussian-smoothed interpolation (Du et al., 2023): the linear step,
  then per track a Gaussian-process regression of x, y, w, h on the frame number with a fixed
  RBF kernel of length ``clip(tau * log(tau**3 / n), 1 / tau, tau**2)`` (n = rows of the
  track, tau 10) and noise 1e-10 (scikit-learn's default, which the reference uses), whose
  posterior mean at the track's frames replaces the boxes.

* ``aflink``: StrongSORT++'s appearance-free link model links tracklets that one person was cut
  into (:mod:`reidsort.tracking.aflink`; the network is trained by ``task=aflink``, run here in
  NumPy from its ``.npz``, loaded on first use). Ids change, no box is added or moved.
* ``aflink_gsi``: StrongSORT++'s order, AFLink then GSI (linked fragments' gaps of up to
  ``max_gap`` frames are filled and smoothed).

Tracks with fewer than ``min_length`` observed rows are dropped first. Interpolated rows get
the linearly interpolated score of their two neighbours; smoothing keeps each row's score (the
reference writes 1 for every smoothed row).
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from reidsort.tracking.aflink import (
    DEFAULT_MAX_COST,
    DEFAULT_MAX_DISTANCE,
    AFLinkNumpy,
    link_tracklets,
)
from reidsort.tracking.aflink import DEFAULT_MAX_GAP as DEFAULT_LINK_MAX_GAP
from reidsort.tracking.aflink import DEFAULT_MIN_GAP as DEFAULT_LINK_MIN_GAP

log = logging.getLogger(__name__)

#: result row columns (tracker_output_to_mot_rows / read_mot_results layout)
FRAME, TRACK_ID, X, Y, W, H, SCORE = range(7)
RESULT_ROW_WIDTH = 7
#: StrongSORT / ByteTrack interpolate gaps with next - prev < 20, i.e. up to 18 missing frames
DEFAULT_MAX_GAP = 18
#: StrongSORT's GSI tau
DEFAULT_TAU = 10.0
#: scikit-learn GaussianProcessRegressor's default alpha, which StrongSORT's GSI keeps
GP_NOISE = 1e-10
#: noise levels tried, in order, when the kernel matrix is not positive definite at GP_NOISE
GP_NOISE_FALLBACKS = (1e-8, 1e-6)


class PostprocessMethod(str, Enum):
    NONE = "none"
    LINEAR = "linear"
    GSI = "gsi"
    AFLINK = "aflink"
    AFLINK_GSI = "aflink_gsi"


#: the methods that link tracklets with AFLink first
LINKING_METHODS = (PostprocessMethod.AFLINK, PostprocessMethod.AFLINK_GSI)
#: the methods that interpolate (and, for the GSI ones, smooth) after any linking
INTERPOLATING_METHODS = (PostprocessMethod.LINEAR, PostprocessMethod.GSI,
                         PostprocessMethod.AFLINK_GSI)
SMOOTHING_METHODS = (PostprocessMethod.GSI, PostprocessMethod.AFLINK_GSI)


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    if rows.size == 0:
        return rows.reshape(0, RESULT_ROW_WIDTH)
    if rows.ndim != 2 or rows.shape[1] != RESULT_ROW_WIDTH:
        raise ValueError(f"result rows must be (M, 7) [frame, id, x, y, w, h, score], "
                         f"got {rows.shape}")
    rows = rows[np.lexsort((rows[:, FRAME], rows[:, TRACK_ID]))]
    same = (np.diff(rows[:, TRACK_ID]) == 0) & (np.diff(rows[:, FRAME]) == 0)
    if same.any():
        row = rows[int(np.flatnonzero(same)[0])]
        raise ValueError(f"track {row[TRACK_ID]:g} has two boxes in frame {row[FRAME]:g}: "
                         "a result file has one box per track and frame")
    return rows


def drop_short_tracks(rows: np.ndarray, min_length: int) -> np.ndarray:
    """Rows of the tracks that have at least ``min_length`` rows."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, RESULT_ROW_WIDTH)
    if min_length <= 1 or len(rows) == 0:
        return rows
    _, inverse, counts = np.unique(rows[:, TRACK_ID], return_inverse=True, return_counts=True)
    return rows[counts[inverse] >= min_length]


def interpolate_linear(rows: np.ndarray, max_gap: int = DEFAULT_MAX_GAP) -> np.ndarray:
    """``rows`` plus linearly interpolated rows for every gap of 1..``max_gap`` missing frames
    within a track; the result is sorted by track id, then frame."""
    rows = _sorted_rows(rows)
    if len(rows) < 2 or max_gap < 1:
        return rows
    steps = np.diff(rows[:, FRAME])
    same_track = np.diff(rows[:, TRACK_ID]) == 0
    gaps = np.flatnonzero(same_track & (steps > 1) & (steps <= max_gap + 1))
    if len(gaps) == 0:
        return rows
    missing = (steps[gaps] - 1).astype(np.int64)
    # one new row per missing frame: k = 1..missing of its gap
    gap_of_row = np.repeat(gaps, missing)
    k = np.arange(int(missing.sum())) - np.repeat(np.cumsum(missing) - missing, missing) + 1
    fraction = (k / steps[gap_of_row])[:, None]
    before, after = rows[gap_of_row], rows[gap_of_row + 1]
    filled = before + (after - before) * fraction
    filled[:, FRAME] = before[:, FRAME] + k  # exact integers
    filled[:, TRACK_ID] = before[:, TRACK_ID]
    out = np.concatenate([rows, filled])
    return out[np.lexsort((out[:, FRAME], out[:, TRACK_ID]))]


def gp_length_scale(track_length: int, tau: float = DEFAULT_TAU) -> float:
    """StrongSORT's adaptive RBF length: shorter tracks are smoothed over more frames."""
    return float(np.clip(tau * np.log(tau**3 / track_length), 1.0 / tau, tau**2))


def _gp_posterior_mean(frames: np.ndarray, values: np.ndarray, length: float) -> np.ndarray:
    """Posterior mean at ``frames`` of a zero-mean GP with an RBF kernel fitted to ``values``
    (n, d): ``K (K + noise I)^-1 values``, as scikit-learn's GaussianProcessRegressor with a
    fixed kernel and ``normalize_y=False``."""
    scaled = frames / length
    kernel = np.exp(-0.5 * (scaled[:, None] - scaled[None, :]) ** 2)
    for noise in (GP_NOISE, *GP_NOISE_FALLBACKS):
        try:
            factor = cho_factor(kernel + noise * np.eye(len(frames)), lower=True)
        except LinAlgError:
            continue
        if noise != GP_NOISE:
            log.warning("GSI: kernel of a %d-row track needed noise %g (not %g) to factorise",
                        len(frames), noise, GP_NOISE)
        return kernel @ cho_solve(factor, values)
    raise LinAlgError(f"GSI: kernel of a {len(frames)}-row track is not positive definite")


def gaussian_smooth(rows: np.ndarray, tau: float = DEFAULT_TAU) -> np.ndarray:
    """Replace each track's boxes by the GP posterior mean over its frames (StrongSORT's
    ``GaussianSmooth``); frames, ids and scores are kept."""
    rows = _sorted_rows(rows).copy()
    if len(rows) == 0:
        return rows
    starts = np.flatnonzero(np.r_[True, np.diff(rows[:, TRACK_ID]) != 0])
    for start, stop in zip(starts, np.r_[starts[1:], len(rows)]):
        track = rows[start:stop]
        length = gp_length_scale(len(track), tau)
        rows[start:stop, X : H + 1] = _gp_posterior_mean(track[:, FRAME], track[:, X : H + 1],
                                                         length)
    return rows


class Postprocessor:
    """``none | linear | gsi | aflink | aflink_gsi`` on result rows; built from
    ``conf/postprocess/<method>.yaml``. The ``link_*`` knobs and ``model_path`` are AFLink's."""

    def __init__(self, method: str | PostprocessMethod = PostprocessMethod.NONE,
                 max_gap: int = DEFAULT_MAX_GAP, min_length: int = 0,
                 tau: float = DEFAULT_TAU, model_path: str | Path | None = None,
                 link_min_gap: int = DEFAULT_LINK_MIN_GAP,
                 link_max_gap: int = DEFAULT_LINK_MAX_GAP,
                 link_max_distance: float = DEFAULT_MAX_DISTANCE,
                 link_max_cost: float = DEFAULT_MAX_COST) -> None:
        try:
            self.method = PostprocessMethod(method)
        except ValueError:
            choices = " | ".join(m.value for m in PostprocessMethod)
            raise ValueError(f"postprocess.method={method!r}: choose {choices}") from None
        if int(max_gap) != max_gap or max_gap < 0:
            raise ValueError(f"postprocess.max_gap={max_gap}: a number of frames >= 0")
        if int(min_length) != min_length or min_length < 0:
            raise ValueError(f"postprocess.min_length={min_length}: a number of rows >= 0")
        if not tau > 0:
            raise ValueError(f"postprocess.tau={tau}: must be > 0")
        self.max_gap, self.min_length, self.tau = int(max_gap), int(min_length), float(tau)
        self.model_path = Path(model_path).expanduser() if model_path else None
        self._model: AFLinkNumpy | None = None
        if self.method in LINKING_METHODS:
            if self.model_path is None:
                raise ValueError(f"postprocess.model_path is required for method "
                                 f"{self.method.value}: the .npz written by task=aflink")
            if not self.model_path.is_file():
                raise ValueError(f"postprocess.model_path={self.model_path}: no such file (the "
                                 ".npz written by task=aflink)")
        if not link_min_gap < link_max_gap:
            raise ValueError(f"postprocess.link_min_gap={link_min_gap} must be < "
                             f"link_max_gap={link_max_gap}")
        if not link_max_distance >= 0:
            raise ValueError(f"postprocess.link_max_distance={link_max_distance}: pixels >= 0")
        if not 0 < link_max_cost <= 1:
            raise ValueError(f"postprocess.link_max_cost={link_max_cost}: in (0, 1]")
        self.link_gates = {"min_gap": float(link_min_gap), "max_gap": float(link_max_gap),
                           "max_distance": float(link_max_distance),
                           "max_cost": float(link_max_cost)}
        self.last_links: list[tuple[float, float, float]] = []

    @property
    def active(self) -> bool:
        return self.method is not PostprocessMethod.NONE

    @property
    def model(self) -> AFLinkNumpy:
        """The AFLink network, read from ``model_path`` on first use."""
        if self._model is None:
            assert self.model_path is not None
            self._model = AFLinkNumpy(self.model_path)
        return self._model

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, RESULT_ROW_WIDTH)
        if not self.active:
            return rows
        rows = _sorted_rows(drop_short_tracks(rows, self.min_length))
        if self.method in LINKING_METHODS:
            rows, result = link_tracklets(rows, self.model, **self.link_gates)
            self.last_links = result.links
            log.info("AFLink: %d candidate pairs, %d links", result.candidates,
                     len(result.links))
        if self.method in INTERPOLATING_METHODS:
            rows = interpolate_linear(rows, self.max_gap)
        if self.method in SMOOTHING_METHODS:
            rows = gaussian_smooth(rows, self.tau)
        return rows

    def __repr__(self) -> str:
        text = (f"Postprocessor({self.method.value}, max_gap={self.max_gap}, "
                f"min_length={self.min_length}, tau={self.tau:g}")
        if self.method in LINKING_METHODS:
            gates = self.link_gates
            text += (f", model={self.model_path}, gap [{gates['min_gap']:g}, "
                     f"{gates['max_gap']:g}), {gates['max_distance']:g} px, "
                     f"cost < {gates['max_cost']:g}")
        return text + ")"
