"""Camera-motion compensation (CMC): the affine warp of the image from one frame to the next.

A tracker's Kalman prediction assumes a static camera. When the camera pans, zooms or shakes,
every box moves by the camera's motion on top of its own, the predicted boxes miss their gates
and tracks break. BoT-SORT (Aharon et al. 2022, NirAharon/BoT-SORT ``tracker/gmc.py``)
estimates the global motion of the background between consecutive frames as a 2x3 affine warp
``[A | t]`` (previous frame's pixel coordinates -> this frame's) and applies it to every
predicted track state before association; trackers here take it as ``update(..., warp=W)``.

Estimators (``cmc=<method>`` in ``task=track``; :func:`build_camera_motion` in code):

- ``none``: the identity (a static camera).
- ``ecc``: dense intensity alignment, OpenCV's ``findTransformECC`` (Evangelidis & Psarakis
  2008) with a Euclidean motion model (rotation + translation) on a downscaled, blurred
  grey image.
- ``sparse_flow``: Shi-Tomasi corners (``goodFeaturesToTrack``) of the previous frame followed
  into this one by pyramidal Lucas-Kanade flow, then a RANSAC similarity
  (``estimateAffinePartial2D``: rotation, uniform scale, translation). BoT-SORT's default.
- ``orb``: FAST keypoints with ORB descriptors in both frames, brute-force Hamming matching
  with a ratio test and BoT-SORT's spatial-distance filtering, then the RANSAC similarity.
- ``file``: pre-computed warps in BoT-SORT's GMC text format, for sequences without images
  (``../shared/data/mot/MOT17-trainhalf/<seq>/gmc.txt``): line ``k`` is
  ``<k>\\t a11 a12 a13 a21 a22 a23``, the warp from frame ``k`` to frame ``k + 1``
  (line 0, frame 1: the identity).

The image estimators work on a grey image downscaled by ``downscale`` and ignore the image
border and, where the frame's detections are passed, the boxes (people move on their own:
they are not the background). Their warp is converted back to full-resolution pixels. A frame
whose motion cannot be estimated (ECC does not converge, too few feature points) gets the
identity and is counted; :meth:`CameraMotionEstimator.report` logs the count once (the
application calls it at the end of each source), never an exception mid-run.

OpenCV is imported inside the estimators only: this module, like the rest of
``reidsort.tracking``, imports with NumPy alone.

Differences from BoT-SORT's ``gmc.py``, all deliberate: (1) its ECC never replaces its first
frame, so from frame 3 on it returns the motion since frame 1 instead of since the previous
frame; ours registers consecutive frames. (2) Its ECC does not scale the translation back to
full resolution; ours does (all methods convert the warp exactly, ``T W T^-1`` with ``T`` the
resize's pixel-centre map, where BoT-SORT multiplies the translation by ``downscale``).
(3) Its sparse-flow and ECC paths use no mask; all our image methods mask the border and the
boxes as its ORB path does. (4) Its ORB outlier test ``(d - mean) < 2.5 std`` is one-sided;
ours is ``|d - mean| <= 2.5 std``.
"""

from __future__ import annotations

import abc
import logging
import math
import os
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from reidsort.tracking.kalman_filter import WARP_SHAPE, check_warp

log = logging.getLogger(__name__)


class CameraMotionMethod(str, Enum):
    NONE = "none"
    ECC = "ecc"
    SPARSE_FLOW = "sparse_flow"
    ORB = "orb"
    FILE = "file"


