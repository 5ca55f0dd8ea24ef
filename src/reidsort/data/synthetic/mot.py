"""A synthetic MOTChallenge sequence: people walking, crossing, occluding each other, pausing,
entering and leaving, with exact ground truth and noisy public detections.

Rendered with the project's person renderer (:func:`draw_person`), so ``task=track`` runs out
of the box with no dataset. The sequence folder has the MOTChallenge layout::

    <root>/seqinfo.ini
    <root>/img1/000001.jpg ...
    <root>/gt/gt.txt     frame,id,x,y,w,h,consider,class(1),visibility   (MOT16+ columns)
    <root>/det/det.txt   frame,-1,x,y,w,h,score,-1,-1,-1                  (public detections)
    <root>/synthetic_meta.json

Scene: a static street background, pedestrians walking left or right along slightly slanted
paths at their own speed, smaller and slower with distance (a simple ground-plane perspective),
some pausing for a while, and foreground pillars everybody passes behind. With
``returning_people`` > 0, that many of the walkers who leave come back after a few seconds
(:data:`RETURN_GAP_SECONDS_RANGE`), through the side they left by, walking the other way on
another path: the same identity in the ground truth, a re-identification case for trackers. Nearer people are
drawn over farther ones. Visibility is the share of a person's box not covered by nearer
people, pillars or the frame border; boxes less than :data:`MIN_CONSIDERED_VISIBILITY` visible
are marked ``consider=0`` (TrackEval ignores them: nobody is asked to track the invisible).

Detections imitate a decent detector: a person is found with probability ``recall`` when well
visible and less often the more they are occluded; boxes are jittered; false positives appear
at random places; scores are higher for well-visible people than for false positives.

:func:`ensure_synthetic_mot` renders a sequence once per parameter set into a folder named by
their hash (a cache) and reuses it afterwards; rendering goes to a hidden sibling folder that
is renamed into place, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reidsort.data.synthetic.person import NOMINAL_BOX_ASPECT, Facing, PersonAppearance, draw_person
from reidsort.data.synthetic.scene import CameraStyle, render_background
from reidsort.utils.io import atomic_write_text

#: Bump whenever the rendered sequence changes for the same parameters, so caches regenerate.
GENERATOR_VERSION = 1
GENERATOR_NAME = "reidsort.data.synthetic.mot"
META_FILENAME = "synthetic_meta.json"
WALKER_STREAM = 0x5EED_0005
FRAME_STREAM = 0x5EED_0006
DETECTION_STREAM = 0x5EED_0007
#: Identities of the walkers start here, far from the Re-ID dataset's identities.
IDENTITY_BASE = 500_000

# -- scene geometry (fractions of the frame height unless noted) ------------------------------
#: The ground plane meets the horizon here; a person's height grows linearly with the distance
#: of their feet below it.
HORIZON = 0.32
#: Height of a person whose feet are at the bottom edge.
NEAR_PERSON_HEIGHT = 0.58
#: Feet of walkers lie between these rows.
FOOT_ROW_RANGE = (0.55, 0.98)
#: Path slope (vertical pixels per horizontal pixel).
SLOPE_RANGE = (-0.12, 0.12)
#: Walking speed in person-heights per second (1.4 m/s for a 1.75 m person = 0.8) and the
#: spread between people.
WALKING_SPEED_HEIGHTS_PER_S = 0.8
SPEED_FACTOR_RANGE = (0.7, 1.3)
#: One gait cycle (two steps) covers about this many person-heights.
STRIDE_HEIGHTS = 0.9
#: Probability that a walker stops once, and for how many seconds.
P_PAUSE = 0.35
PAUSE_SECONDS_RANGE = (0.6, 2.0)
#: Pillars: width as a fraction of the frame width.
PILLAR_WIDTH_RANGE = (0.035, 0.06)
#: Occlusion raster: visibility is computed on a grid this many times coarser than the frame.
VISIBILITY_RASTER_STEP = 4
#: Ground-truth boxes less visible than this are ignored by the evaluation (consider = 0).
MIN_CONSIDERED_VISIBILITY = 0.2
#: A person is annotated while at least this share of their box lies inside the frame.
MIN_INSIDE_FRACTION = 0.25
#: Image noise and lighting flicker of the synthetic camera.
NOISE_SIGMA = 3.0
EXPOSURE_JITTER_LOG_STD = 0.02
BLUR_SIGMA = 0.6
#: Detections: probability of detection rises from 0 at this visibility to ``recall`` at ...
DETECTION_VISIBILITY_RANGE = (0.15, 0.5)
#: Scores: true positives ~ base + slope * visibility + noise; false positives uniform.
TRUE_SCORE_BASE, TRUE_SCORE_SLOPE, TRUE_SCORE_NOISE = 0.45, 0.5, 0.08
FALSE_SCORE_RANGE = (0.3, 0.7)
MOT_CLASS_PEDESTRIAN = 1
#: Returning walkers stay away this long (seconds): longer than the deletion delay of the
#: trackers' defaults (DeepSORT max_age 30 frames, ByteTrack/BoT-SORT track_buffer 30 at 30 fps,
#: 1-1.5 s at 20-30 fps), so only a re-identification can give them their old id.
RETURN_GAP_SECONDS_RANGE = (2.0, 4.0)
#: A returning walker must come back at least this many seconds before the sequence ends.
RETURN_MIN_SECONDS_LEFT = 2.0
#: Parameters added after the first release, with the value that reproduces the sequences of
#: before: left out of the cache key and the metadata at that value, so existing caches stay valid.
_LATER_PARAMS = {"returning_people": 0}


_FIELD_TYPES = {"str": str, "int": int, "float": float}


@dataclass(frozen=True)
class SyntheticMotParams:
    """Everything that shapes the sequence (the cache key)."""

    name: str = "SYNTH-01"
    num_frames: int = 200
    width: int = 640
    height: int = 480
    frame_rate: float = 20.0
    num_people: int = 14
    num_pillars: int = 2
    seed: int = 0
    camera_id: int = 0
    recall: float = 0.9
    false_positives_per_frame: float = 0.3
    box_jitter: float = 0.04
    jpeg_quality: int = 90
    returning_people: int = 0

    def __post_init__(self) -> None:
        # coerce config values (YAML gives 20 for 20.0) so equal settings hash equally
        for spec in fields(self):
            object.__setattr__(self, spec.name, _FIELD_TYPES[spec.type](getattr(self, spec.name)))

    def validate(self) -> None:
        if (self.num_frames < 1 or self.num_people < 0 or self.num_pillars < 0
                or self.returning_people < 0):
            raise ValueError("num_frames must be >= 1, num_people, num_pillars and "
                             f"returning_people >= 0: {self}")
        if self.width < 64 or self.height < 64:
            raise ValueError(f"frames must be at least 64x64, got {self.width}x{self.height}")
        if not self.frame_rate > 0:
            raise ValueError(f"frame_rate must be > 0, got {self.frame_rate}")
        if not (0.0 <= self.recall <= 1.0 and self.false_positives_per_frame >= 0
                and self.box_jitter >= 0 and 1 <= self.jpeg_quality <= 100):
            raise ValueError(f"bad detection or image settings: {self}")
        if not self.name or any(c in self.name for c in "/\\"):
            raise ValueError(f"name must be a plain folder name, got {self.name!r}")

    def as_dict(self) -> dict[str, Any]:
        """The parameters, without later additions left at their neutral value (so sequences
        rendered before those existed keep their key and metadata)."""
        values = asdict(self)
        for name, neutral in _LATER_PARAMS.items():
            if values[name] == neutral:
                del values[name]
        return values

    def key(self) -> str:
        text = json.dumps({"version": GENERATOR_VERSION, **self.as_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def person_height(foot_y: np.ndarray | float, frame_height: int) -> np.ndarray | float:
    """Pixel height of a person whose feet are at row ``foot_y`` (ground-plane perspective)."""
    horizon = HORIZON * frame_height
    return NEAR_PERSON_HEIGHT * frame_height * (foot_y - horizon) / (frame_height - horizon)


@dataclass
class Trajectory:
    """One walker's box (centre x, feet y, height), gait phase and facing per frame."""

    identity: int
    appearance: PersonAppearance
    frames: np.ndarray  # 1-based frame numbers where the walker exists (may be off-frame)
    centre_x: np.ndarray
    foot_y: np.ndarray
    heights: np.ndarray
    phases: np.ndarray
    facing: Facing

    def boxes_xyxy(self) -> np.ndarray:
        half_w = self.heights * NOMINAL_BOX_ASPECT / 2
        return np.stack([self.centre_x - half_w, self.foot_y - self.heights,
                         self.centre_x + half_w, self.foot_y], axis=1)


