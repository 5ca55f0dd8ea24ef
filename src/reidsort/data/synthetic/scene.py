"""Synthetic cameras: background, lighting and image degradations, and the Re-ID crop renderer.

Each camera has its own look (:class:`CameraStyle`): white balance, brightness, background
palette, blur, noise, resolution, how people usually face it. The same person therefore has a
different colour histogram in every camera while the shape and layout of their clothes stay,
which is exactly the cross-camera problem Re-ID models are trained to solve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

from reidsort.data.synthetic.person import (
    BGR,
    GARMENT_PALETTE_BGR,
    NOMINAL_BOX_ASPECT,
    Facing,
    PersonAppearance,
    draw_person,
)

CAMERA_STREAM = 0x5EED_0002
#: Identities of passers-by drawn as occluders live far above any real dataset's ids, so an
#: occluder never looks exactly like a dataset identity.
PASSER_BY_IDENTITY_BASE = 1_000_000
PASSER_BY_IDENTITY_RANGE = 1_000_000

#: Background and clutter colours: muted urban tones plus the garment palette, so that clutter
#: can share colours with clothes (as bicycles, signs and cars do in Market-1501).
SCENERY_PALETTE_BGR: tuple[BGR, ...] = (
    (110, 115, 120),
    (140, 150, 150),
    (95, 100, 90),
    (170, 175, 180),
    (70, 90, 80),
    (120, 140, 160),
    (80, 110, 140),
    (60, 60, 65),
    (150, 130, 110),
    (90, 120, 100),
    (200, 205, 205),
    (60, 100, 70),
)

#: Spread of the per-camera white balance (log gain per channel).
COLOUR_CAST_LOG_STD = 0.08
#: Exposure and contrast differences between cameras.
BRIGHTNESS_RANGE = (0.8, 1.2)
CONTRAST_RANGE = (0.8, 1.1)
#: Frame-to-frame lighting changes within one camera (log gains).
EXPOSURE_JITTER_LOG_STD = 0.05
WHITE_BALANCE_JITTER_LOG_STD = 0.015
#: Wall/floor colours a camera draws its scenes from; each crop picks its own from these, so the
#: background varies between crops instead of being a fixed camera signature.
SCENERY_COLOURS_PER_CAMERA = 5
CLUTTER_COUNT_RANGE = (2, 6)
FLOOR_LINE_RANGE = (0.5, 0.8)  # fraction of the crop height
#: Image degradations per camera: blur (pixels at the reference height), sensor noise (grey
#: levels), JPEG quality, and the resolution at which the camera really sees the person.
BLUR_SIGMA_RANGE = (0.2, 0.8)
NOISE_SIGMA_RANGE = (2.0, 6.0)
JPEG_QUALITY_RANGE = (55, 92)
RESOLUTION_FACTOR_RANGE = (0.65, 1.0)
OCCLUSION_RATE_RANGE = (0.05, 0.2)
PERSON_SCALE_RANGE = (0.86, 0.95)
#: Width of the person's box as a fraction of the crop width.
CROP_BOX_WIDTH_RANGE = (0.86, 1.0)
#: ... but never wider than this times the person's natural width (square crops, say).
MAX_CROP_STRETCH = 1.5

#: Background texture: coarse patches of a second material, shading blotches and a fine
#: colour grain (cell sizes in pixels at the reference crop height; strengths are full ranges).
BACKGROUND_PATCH_CELL_PX = 40.0
BACKGROUND_BLOTCH_CELL_PX = 16.0
BACKGROUND_BLOTCH_STRENGTH = 0.35
BACKGROUND_GRAIN_CELL_PX = 3.0
BACKGROUND_TINT_STRENGTH = 0.2
#: Height of the raster on which the smooth background surfaces are computed.
BACKGROUND_RASTER_HEIGHT = 64

#: The geometry of a crop is defined for this reference height; blur and noise scale with it.
REFERENCE_CROP_HEIGHT = 128
#: Relative jitter of the person's height inside a crop (detector boxes are not tight).
SCALE_JITTER = 0.06
#: Standard deviation of the person's centre offset, as a fraction of the crop size.
TRANSLATION_JITTER = 0.035


class Occluder(Enum):
    """What may cover part of the person in a crop."""

    NONE = "none"
    BLOCK = "block"  # a sign, a bin, a parked bicycle: a box from the bottom or a side
    POLE = "pole"  # a vertical post in front of the person
    PASSER_BY = "passer_by"  # another pedestrian partly in front


@dataclass(frozen=True)
class CameraStyle:
    """How one camera sees the world. :meth:`sample` is deterministic in ``(camera_id, seed)``."""

    camera_id: int
    channel_gains_bgr: tuple[float, float, float]  # white balance
    brightness: float  # overall gain
    contrast: float  # around mid-grey
    scenery_palette: tuple[BGR, ...]  # walls and floors of this camera's scenes
    floor_line: float  # where the floor starts, fraction of the crop height
    clutter_palette: tuple[BGR, ...]
    clutter_count: int  # clutter patches per 128-pixel-high crop
    blur_sigma: float  # pixels at the reference crop height
    noise_sigma: float  # grey levels
    jpeg_quality: int
    resolution_factor: float  # <1: the camera sees people at low resolution (upsampled crops)
    person_scale: float  # typical person height / crop height
    facing_weights: tuple[float, float, float, float]  # probabilities of Facing 0..3
    occlusion_rate: float

    @classmethod
    def sample(cls, camera_id: int, seed: int = 0) -> CameraStyle:
        """The style of camera ``camera_id``; the same ``(camera_id, seed)`` gives the same one."""
        if camera_id < 0 or seed < 0:
            raise ValueError(f"camera_id and seed must be >= 0, got {camera_id}, {seed}")
        rng = np.random.default_rng([CAMERA_STREAM, seed, camera_id])
        # Log-normal white balance: a strong, consistent colour cast per camera.
        gains = np.exp(rng.normal(0.0, COLOUR_CAST_LOG_STD, 3))
        gains /= np.exp(np.log(gains).mean())  # cast changes hue, brightness handles level
        scenery_ids = rng.choice(
            len(SCENERY_PALETTE_BGR), SCENERY_COLOURS_PER_CAMERA, replace=False
        )
        scenery = tuple(_jitter_colour(rng, SCENERY_PALETTE_BGR[i], 15) for i in scenery_ids)
        clutter_sources = SCENERY_PALETTE_BGR + GARMENT_PALETTE_BGR
        clutter = tuple(
            _jitter_colour(rng, clutter_sources[i], 10)
            for i in rng.choice(len(clutter_sources), 5, replace=False)
        )
        # People walk along a path: a camera mostly sees them from the front and back, or from
        # the sides, depending on where it points.
        along_path = rng.random() < 0.5
        weights = np.array([3.0, 3.0, 1.0, 1.0]) if along_path else np.array([1.0, 1.0, 3.0, 3.0])
        weights = weights * rng.uniform(0.6, 1.4, 4)
        return cls(
            camera_id=camera_id,
            channel_gains_bgr=tuple(float(g) for g in gains),
            brightness=float(rng.uniform(*BRIGHTNESS_RANGE)),
            contrast=float(rng.uniform(*CONTRAST_RANGE)),
            scenery_palette=scenery,
            floor_line=float(rng.uniform(*FLOOR_LINE_RANGE)),
            clutter_palette=clutter,
            clutter_count=int(rng.integers(*CLUTTER_COUNT_RANGE)),
            blur_sigma=float(rng.uniform(*BLUR_SIGMA_RANGE)),
            noise_sigma=float(rng.uniform(*NOISE_SIGMA_RANGE)),
            jpeg_quality=int(rng.integers(*JPEG_QUALITY_RANGE)),
            resolution_factor=float(rng.uniform(*RESOLUTION_FACTOR_RANGE)),
            person_scale=float(rng.uniform(*PERSON_SCALE_RANGE)),
            facing_weights=tuple(float(w) for w in weights / weights.sum()),
            occlusion_rate=float(rng.uniform(*OCCLUSION_RATE_RANGE)),
        )

    def sample_facing(self, rng: np.random.Generator) -> Facing:
        return Facing(int(rng.choice(4, p=np.asarray(self.facing_weights))))


def _jitter_colour(rng: np.random.Generator, colour, spread: float) -> BGR:
    jittered = np.clip(np.asarray(colour, np.float64) + rng.uniform(-spread, spread, 3), 0, 255)
    return tuple(int(c) for c in np.round(jittered))  # type: ignore[return-value]


def render_background(
    camera: CameraStyle, rng: np.random.Generator, height: int, width: int
) -> np.ndarray:
    """A textured background (HxWx3 uint8, BGR) in the camera's palette.

    A vertical wall gradient, a floor below a floor line, and clutter patches (posts, boxes,
    blobs) placed at random, so that no two crops share exactly the same background.
    """
    if height < 1 or width < 1:
        raise ValueError(f"background size must be positive, got {height}x{width}")
    floor_fraction = float(np.clip(camera.floor_line + rng.normal(0.0, 0.04), 0.3, 0.95))
    # The smooth surfaces are computed on a coarse raster and upsampled: several times faster
    # for large crops and frames, and invisible after the camera's blur.
    raster_h = min(height, BACKGROUND_RASTER_HEIGHT)
    raster_w = max(1, int(round(width * raster_h / height)))
    surface = _textured_surface(camera.scenery_palette, rng, raster_h, raster_w, floor_fraction)
    if (raster_h, raster_w) != (height, width):
        surface = cv2.resize(surface, (width, height), interpolation=cv2.INTER_LINEAR)
    image = np.clip(surface, 0, 255, out=surface).astype(np.uint8)
    floor_y = int(round(height * floor_fraction))
    floor_colour = image[min(floor_y + 1, height - 1), 0]
    scale = height / REFERENCE_CROP_HEIGHT
    count = rng.poisson(camera.clutter_count * max(1.0, width / (height * NOMINAL_BOX_ASPECT)))
    palette = camera.clutter_palette
    for _ in range(count):
        colour = palette[rng.integers(len(palette))]
        kind = rng.integers(3)
        cx, cy = rng.uniform(0, width), rng.uniform(0.15 * height, height)
        if kind == 0:  # post or tree trunk
            half = rng.uniform(1.0, 4.0) * scale
            top = rng.uniform(0, floor_y)
            cv2.rectangle(image, (int(cx - half), int(top)), (int(cx + half), height), colour, -1)
        elif kind == 1:  # box-like object (sign, bin, car panel)
            w, h = rng.uniform(6, 30) * scale, rng.uniform(5, 25) * scale
            cv2.rectangle(
                image, (int(cx - w / 2), int(cy - h / 2)), (int(cx + w / 2), int(cy + h / 2)),
                colour, -1,
            )
        else:  # bush, wheel, blob
            axes = (int(rng.uniform(3, 14) * scale), int(rng.uniform(3, 10) * scale))
            cv2.ellipse(image, (int(cx), int(cy)), axes, 0, 0, 360, colour, -1, cv2.LINE_AA)
    cv2.line(image, (0, floor_y), (width, floor_y), _darker(floor_colour), max(1, int(scale)))
    return image


def _textured_surface(
    scenery: tuple[BGR, ...], rng: np.random.Generator, height: int, width: int,
    floor_fraction: float,
) -> np.ndarray:
    """Wall and floor (HxWx3 float32): a wall gradient, a floor below ``floor_fraction`` of the
    height, patches of a second material and texture, all in the scenery colours."""
    wall_top, wall_bottom, floor_colour, second = (
        np.array(scenery[i], np.float32) for i in rng.integers(len(scenery), size=4)
    )
    floor_y = height * floor_fraction
    rows = np.arange(height, dtype=np.float32)[:, None]
    t_wall = np.clip(rows / max(floor_y, 1.0), 0.0, 1.0)
    wall = (1 - t_wall) * wall_top + t_wall * wall_bottom
    # the floor darkens away from the camera (towards the floor line)
    t_floor = np.clip((rows - floor_y) / max(height - floor_y, 1.0), 0.0, 1.0)
    floor = floor_colour * (0.85 + 0.2 * t_floor)
    column = np.where(rows < floor_y, wall, floor)  # H x 3
    image = np.repeat(column[:, None, :], width, axis=1)
    # patches of a second material (grass, paving, a shop front) blended in smoothly
    patches = _smooth_field(rng, height, width, BACKGROUND_PATCH_CELL_PX, 1)
    patches = np.clip((patches - 0.5) * 3.0 + 0.5, 0.0, 1.0)
    image += (second - image) * patches * np.float32(rng.uniform(0.3, 1.0))
    # Real surfaces are textured: shading blotches and colour variation spread a background's
    # colours over many histogram bins instead of one flat colour.
    blotches = _smooth_field(rng, height, width, BACKGROUND_BLOTCH_CELL_PX, 1)
    tint = _smooth_field(rng, height, width, BACKGROUND_GRAIN_CELL_PX, 3)
    image *= (1.0 + BACKGROUND_BLOTCH_STRENGTH * (blotches - 0.5)) * (
        1.0 + BACKGROUND_TINT_STRENGTH * (tint - 0.5)
    )
    return image


def _smooth_field(
    rng: np.random.Generator, height: int, width: int, cell_px: float, channels: int
) -> np.ndarray:
    """Uniform random values on a coarse grid (one per ``cell_px`` pixels at the reference
    height, scaled to ``height``), bilinearly upsampled to HxWxC float32 in [0, 1]."""
    cell = cell_px * height / REFERENCE_CROP_HEIGHT
    grid_h = max(2, int(math.ceil(height / cell)) + 1)
    grid_w = max(2, int(math.ceil(width / cell)) + 1)
    grid = rng.random((grid_h, grid_w, channels), dtype=np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)
    return field.reshape(height, width, channels)


def _darker(colour: np.ndarray, factor: float = 0.6) -> BGR:
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


#: Standard deviation of the difference of two independent uniform bytes:
#: sqrt(2 * (256**2 - 1) / 12).
_BYTE_DIFFERENCE_STD = float(np.sqrt(2 * (256**2 - 1) / 12))


def _sensor_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean noise with standard deviation ``sigma`` (float32).

    The difference of two uniform random bytes (a triangular distribution) looks like Gaussian
    sensor noise at a fraction of the cost of drawing normal variates, which dominated the
    renderer's run time.
    """
    size = int(np.prod(shape))
    raw = np.frombuffer(rng.bytes(2 * size), dtype=np.uint8).reshape(2, *shape)
    noise = raw[0].astype(np.float32)
    noise -= raw[1]
    noise *= np.float32(sigma / _BYTE_DIFFERENCE_STD)
    return noise