# -- defaults and their sources -----------------------------------------------------------------
#: Images are registered at 1/2 resolution: BoT-SORT ``GMC(downscale=2)``, all methods.
DEFAULT_DOWNSCALE: int = 2
#: Keypoints within this fraction of the image size from the border are ignored (BoT-SORT's
#: ORB mask keeps ``[0.02 h, 0.98 h) x [0.02 w, 0.98 w)``).
BORDER_FRACTION: float = 0.02
#: ECC: BoT-SORT ``gmc.py`` stops after 5000 iterations or an increment of the correlation
#: coefficient below 1e-6; BoxMOT's ``ECC`` uses 100 / 1e-5.
ECC_MAX_ITERATIONS: int = 100
ECC_EPS: float = 1e-5
#: ECC: BoT-SORT blurs the grey frame (3x3 Gaussian, sigma 1.5) before downscaling it and
#: passes ``gaussFiltSize=1`` to ``findTransformECC``.
ECC_BLUR_KERNEL: int = 3
ECC_BLUR_SIGMA: float = 1.5
ECC_GAUSS_FILTER_SIZE: int = 1
#: Shi-Tomasi corners for sparse flow: BoT-SORT ``feature_params``.
FLOW_MAX_CORNERS: int = 1000
FLOW_QUALITY_LEVEL: float = 0.01
FLOW_MIN_DISTANCE: float = 1.0
FLOW_BLOCK_SIZE: int = 3
#: FAST corner threshold for ORB: BoT-SORT ``cv2.FastFeatureDetector_create(20)``.
ORB_FAST_THRESHOLD: int = 20
#: Lowe ratio test of the two nearest descriptors: BoT-SORT 0.9.
ORB_RATIO: float = 0.9
#: A match may move at most this fraction of the image size per frame: BoT-SORT 0.25.
ORB_MAX_SPATIAL_FRACTION: float = 0.25
#: Matches further than this many standard deviations from the mean displacement are dropped
#: (per axis): BoT-SORT 2.5.
ORB_OUTLIER_STD: float = 2.5
#: ``estimateAffinePartial2D`` needs more than this many point pairs: BoT-SORT ``> 4``.
MIN_POINT_PAIRS: int = 4
#: Frames listed (by number) in the failure report; the count is always complete.
REPORTED_FAILED_FRAMES: int = 5
#: Number of values on a GMC line: the index and the six warp coefficients.
GMC_LINE_TOKENS: int = 7


def identity_warp() -> np.ndarray:
    """The ``(2, 3)`` warp of a static camera."""
    return np.eye(*WARP_SHAPE)