def plan_walkers(params: SyntheticMotParams) -> list[Trajectory]:
    """Each walker enters at one side edge (or is already in view at frame 1), walks across and
    leaves; some pause once on the way."""
    rng = np.random.default_rng([WALKER_STREAM, params.seed])
    width, height = params.width, params.height
    walkers = []
    for k in range(params.num_people):
        identity = IDENTITY_BASE + k
        appearance = PersonAppearance.sample(identity, params.seed)
        direction = 1 if rng.random() < 0.5 else -1
        foot_y0 = rng.uniform(*FOOT_ROW_RANGE) * height
        slope = rng.uniform(*SLOPE_RANGE)
        speed_factor = rng.uniform(*SPEED_FACTOR_RANGE)
        pause_at = rng.uniform(0.2, 0.8) if rng.random() < P_PAUSE else None
        pause_frames = int(round(rng.uniform(*PAUSE_SECONDS_RANGE) * params.frame_rate))
        # Walkers already in view at frame 1 start up to one crossing earlier; the rest enter
        # during the sequence (not in its last tenth, so each is seen for a while).
        h0 = float(person_height(foot_y0, height))
        crossing = (width + h0) / (WALKING_SPEED_HEIGHTS_PER_S * h0 / params.frame_rate)
        start = int(rng.uniform(-0.7 * crossing, 0.9 * params.num_frames))
        walkers.append(_simulate(params, identity, appearance, direction, foot_y0, slope,
                                 speed_factor, pause_at, pause_frames, start,
                                 rng.uniform(0, 2 * math.pi)))
    walkers = [w for w in walkers if len(w.frames)]
    return walkers + _plan_returns(params, walkers)