def apply_camera_effects(
    image: np.ndarray, camera: CameraStyle, rng: np.random.Generator
) -> np.ndarray:
    """The camera's colour cast, exposure, low resolution, blur, sensor noise and JPEG artefacts.

    Returns a new HxWx3 uint8 image. Per-image jitter (lighting changes a little from frame to
    frame) comes from ``rng``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    scale = height / REFERENCE_CROP_HEIGHT
    out = image
    resolution = camera.resolution_factor * rng.uniform(0.85, 1.15)
    if resolution < 0.95:
        small = (max(1, int(width * resolution)), max(1, int(height * resolution)))
        out = cv2.resize(cv2.resize(out, small, interpolation=cv2.INTER_AREA), (width, height),
                         interpolation=cv2.INTER_LINEAR)
    sigma = camera.blur_sigma * scale * rng.uniform(0.6, 1.4)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    gains = np.asarray(camera.channel_gains_bgr, np.float32) * np.exp(
        rng.normal(0.0, WHITE_BALANCE_JITTER_LOG_STD, 3)
    ).astype(np.float32)
    exposure = camera.brightness * float(np.exp(rng.normal(0.0, EXPOSURE_JITTER_LOG_STD)))
    # (x * gain - 128) * contrast + 128, with exposure folded into the gain, as one 3x4 matrix
    channel_scale = gains * exposure * camera.contrast
    channel_offset = 128.0 * (1.0 - camera.contrast) + 0.5
    colour_matrix = np.concatenate(
        [np.diag(channel_scale), np.full((3, 1), channel_offset, np.float32)], axis=1
    )
    values = cv2.transform(out.astype(np.float32), colour_matrix)
    values += _sensor_noise(rng, values.shape, camera.noise_sigma)
    out = np.clip(values, 0, 255, out=values).astype(np.uint8)
    quality = int(np.clip(camera.jpeg_quality + rng.integers(-8, 9), 30, 100))
    ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("OpenCV could not JPEG-encode a synthetic crop")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def _random_passer_by(rng: np.random.Generator) -> PersonAppearance:
    identity = PASSER_BY_IDENTITY_BASE + int(rng.integers(PASSER_BY_IDENTITY_RANGE))
    return PersonAppearance.sample(identity)


def _draw_occluder(
    canvas: np.ndarray,
    kind: Occluder,
    camera: CameraStyle,
    rng: np.random.Generator,
    person_box_xyxy: tuple[float, float, float, float],
) -> None:
    height, width = canvas.shape[:2]
    x1, y1, x2, y2 = person_box_xyxy
    box_w, box_h = x2 - x1, y2 - y1
    colour = camera.clutter_palette[rng.integers(len(camera.clutter_palette))]
    if kind == Occluder.POLE:
        cx = rng.uniform(x1 + 0.1 * box_w, x2 - 0.1 * box_w)
        half = rng.uniform(0.04, 0.09) * box_w
        cv2.rectangle(canvas, (int(cx - half), 0), (int(cx + half), height), colour, -1)
    elif kind == Occluder.BLOCK:
        # covers the lower body from below, or one side of the body
        if rng.random() < 0.6:
            top = y1 + rng.uniform(0.55, 0.8) * box_h
            left = rng.uniform(-0.3, 0.3) * width
            right = left + rng.uniform(0.5, 1.2) * width
            cv2.rectangle(canvas, (int(left), int(top)), (int(right), height), colour, -1)
        else:
            from_left = rng.random() < 0.5
            reach = rng.uniform(0.2, 0.4) * box_w
            edge = x1 + reach if from_left else x2 - reach
            top = rng.uniform(0.2, 0.5) * box_h + y1
            x_a, x_b = (0, edge) if from_left else (edge, width)
            cv2.rectangle(canvas, (int(x_a), int(top)), (int(x_b), height), colour, -1)
    elif kind == Occluder.PASSER_BY:
        passer = _random_passer_by(rng)
        scale = rng.uniform(0.9, 1.15)
        w, h = box_w * scale, box_h * scale
        shift = rng.choice([-1, 1]) * rng.uniform(0.45, 0.75) * box_w
        cx = 0.5 * (x1 + x2) + shift
        bottom = y2 + rng.uniform(0.0, 0.12) * box_h
        draw_person(
            canvas, passer, (cx - w / 2, bottom - h, cx + w / 2, bottom),
            rng.uniform(0, 2 * math.pi), Facing(int(rng.integers(4))), rng,
        )


def render_person_crop(
    appearance: PersonAppearance,
    camera: CameraStyle,
    rng: np.random.Generator,
    height: int = 256,
    width: int = 128,
    *,
    facing: Facing | None = None,
    phase: float | None = None,
    occluder: Occluder | None = None,
) -> np.ndarray:
    """One Re-ID crop (HxWx3 uint8 BGR) of ``appearance`` as seen by ``camera``.

    The person roughly fills the crop like a detector box, with scale and position jitter.
    ``facing`` (default: drawn from the camera's usual facings), the gait ``phase`` (default:
    random) and the ``occluder`` (default: drawn with the camera's occlusion rate) can be fixed
    by the caller, e.g. to keep a walking direction over a tracklet.
    """
    if height < 16 or width < 8:
        raise ValueError(f"crop size must be at least 16x8, got {height}x{width}")
    canvas = render_background(camera, rng, height, width)
    if facing is None:
        facing = camera.sample_facing(rng)
    if phase is None:
        phase = float(rng.uniform(0.0, 2.0 * math.pi))
    if occluder is None:
        occluder = Occluder.NONE
        if rng.random() < camera.occlusion_rate:
            occluder = (Occluder.BLOCK, Occluder.POLE, Occluder.PASSER_BY)[rng.integers(3)]
    person_h = height * camera.person_scale * float(np.exp(rng.normal(0.0, SCALE_JITTER)))
    # Market-1501 resizes every detector box to one fixed size, which widens most people: the
    # box fills the crop's width whatever the person's own aspect ratio.
    person_w = min(
        width * rng.uniform(*CROP_BOX_WIDTH_RANGE), person_h * NOMINAL_BOX_ASPECT * MAX_CROP_STRETCH
    )
    cx = width / 2 + rng.normal(0.0, TRANSLATION_JITTER) * width
    cy = height / 2 + rng.normal(0.0, TRANSLATION_JITTER) * height
    box = (cx - person_w / 2, cy - person_h / 2, cx + person_w / 2, cy + person_h / 2)
    passer_behind = occluder == Occluder.PASSER_BY and rng.random() < 0.4
    if passer_behind:  # a pedestrian further away, partly hidden by the person
        _draw_occluder(canvas, occluder, camera, rng, box)
    draw_person(canvas, appearance, box, phase, facing, rng)
    if occluder != Occluder.NONE and not passer_behind:
        _draw_occluder(canvas, occluder, camera, rng, box)
    return apply_camera_effects(canvas, camera, rng)