def compose_warps(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """The warp of applying ``earlier`` and then ``later`` (e.g. frame k -> k+1 -> k+2)."""
    out = np.empty(WARP_SHAPE)
    out[:, :2] = later[:, :2] @ earlier[:, :2]
    out[:, 2] = later[:, :2] @ earlier[:, 2] + later[:, 2]
    return out


def _as_homogeneous(warp: np.ndarray) -> np.ndarray:
    full = np.eye(3)
    full[:2] = warp
    return full


class CameraMotionEstimator(abc.ABC):
    """Estimates, frame by frame, the affine warp from the previous frame to the current one.

    Call :meth:`estimate` once per frame in order (frames of a source, possibly with gaps), and
    :meth:`reset` between sources. ``needs_images`` tells whether :meth:`estimate` needs the
    frame's pixels (the application decodes frames for it even when detections are cached).
    """

    method: ClassVar[CameraMotionMethod]
    needs_images: ClassVar[bool] = True

    def __init__(self) -> None:
        self.frames = 0
        self.failures = 0
        self.failed_frames: list[int] = []

    @property
    def is_identity(self) -> bool:
        """True for the estimator that never moves anything (``none``)."""
        return False

    def estimate(
        self, image: np.ndarray | None, frame_index: int, boxes_xyxy: np.ndarray | None = None
    ) -> np.ndarray:
        """The ``(2, 3)`` float64 warp from the previous frame passed here to this one
        (identity for the first frame after construction or :meth:`reset`, and for a frame
        whose motion could not be estimated, which is counted in ``failures``).

        ``image`` is the HxWx3 BGR (or HxW grey) frame, ``frame_index`` its 1-based number in
        the source, ``boxes_xyxy`` ``(N, >=4)`` the frame's detections (masked out as
        foreground), or None.
        """
        self.frames += 1
        warp = self._estimate(image, int(frame_index), boxes_xyxy)
        if warp is None or not np.isfinite(warp).all():
            self.failures += 1
            if len(self.failed_frames) < REPORTED_FAILED_FRAMES:
                self.failed_frames.append(int(frame_index))
            log.debug("cmc=%s: no camera motion for frame %d", self.method.value, frame_index)
            return identity_warp()
        return np.asarray(warp, dtype=np.float64).reshape(WARP_SHAPE)

    @abc.abstractmethod
    def _estimate(
        self, image: np.ndarray | None, frame_index: int, boxes_xyxy: np.ndarray | None
    ) -> np.ndarray | None:
        """The warp, or None when it cannot be estimated for this frame."""

    def reset(self) -> None:
        """Forget the previous frame and the failure count (a new source starts)."""
        self.frames = 0
        self.failures = 0
        self.failed_frames = []

    def report(self, name: str = "") -> str | None:
        """Log, once, how many frames got the identity because estimation failed; returns the
        message (None when every frame was estimated)."""
        if not self.failures:
            return None
        listed = ", ".join(map(str, self.failed_frames))
        more = ", ..." if self.failures > len(self.failed_frames) else ""
        message = (
            f"{name + ': ' if name else ''}cmc={self.method.value} could not estimate the "
            f"camera motion in {self.failures} of {self.frames} frames (frames {listed}{more}); "
            "the identity (no motion) was used there"
        )
        log.warning("%s", message)
        return message

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoCameraMotion(CameraMotionEstimator):
    """``cmc=none``: a static camera; trackers are not even given a warp."""

    method = CameraMotionMethod.NONE
    needs_images = False

    @property
    def is_identity(self) -> bool:
        return True

    def _estimate(self, image, frame_index, boxes_xyxy) -> np.ndarray:
        return identity_warp()


def background_mask(
    shape_hw: tuple[int, int],
    boxes_xyxy: np.ndarray | None,
    scale_xy: tuple[float, float] = (1.0, 1.0),
    border_fraction: float = BORDER_FRACTION,
) -> np.ndarray:
    """``uint8`` mask (255 = use) of an ``(H, W)`` image: everything but a border of
    ``border_fraction`` of the size and the ``boxes_xyxy`` (full-resolution pixels, divided by
    ``scale_xy`` to reach this image; rounded outwards). Vectorised over boxes: their
    rectangles are painted into a 2-D difference array and summed up."""
    height, width = int(shape_hw[0]), int(shape_hw[1])
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[
        int(border_fraction * height) : int((1 - border_fraction) * height),
        int(border_fraction * width) : int((1 - border_fraction) * width),
    ] = 255
    if boxes_xyxy is None:
        return mask
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(len(boxes_xyxy), -1)[:, :4]
    boxes = boxes[np.isfinite(boxes).all(axis=1)]
    if len(boxes) == 0:
        return mask
    scale = np.array(scale_xy * 2, dtype=np.float64)
    scaled = boxes / scale
    limits = np.array([width, height, width, height])
    low = np.clip(np.floor(scaled[:, :2]), 0, limits[:2]).astype(np.int64)
    high = np.clip(np.ceil(scaled[:, 2:]), 0, limits[2:]).astype(np.int64)
    keep = (high > low).all(axis=1)
    low, high = low[keep], high[keep]
    if len(low) == 0:
        return mask
    difference = np.zeros((height + 1, width + 1), dtype=np.int32)
    (x1, y1), (x2, y2) = low.T, high.T
    np.add.at(difference, (y1, x1), 1)
    np.add.at(difference, (y1, x2), -1)
    np.add.at(difference, (y2, x1), -1)
    np.add.at(difference, (y2, x2), 1)
    covered = difference.cumsum(axis=0).cumsum(axis=1)[:height, :width] > 0
    mask[covered] = 0
    return mask


class _ImageCameraMotion(CameraMotionEstimator):
    """Shared steps of the image-based estimators: grey, downscale, mask, first frame, and the
    conversion of the downscaled warp to full resolution."""

    def __init__(
        self,
        downscale: int = DEFAULT_DOWNSCALE,
        mask_boxes: bool = True,
        border_fraction: float = BORDER_FRACTION,
    ) -> None:
        super().__init__()
        if int(downscale) != downscale or downscale < 1:
            raise ValueError(f"downscale must be an integer >= 1, got {downscale}")
        if not 0 <= border_fraction < 0.5:
            raise ValueError(f"border_fraction must be in [0, 0.5), got {border_fraction}")
        self.downscale = int(downscale)
        self.mask_boxes = bool(mask_boxes)
        self.border_fraction = float(border_fraction)
        self._full_shape: tuple[int, int] | None = None
        self._forget()

    def reset(self) -> None:
        super().reset()
        self._full_shape = None
        self._forget()

    @abc.abstractmethod
    def _forget(self) -> None:
        """Drop the previous frame's state."""

    @abc.abstractmethod
    def _register(self, small: np.ndarray, mask: np.ndarray, first: bool) -> np.ndarray | None:
        """Warp (downscaled pixels) from the previous frame to ``small``; store ``small``'s
        state for the next frame. Called with ``first`` for the first frame (return ignored)."""

    def _preprocess(self, grey: np.ndarray) -> np.ndarray:
        return grey

    def _estimate(self, image, frame_index, boxes_xyxy):
        import cv2

        if image is None:
            raise ValueError(
                f"cmc={self.method.value} estimates the camera motion from the frames' pixels, "
                "but this frame has none"
            )
        image = np.asarray(image)
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        height, width = grey.shape[:2]
        first = self._full_shape != (height, width)
        if first:
            self._forget()
            self._full_shape = (height, width)
        grey = self._preprocess(grey)
        small_w, small_h = max(1, width // self.downscale), max(1, height // self.downscale)
        small = grey if self.downscale == 1 else cv2.resize(grey, (small_w, small_h))
        scale_xy = (width / small_w, height / small_h)
        mask = background_mask(
            small.shape, boxes_xyxy if self.mask_boxes else None, scale_xy, self.border_fraction
        )
        warp_small = self._register(small, mask, first)
        if first:
            return identity_warp()
        if warp_small is None:
            return None
        return self._to_full_resolution(np.asarray(warp_small, dtype=np.float64), scale_xy)

    @staticmethod
    def _to_full_resolution(warp_small: np.ndarray, scale_xy: tuple[float, float]) -> np.ndarray:
        """``T W T^-1`` with ``T`` the resize's map of pixel centres, small -> full:
        ``x = r (x_s + 0.5) - 0.5`` per axis (OpenCV's linear resize)."""
        if scale_xy == (1.0, 1.0):
            return warp_small
        rx, ry = scale_xy
        to_full = np.array([[rx, 0.0, 0.5 * (rx - 1)], [0.0, ry, 0.5 * (ry - 1)], [0, 0, 1]])
        to_small = np.linalg.inv(to_full)
        return (to_full @ _as_homogeneous(warp_small) @ to_small)[:2]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(downscale={self.downscale}, mask_boxes={self.mask_boxes})"


class EccCameraMotion(_ImageCameraMotion):
    """``cmc=ecc``: Euclidean ECC registration of consecutive downscaled grey frames; the mask
    (border and boxes of the current frame) restricts the pixels that are compared."""

    method = CameraMotionMethod.ECC

    def __init__(
        self,
        downscale: int = DEFAULT_DOWNSCALE,
        max_iterations: int = ECC_MAX_ITERATIONS,
        eps: float = ECC_EPS,
        mask_boxes: bool = True,
        border_fraction: float = BORDER_FRACTION,
    ) -> None:
        if int(max_iterations) != max_iterations or max_iterations < 1:
            raise ValueError(f"max_iterations must be an integer >= 1, got {max_iterations}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.max_iterations = int(max_iterations)
        self.eps = float(eps)
        super().__init__(downscale, mask_boxes, border_fraction)

    def _forget(self) -> None:
        self._previous: np.ndarray | None = None

    def _preprocess(self, grey: np.ndarray) -> np.ndarray:
        import cv2

        if self.downscale == 1:
            return grey
        return cv2.GaussianBlur(grey, (ECC_BLUR_KERNEL, ECC_BLUR_KERNEL), ECC_BLUR_SIGMA)

    def _register(self, small, mask, first):
        import cv2

        previous, self._previous = self._previous, small
        if first or previous is None:
            return None
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, self.max_iterations, self.eps)
        try:
            _, warp = cv2.findTransformECC(
                previous,
                small,
                np.eye(*WARP_SHAPE, dtype=np.float32),
                cv2.MOTION_EUCLIDEAN,
                criteria,
                mask,
                ECC_GAUSS_FILTER_SIZE,
            )
        except cv2.error:  # StsNoConv, or a degenerate (e.g. flat) image
            return None
        return warp

    def __repr__(self) -> str:
        return (
            f"EccCameraMotion(downscale={self.downscale}, max_iterations="
            f"{self.max_iterations}, eps={self.eps:g}, mask_boxes={self.mask_boxes})"
        )


def _similarity_ransac(previous_points: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """RANSAC similarity (rotation, uniform scale, translation) between point sets, or None."""
    import cv2

    if len(previous_points) <= MIN_POINT_PAIRS:
        return None
    warp, _ = cv2.estimateAffinePartial2D(
        previous_points.reshape(-1, 1, 2).astype(np.float32),
        points.reshape(-1, 1, 2).astype(np.float32),
        method=cv2.RANSAC,
    )
    return warp


class SparseFlowCameraMotion(_ImageCameraMotion):
    """``cmc=sparse_flow``: corners of the previous frame's background followed into this frame
    by pyramidal Lucas-Kanade optical flow (OpenCV defaults: 21x21 window, 3 pyramid levels,
    as BoT-SORT), then a RANSAC similarity."""

    method = CameraMotionMethod.SPARSE_FLOW

    def __init__(
        self,
        downscale: int = DEFAULT_DOWNSCALE,
        max_corners: int = FLOW_MAX_CORNERS,
        quality_level: float = FLOW_QUALITY_LEVEL,
        min_distance: float = FLOW_MIN_DISTANCE,
        block_size: int = FLOW_BLOCK_SIZE,
        mask_boxes: bool = True,
        border_fraction: float = BORDER_FRACTION,
    ) -> None:
        if int(max_corners) != max_corners or max_corners < MIN_POINT_PAIRS + 1:
            raise ValueError(
                f"max_corners must be an integer > {MIN_POINT_PAIRS}, got {max_corners}"
            )
        if not 0 < quality_level < 1:
            raise ValueError(f"quality_level must be in (0, 1), got {quality_level}")
        self.max_corners = int(max_corners)
        self.quality_level = float(quality_level)
        self.min_distance = float(min_distance)
        self.block_size = int(block_size)
        super().__init__(downscale, mask_boxes, border_fraction)

    def _forget(self) -> None:
        self._previous: np.ndarray | None = None
        self._previous_points: np.ndarray | None = None

    def _register(self, small, mask, first):
        import cv2

        points = cv2.goodFeaturesToTrack(
            small,
            self.max_corners,
            self.quality_level,
            self.min_distance,
            mask=mask,
            blockSize=self.block_size,
            useHarrisDetector=False,
        )
        previous, previous_points = self._previous, self._previous_points
        self._previous, self._previous_points = small, points
        if first or previous is None or previous_points is None:
            return None
        if len(previous_points) <= MIN_POINT_PAIRS:
            return None
        followed, status, _ = cv2.calcOpticalFlowPyrLK(previous, small, previous_points, None)
        if followed is None:
            return None
        ok = status.reshape(-1).astype(bool)
        return _similarity_ransac(previous_points.reshape(-1, 2)[ok], followed.reshape(-1, 2)[ok])


class OrbCameraMotion(_ImageCameraMotion):
    """``cmc=orb``: FAST keypoints of the background with ORB descriptors, matched to the
    previous frame's (Hamming, ratio test), filtered by displacement (at most a quarter of the
    image, within 2.5 standard deviations of the mean), then a RANSAC similarity."""

    method = CameraMotionMethod.ORB

    def __init__(
        self,
        downscale: int = DEFAULT_DOWNSCALE,
        fast_threshold: int = ORB_FAST_THRESHOLD,
        ratio: float = ORB_RATIO,
        max_spatial_fraction: float = ORB_MAX_SPATIAL_FRACTION,
        outlier_std: float = ORB_OUTLIER_STD,
        mask_boxes: bool = True,
        border_fraction: float = BORDER_FRACTION,
    ) -> None:
        if not 0 < ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        if not 0 < max_spatial_fraction <= 1:
            raise ValueError(f"max_spatial_fraction must be in (0, 1], got {max_spatial_fraction}")
        if not outlier_std > 0:
            raise ValueError(f"outlier_std must be > 0, got {outlier_std}")
        self.fast_threshold = int(fast_threshold)
        self.ratio = float(ratio)
        self.max_spatial_fraction = float(max_spatial_fraction)
        self.outlier_std = float(outlier_std)
        self._detector: Any = None
        super().__init__(downscale, mask_boxes, border_fraction)

    def _forget(self) -> None:
        self._previous_points: np.ndarray | None = None
        self._previous_descriptors: np.ndarray | None = None

    def _features(self, small, mask) -> tuple[np.ndarray, np.ndarray | None]:
        import cv2

        if self._detector is None:
            self._detector = (
                cv2.FastFeatureDetector_create(self.fast_threshold),
                cv2.ORB_create(),
                cv2.BFMatcher(cv2.NORM_HAMMING),
            )
        fast, orb, _ = self._detector
        keypoints = fast.detect(small, mask)
        keypoints, descriptors = orb.compute(small, keypoints)
        points = np.array([k.pt for k in keypoints], dtype=np.float64).reshape(-1, 2)
        return points, descriptors

    def _register(self, small, mask, first):
        points, descriptors = self._features(small, mask)
        previous_points, previous_descriptors = self._previous_points, self._previous_descriptors
        self._previous_points, self._previous_descriptors = points, descriptors
        if first or previous_descriptors is None or descriptors is None:
            return None
        if len(previous_points) < 2 or len(points) < 2:
            return None
        matcher = self._detector[2]
        pairs = [
            (m.queryIdx, m.trainIdx, m.distance, n.distance)
            for m, n in (
                p for p in matcher.knnMatch(previous_descriptors, descriptors, k=2) if len(p) == 2
            )
        ]
        if not pairs:
            return None
        table = np.array(pairs, dtype=np.float64)
        table = table[table[:, 2] < self.ratio * table[:, 3]]
        before = previous_points[table[:, 0].astype(np.int64)]
        after = points[table[:, 1].astype(np.int64)]
        displacement = after - before
        height, width = small.shape[:2]
        near = (np.abs(displacement) < self.max_spatial_fraction * np.array([width, height])).all(
            axis=1
        )
        before, after, displacement = before[near], after[near], displacement[near]
        if len(displacement) <= MIN_POINT_PAIRS:
            return None
        deviation = np.abs(displacement - displacement.mean(axis=0))
        inliers = (deviation <= self.outlier_std * displacement.std(axis=0)).all(axis=1)
        return _similarity_ransac(before[inliers], after[inliers])


class FileCameraMotion(CameraMotionEstimator):
    """``cmc=file``: warps read from a text file in BoT-SORT's GMC format (see the module
    docstring). Frame numbers, not call counts, select the lines, so a run that skips frames
    (unreadable images) or stops early stays aligned: the warp returned for frame ``f`` after
    frame ``p`` is the composition of the file's warps of frames ``p + 1 .. f``."""

    method = CameraMotionMethod.FILE
    needs_images = False

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.path = Path(path)
        self._warps = read_gmc_file(self.path)
        self._last_frame: int | None = None

    def reset(self) -> None:
        super().reset()
        self._last_frame = None

    @property
    def num_frames(self) -> int:
        return len(self._warps)

    def _estimate(self, image, frame_index, boxes_xyxy):
        if frame_index < 1:
            raise ValueError(f"frame numbers start at 1, got {frame_index}")
        if frame_index > len(self._warps):
            raise ValueError(
                f"{self.path} has camera motion for frames 1-{len(self._warps)} (line k is frame "
                f"k+1) but frame {frame_index} was asked for: is it this sequence's file?"
            )
        last, self._last_frame = self._last_frame, frame_index
        if last is None:
            return identity_warp()
        if frame_index <= last:
            raise ValueError(
                f"cmc=file: frame {frame_index} after frame {last}; frames must come in order "
                "(reset() between sources)"
            )
        warp = self._warps[last]  # frame last + 1 is line ``last``
        for line in range(last + 1, frame_index):
            warp = compose_warps(self._warps[line], warp)
        return warp.copy()

    def __repr__(self) -> str:
        return f"FileCameraMotion(path={str(self.path)!r})"


def read_gmc_file(path: str | os.PathLike) -> np.ndarray:
    """The ``(F, 2, 3)`` warps of a GMC file, row ``k`` from line ``k`` (frame ``k + 1``).

    Raises a one-line ``FileNotFoundError`` / ``ValueError`` naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"cmc=file: camera-motion file {path} not found (BoT-SORT GMC format: line k is "
            "'<k>\\t a11 a12 a13 a21 a22 a23', frame k+1's warp; set cmc.path)"
        )
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path} is empty: expected one camera-motion line per frame")
    warps = np.empty((len(lines), *WARP_SHAPE))
    for number, line in enumerate(lines):
        tokens = line.split()
        problem = None
        if len(tokens) != GMC_LINE_TOKENS:
            problem = f"{len(tokens)} values instead of {GMC_LINE_TOKENS}"
        else:
            try:
                index = float(tokens[0])
                values = np.array([float(t) for t in tokens[1:]])
            except ValueError:
                problem = "a value is not a number"
            else:
                if index != number:
                    problem = f"it starts with {tokens[0]}, expected {number}"
                elif not np.isfinite(values).all():
                    problem = "a value is not finite"
                else:
                    warps[number] = values.reshape(WARP_SHAPE)
        if problem is not None:
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise ValueError(
                f"{path}, line {number + 1}: {problem} in {shown!r} (expected "
                f"'{number}\\t a11 a12 a13 a21 a22 a23')"
            )
    return warps


#: ``method`` -> estimator class, for :func:`build_camera_motion`.
ESTIMATORS: dict[CameraMotionMethod, type[CameraMotionEstimator]] = {
    CameraMotionMethod.NONE: NoCameraMotion,
    CameraMotionMethod.ECC: EccCameraMotion,
    CameraMotionMethod.SPARSE_FLOW: SparseFlowCameraMotion,
    CameraMotionMethod.ORB: OrbCameraMotion,
    CameraMotionMethod.FILE: FileCameraMotion,
}


def build_camera_motion(method: CameraMotionMethod | str | None, **kwargs) -> CameraMotionEstimator:
    """An estimator by name (``none``, ``ecc``, ``sparse_flow``, ``orb``, ``file``; None is
    ``none``) with its keyword arguments (``file`` needs ``path``)."""
    try:
        kind = CameraMotionMethod("none" if method is None else method)
    except ValueError:
        names = ", ".join(m.value for m in CameraMotionMethod)
        raise ValueError(f"cmc method must be one of {names}, got {method!r}") from None
    return ESTIMATORS[kind](**kwargs)


def warp_scale(warp: np.ndarray) -> float:
    """The warp's scale factor ``sqrt(|det A|)`` (1 for a pure rotation or translation)."""
    warp = check_warp(warp)
    return math.sqrt(abs(float(np.linalg.det(warp[:, :2]))))