def _plan_returns(params: SyntheticMotParams, walkers: list[Trajectory]) -> list[Trajectory]:
    """Second appearances of the first ``returning_people`` walkers that leave early enough:
    back through the side they left by, after a gap, on a new path (own random stream, so the
    first appearances are the same with and without returns)."""
    if params.returning_people == 0:
        return []
    rng = np.random.default_rng([WALKER_STREAM, params.seed, 2])
    latest = params.num_frames - RETURN_MIN_SECONDS_LEFT * params.frame_rate
    returns = []
    for walker in walkers:
        if len(returns) == params.returning_people:
            break
        gap = round(rng.uniform(*RETURN_GAP_SECONDS_RANGE) * params.frame_rate)
        left_at = int(walker.frames[-1])
        if left_at >= params.num_frames or left_at + gap > latest:
            continue  # still in view at the end, or no time to come back
        direction = -1 if walker.facing is Facing.RIGHT else 1
        returns.append(_simulate(params, walker.identity, walker.appearance, direction,
                                 rng.uniform(*FOOT_ROW_RANGE) * params.height,
                                 rng.uniform(*SLOPE_RANGE), rng.uniform(*SPEED_FACTOR_RANGE),
                                 None, 0, left_at + gap, rng.uniform(0, 2 * math.pi)))
    return [w for w in returns if len(w.frames)]


def _simulate(params: SyntheticMotParams, identity: int, appearance: PersonAppearance,
              direction: int, foot_y0: float, slope: float, speed_factor: float,
              pause_at: float | None, pause_frames: int, start: int, phase: float
              ) -> Trajectory:
    width, height = params.width, params.height
    h = float(person_height(foot_y0, height))
    x = -h * NOMINAL_BOX_ASPECT if direction > 0 else width + h * NOMINAL_BOX_ASPECT
    x_start, paused_left, paused_done = x, 0, pause_at is None
    rows = []
    frame = start
    while frame <= params.num_frames:
        foot_y = min(max(foot_y0 + slope * (x - x_start), HORIZON * height + 10), height * 1.05)
        h = float(person_height(foot_y, height))
        half_w = h * NOMINAL_BOX_ASPECT / 2
        if frame >= 1:
            rows.append((frame, x, foot_y, h, phase))
        if (direction > 0 and x - half_w > width) or (direction < 0 and x + half_w < 0):
            break  # left the frame
        if not paused_done and (x / width if direction > 0 else 1 - x / width) >= pause_at:
            paused_left, paused_done = pause_frames, True
        if paused_left > 0:
            paused_left -= 1
        else:
            step = WALKING_SPEED_HEIGHTS_PER_S * h * speed_factor / params.frame_rate
            x += direction * step
            phase += 2 * math.pi * step / (STRIDE_HEIGHTS * h)
        frame += 1
    table = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return Trajectory(identity, appearance, table[:, 0].astype(np.int64), table[:, 1],
                      table[:, 2], table[:, 3], table[:, 4],
                      Facing.RIGHT if direction > 0 else Facing.LEFT)


def plan_pillars(params: SyntheticMotParams) -> np.ndarray:
    """``(P, 2)`` left and right x of the foreground pillars, spread over the frame."""
    rng = np.random.default_rng([WALKER_STREAM, params.seed, 1])
    pillars = []
    for k in range(params.num_pillars):
        centre = (k + rng.uniform(0.3, 0.7)) / params.num_pillars * params.width
        half = rng.uniform(*PILLAR_WIDTH_RANGE) * params.width / 2
        pillars.append((centre - half, centre + half))
    return np.array(pillars, dtype=np.float64).reshape(-1, 2)


def _visibility(boxes: np.ndarray, pillars: np.ndarray, width: int, height: int) -> np.ndarray:
    """Visible share of each box, boxes given far-to-near (later boxes cover earlier ones)."""
    step = VISIBILITY_RASTER_STEP
    grid_h, grid_w = -(-height // step), -(-width // step)
    owner = np.full((grid_h, grid_w), -1, dtype=np.int64)
    cells = np.round(boxes / step).astype(np.int64)
    for k, (x1, y1, x2, y2) in enumerate(cells):
        owner[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = k
    for left, right in np.round(pillars / step).astype(np.int64):
        owner[:, max(left, 0):max(right, 0)] = -2
    visible = np.bincount(owner[owner >= 0].ravel(), minlength=len(boxes))[:len(boxes)]
    areas = np.maximum((cells[:, 2] - cells[:, 0]) * (cells[:, 3] - cells[:, 1]), 1)
    return np.clip(visible / areas, 0.0, 1.0)


def _clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.array([np.clip(box[0], 0, width), np.clip(box[1], 0, height),
                     np.clip(box[2], 0, width), np.clip(box[3], 0, height)])


def _detections(params: SyntheticMotParams, frame: int, gt: list[tuple[np.ndarray, float]],
                rng: np.random.Generator) -> list[tuple]:
    """Noisy detections of one frame: misses, jitter, false positives (tlwh rows + score)."""
    width, height = params.width, params.height
    low, high = DETECTION_VISIBILITY_RANGE
    rows = []
    for box, visibility in gt:
        p_detect = params.recall * float(np.clip((visibility - low) / (high - low), 0.0, 1.0))
        if rng.random() >= p_detect:
            continue
        w, h = box[2] - box[0], box[3] - box[1]
        cx = (box[0] + box[2]) / 2 + rng.normal(0, params.box_jitter) * w
        cy = (box[1] + box[3]) / 2 + rng.normal(0, params.box_jitter / 2) * h
        w *= math.exp(rng.normal(0, params.box_jitter))
        h *= math.exp(rng.normal(0, params.box_jitter))
        clipped = _clip_box(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]),
                            width, height)
        if clipped[2] - clipped[0] < 2 or clipped[3] - clipped[1] < 2:
            continue
        score = float(np.clip(TRUE_SCORE_BASE + TRUE_SCORE_SLOPE * visibility
                              + rng.normal(0, TRUE_SCORE_NOISE), 0.05, 0.99))
        rows.append((frame, *clipped[:2], *(clipped[2:] - clipped[:2]), score))
    for _ in range(rng.poisson(params.false_positives_per_frame)):
        foot = rng.uniform(*FOOT_ROW_RANGE) * height
        h = float(person_height(foot, height)) * rng.uniform(0.8, 1.2)
        w = h * NOMINAL_BOX_ASPECT * rng.uniform(0.8, 1.2)
        x = rng.uniform(0, width - w)
        clipped = _clip_box(np.array([x, foot - h, x + w, foot]), width, height)
        rows.append((frame, *clipped[:2], *(clipped[2:] - clipped[:2]),
                     float(rng.uniform(*FALSE_SCORE_RANGE))))
    return rows


def _camera_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting flicker, slight blur and sensor noise of a real camera."""
    gain = math.exp(rng.normal(0.0, EXPOSURE_JITTER_LOG_STD))
    values = cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA).astype(np.float32) * np.float32(gain)
    values += rng.normal(0.0, NOISE_SIGMA, size=values.shape).astype(np.float32)
    return np.clip(values, 0, 255, out=values).astype(np.uint8)


def render_sequence(params: SyntheticMotParams, root: Path) -> dict[str, Any]:
    """Render the sequence into ``root`` (which must not exist yet); returns counts."""
    params.validate()
    width, height = params.width, params.height
    camera = CameraStyle.sample(params.camera_id, params.seed)
    background = render_background(camera, np.random.default_rng([FRAME_STREAM, params.seed]),
                                   height, width)
    walkers = plan_walkers(params)
    pillars = plan_pillars(params)
    pillar_colours = [camera.clutter_palette[k % len(camera.clutter_palette)]
                      for k in range(len(pillars))]
    by_frame: dict[int, list[tuple[int, int]]] = {}
    for w, walker in enumerate(walkers):
        for row, frame in enumerate(walker.frames.tolist()):
            by_frame.setdefault(frame, []).append((w, row))
    image_dir = root / "img1"
    image_dir.mkdir(parents=True)
    det_rng = np.random.default_rng([DETECTION_STREAM, params.seed])
    gt_lines, det_lines = [], []
    for frame in range(1, params.num_frames + 1):
        present = sorted(by_frame.get(frame, []),
                         key=lambda wr: walkers[wr[0]].foot_y[wr[1]])  # far first
        image = background.copy()
        boxes = np.array([walkers[w].boxes_xyxy()[row] for w, row in present]).reshape(-1, 4)
        for (w, row), box in zip(present, boxes):
            walker = walkers[w]
            draw_person(image, walker.appearance, box, walker.phases[row], walker.facing)
        for (left, right), colour in zip(pillars, pillar_colours):
            cv2.rectangle(image, (int(round(left)), 0), (int(round(right)), height), colour, -1)
        image = _camera_noise(image, np.random.default_rng([FRAME_STREAM, params.seed, frame]))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            raise RuntimeError("OpenCV could not JPEG-encode a synthetic frame")
        (image_dir / f"{frame:06d}.jpg").write_bytes(encoded.tobytes())

        visibility = _visibility(boxes, pillars, width, height)
        annotated = []
        for (w, _), box, vis in zip(present, boxes, visibility):
            clipped = _clip_box(box, width, height)
            area = (box[2] - box[0]) * (box[3] - box[1])
            inside = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) / max(area, 1e-9)
            if inside < MIN_INSIDE_FRACTION:
                continue
            consider = int(vis >= MIN_CONSIDERED_VISIBILITY)
            tlwh = (*clipped[:2], *(clipped[2:] - clipped[:2]))
            gt_lines.append((frame, walkers[w].identity - IDENTITY_BASE + 1, *tlwh, consider,
                             MOT_CLASS_PEDESTRIAN, float(vis)))
            annotated.append((clipped, float(vis)))
        det_lines.extend(_detections(params, frame, annotated, det_rng))

    (root / "gt").mkdir()
    (root / "det").mkdir()
    gt_lines.sort(key=lambda r: (r[0], r[1]))
    (root / "gt" / "gt.txt").write_text("".join(
        f"{f},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{c},{k},{v:.3f}\n"
        for f, i, x, y, w, h, c, k, v in gt_lines))
    (root / "det" / "det.txt").write_text("".join(
        f"{f},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1\n"
        for f, x, y, w, h, s in det_lines))
    (root / "seqinfo.ini").write_text(
        f"[Sequence]\nname={params.name}\nimDir=img1\nframeRate={params.frame_rate:g}\n"
        f"seqLength={params.num_frames}\nimWidth={width}\nimHeight={height}\nimExt=.jpg\n")
    return {"identities": len({r[1] for r in gt_lines}), "gt_boxes": len(gt_lines),
            "detections": len(det_lines)}


def read_meta(root: str | os.PathLike) -> dict[str, Any] | None:
    try:
        meta = json.loads((Path(root) / META_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def ensure_synthetic_mot(data_dir: str | os.PathLike, **kwargs: Any) -> Path:
    """The sequence folder for these parameters under ``data_dir/synthetic_mot/``, rendered on
    first use and reused afterwards (keyed by a hash of the parameters and generator version)."""
    unknown = set(kwargs) - {f.name for f in fields(SyntheticMotParams)}
    if unknown:
        raise ValueError(f"unknown synthetic MOT parameters: {sorted(unknown)}")
    params = SyntheticMotParams(**kwargs)
    params.validate()
    target = Path(data_dir) / "synthetic_mot" / f"{params.name}-{params.key()}"
    meta = read_meta(target)
    if (meta is not None and meta.get("generator") == GENERATOR_NAME
            and meta.get("version") == GENERATOR_VERSION
            and meta.get("params") == params.as_dict()):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.rmtree(staging)
        counts = render_sequence(params, staging)
        meta = {"generator": GENERATOR_NAME, "version": GENERATOR_VERSION,
                "params": params.as_dict(), "counts": counts}
        atomic_write_text(staging / META_FILENAME, json.dumps(meta, indent=2, sort_keys=True))
        if target.exists():  # an older or broken render of the same key
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
