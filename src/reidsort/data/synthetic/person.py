"""Synthetic pedestrians: what a person looks like (:class:`PersonAppearance`) and how to draw one.

Colours come from small, shared palettes on purpose: many identities wear the same colours, so a
colour histogram alone cannot tell them apart. What separates identities is the spatial layout a
Re-ID model has to learn: which colour is where, garment patterns, sleeve and trouser length,
accessories (a backpack seen from behind, a logo seen from the front) and body proportions.

Bodies are described in *body units*: ``v`` runs from the top of the head (0) to the soles (1),
``u`` is horizontal in the same units, 0 at the body's centre line. :func:`draw_person` maps body
units onto any pixel box, so the same code draws a 64-pixel Re-ID crop and a pedestrian in a
synthetic tracking video.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum

import cv2
import numpy as np

BGR = tuple[int, int, int]

#: Width / height of the box a person is designed for: about the mean aspect ratio of pedestrian
#: boxes in MOTChallenge ground truth (~0.41). A box with another aspect ratio stretches the
#: drawing, as Market-1501's fixed 128x64 crops stretch the detector boxes they were cut from.
NOMINAL_BOX_ASPECT = 0.42
#: Sub-pixel precision of OpenCV drawing calls (coordinates are multiplied by 2**DRAW_SHIFT).
DRAW_SHIFT = 4
_FIXED_POINT = 1 << DRAW_SHIFT
#: Boxes smaller than this (pixels) are not drawn: nothing recognisable fits.
MIN_DRAWABLE_BOX_PX = 3

# Seed-stream tags keep the random streams of appearances, cameras and images independent even
# when they share the user's seed and a numeric id.
APPEARANCE_STREAM = 0x5EED_0001


class Facing(IntEnum):
    """Which way the person faces, as seen by the camera."""

    FRONT = 0
    BACK = 1
    LEFT = 2  # walking towards the image's left edge
    RIGHT = 3  # walking towards the image's right edge


class UpperPattern(Enum):
    PLAIN = "plain"
    HORIZONTAL_STRIPES = "horizontal_stripes"
    VERTICAL_STRIPES = "vertical_stripes"
    CHECKS = "checks"
    TWO_TONE = "two_tone"  # a shoulder yoke in a second colour
    LOGO_BLOCK = "logo_block"  # a print on the chest: visible from the front only


class SleeveLength(Enum):
    SHORT = "short"
    LONG = "long"


class LowerKind(Enum):
    TROUSERS = "trousers"
    SHORTS = "shorts"
    SKIRT = "skirt"


class HairStyle(Enum):
    SHAVED = "shaved"
    SHORT = "short"
    LONG = "long"  # falls over the shoulders: covers the upper back when seen from behind
    PONYTAIL = "ponytail"


class BodySide(Enum):
    """A side of the person's own body (their left is the viewer's right when facing the camera)."""

    LEFT = "left"
    RIGHT = "right"


# --- palettes (BGR) -------------------------------------------------------------------------------
# Garment colours weighted toward the dark and neutral colours of real street clothing.
GARMENT_PALETTE_BGR: tuple[BGR, ...] = (
    (30, 30, 32),  # black
    (78, 76, 74),  # charcoal
    (150, 150, 148),  # grey
    (228, 230, 232),  # white
    (95, 50, 28),  # navy
    (175, 110, 50),  # mid blue
    (45, 45, 190),  # red
    (50, 35, 115),  # maroon
    (60, 125, 55),  # green
    (55, 170, 215),  # mustard
    (125, 55, 120),  # purple
    (150, 185, 205),  # beige
    (40, 65, 105),  # brown
    (180, 150, 235),  # pink
)
GARMENT_WEIGHTS = (
    0.12, 0.08, 0.08, 0.11, 0.08, 0.07, 0.07, 0.05, 0.06, 0.05, 0.05, 0.07, 0.05, 0.06
)
LOWER_PALETTE_BGR: tuple[BGR, ...] = (
    (140, 100, 62),  # light denim
    (100, 62, 36),  # dark denim
    (30, 30, 32),  # black
    (78, 76, 74),  # charcoal
    (150, 150, 148),  # grey
    (135, 170, 190),  # khaki
    (95, 50, 28),  # navy
    (225, 226, 228),  # white
    (40, 65, 105),  # brown
    (55, 95, 85),  # olive
)
LOWER_WEIGHTS = (0.14, 0.14, 0.18, 0.09, 0.09, 0.1, 0.08, 0.06, 0.06, 0.06)
SKIN_TONES_BGR: tuple[BGR, ...] = (
    (178, 200, 236),
    (145, 172, 218),
    (112, 145, 192),
    (82, 108, 152),
    (55, 76, 110),
)
HAIR_COLOURS_BGR: tuple[BGR, ...] = (
    (22, 22, 24),  # black
    (30, 42, 62),  # dark brown
    (45, 80, 125),  # brown
    (95, 150, 200),  # blond
    (170, 170, 172),  # grey
)
HAIR_WEIGHTS = (0.45, 0.25, 0.15, 0.1, 0.05)
SHOE_COLOURS_BGR: tuple[BGR, ...] = (
    (25, 25, 25),
    (235, 235, 235),
    (120, 120, 120),
    (40, 60, 95),
    (40, 40, 170),
)
SHOE_WEIGHTS = (0.45, 0.3, 0.1, 0.1, 0.05)

# --- sampling probabilities -----------------------------------------------------------------------
UPPER_PATTERN_WEIGHTS: dict[UpperPattern, float] = {
    UpperPattern.PLAIN: 0.28,
    UpperPattern.HORIZONTAL_STRIPES: 0.16,
    UpperPattern.VERTICAL_STRIPES: 0.12,
    UpperPattern.CHECKS: 0.12,
    UpperPattern.TWO_TONE: 0.18,
    UpperPattern.LOGO_BLOCK: 0.14,
}
LOWER_KIND_WEIGHTS: dict[LowerKind, float] = {
    LowerKind.TROUSERS: 0.65,
    LowerKind.SHORTS: 0.2,
    LowerKind.SKIRT: 0.15,
}
HAIR_STYLE_WEIGHTS: dict[HairStyle, float] = {
    HairStyle.SHAVED: 0.12,
    HairStyle.SHORT: 0.48,
    HairStyle.LONG: 0.25,
    HairStyle.PONYTAIL: 0.15,
}
P_LONG_SLEEVES = 0.5
P_BACKPACK = 0.35
P_SHOULDER_BAG = 0.25
P_HAT = 0.15
P_SCARF = 0.1


# --- appearance -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BodyShape:
    """Proportions in body units (fractions of the person's height)."""

    head_height: float
    shoulder_half_width: float
    hip_half_width: float
    leg_length: float  # hip joint to sole
    arm_length: float  # shoulder to wrist
    limb_width: float  # thickness of a thigh; arms are thinner

    @property
    def shoulder_v(self) -> float:
        return self.head_height * 1.22

    @property
    def hip_v(self) -> float:
        return 1.0 - self.leg_length


@dataclass(frozen=True)
class UpperGarment:
    colour_bgr: BGR
    pattern: UpperPattern
    pattern_colour_bgr: BGR  # stripes/checks/yoke/logo colour; unused for PLAIN
    pattern_period: float  # stripe width in body units
    sleeves: SleeveLength


@dataclass(frozen=True)
class LowerGarment:
    colour_bgr: BGR
    kind: LowerKind


@dataclass(frozen=True)
class PersonAppearance:
    """Everything that stays the same about one identity, in every camera and every frame."""

    identity: int
    body: BodyShape
    skin_bgr: BGR
    hair_bgr: BGR
    hair_style: HairStyle
    upper: UpperGarment
    lower: LowerGarment
    shoes_bgr: BGR
    backpack_bgr: BGR | None = None
    bag_bgr: BGR | None = None
    bag_side: BodySide = BodySide.RIGHT
    hat_bgr: BGR | None = None
    scarf_bgr: BGR | None = None

    @classmethod
    def sample(cls, identity: int, seed: int = 0) -> PersonAppearance:
        """The appearance of ``identity``; the same ``(identity, seed)`` gives the same person."""
        if identity < 0 or seed < 0:
            raise ValueError(
                f"identity and seed must be >= 0, got identity={identity}, seed={seed}"
            )
        rng = np.random.default_rng([APPEARANCE_STREAM, seed, identity])
        build = rng.uniform(0.88, 1.15)  # slim ... heavy: scales widths together
        shoulder = rng.uniform(0.105, 0.135) * build
        body = BodyShape(
            head_height=rng.uniform(0.118, 0.145),
            shoulder_half_width=shoulder,
            hip_half_width=shoulder * rng.uniform(0.7, 0.88),
            leg_length=rng.uniform(0.45, 0.52),
            arm_length=rng.uniform(0.36, 0.41),
            limb_width=rng.uniform(0.056, 0.07) * build,
        )
        upper_colour = _pick_colour(rng, GARMENT_PALETTE_BGR, GARMENT_WEIGHTS)
        upper = UpperGarment(
            colour_bgr=upper_colour,
            pattern=_pick_enum(rng, UPPER_PATTERN_WEIGHTS),
            pattern_colour_bgr=_pick_colour(
                rng, GARMENT_PALETTE_BGR, GARMENT_WEIGHTS, exclude=upper_colour
            ),
            pattern_period=rng.uniform(0.022, 0.04),
            sleeves=SleeveLength.LONG if rng.random() < P_LONG_SLEEVES else SleeveLength.SHORT,
        )
        lower = LowerGarment(
            colour_bgr=_pick_colour(rng, LOWER_PALETTE_BGR, LOWER_WEIGHTS),
            kind=_pick_enum(rng, LOWER_KIND_WEIGHTS),
        )
        # Accessories are always drawn from the stream (even when absent) so that adding one
        # never reshuffles the rest of the appearance.
        accessory_colours = [
            _pick_colour(rng, GARMENT_PALETTE_BGR, GARMENT_WEIGHTS) for _ in range(4)
        ]
        has_accessory = rng.random(4) < (P_BACKPACK, P_SHOULDER_BAG, P_HAT, P_SCARF)
        return cls(
            identity=identity,
            body=body,
            skin_bgr=SKIN_TONES_BGR[rng.integers(len(SKIN_TONES_BGR))],
            hair_bgr=_pick_colour(rng, HAIR_COLOURS_BGR, HAIR_WEIGHTS),
            hair_style=_pick_enum(rng, HAIR_STYLE_WEIGHTS),
            upper=upper,
            lower=lower,
            shoes_bgr=_pick_colour(rng, SHOE_COLOURS_BGR, SHOE_WEIGHTS),
            backpack_bgr=accessory_colours[0] if has_accessory[0] else None,
            bag_bgr=accessory_colours[1] if has_accessory[1] else None,
            bag_side=BodySide.LEFT if rng.random() < 0.5 else BodySide.RIGHT,
            hat_bgr=accessory_colours[2] if has_accessory[2] else None,
            scarf_bgr=accessory_colours[3] if has_accessory[3] else None,
        )


def _pick_colour(
    rng: np.random.Generator,
    palette: Sequence[BGR],
    weights: Sequence[float],
    exclude: BGR | None = None,
) -> BGR:
    p = np.asarray(weights, dtype=np.float64)
    if exclude is not None:
        p = np.where([c == exclude for c in palette], 0.0, p)
    return palette[rng.choice(len(palette), p=p / p.sum())]


def _pick_enum(rng: np.random.Generator, weights: dict) -> Enum:
    options = list(weights)
    p = np.fromiter(weights.values(), dtype=np.float64)
    return options[rng.choice(len(options), p=p / p.sum())]


# --- pose -----------------------------------------------------------------------------------------
#: Walking-cycle amplitudes (radians) for a side view; published gait studies put hip flexion at
#: roughly +-20-25 degrees and peak swing knee flexion near 60 degrees.
LEG_SWING_RAD = math.radians(19)
KNEE_BEND_RAD = math.radians(55)
ARM_SWING_RAD = math.radians(18)
ELBOW_BEND_RAD = math.radians(20)
#: In a front/back view the forward foot is nearer the camera, so it appears a little lower.
FRONT_VIEW_FOOT_DROP = 0.02
FRONT_VIEW_FOOT_LIFT = 0.04  # how far a swinging (bent-knee) foot rises in a front/back view
SOLE_V = 0.985  # soles stop just short of the box bottom so shoes stay inside the box


@dataclass(frozen=True)
class _Limb:
    root: np.ndarray  # shoulder or hip
    mid: np.ndarray  # elbow or knee
    end: np.ndarray  # wrist or ankle
    tip: np.ndarray  # toe (legs) or the hand centre (arms)


@dataclass(frozen=True)
class _Pose:
    """Keypoints in body units. ``a``/``b``: viewer-left/right (front, back) or far/near (side)."""

    head_centre: np.ndarray
    neck_base: np.ndarray
    torso: np.ndarray  # 4 x 2 polygon: shoulder a, shoulder b, hip b, hip a
    arm_a: _Limb
    arm_b: _Limb
    leg_a: _Limb
    leg_b: _Limb
    forward: int  # +1 facing right, -1 facing left, 0 front/back


def _point(u: float, v: float) -> np.ndarray:
    return np.array([u, v], dtype=np.float64)


def _pose(body: BodyShape, phase: float, facing: Facing, lean: float) -> _Pose:
    """Keypoints of a walking person at gait ``phase`` (radians), leaning ``lean`` body units."""
    shoulder_v, hip_v = body.shoulder_v, body.hip_v
    side_view = facing in (Facing.LEFT, Facing.RIGHT)
    forward = (1 if facing == Facing.RIGHT else -1) if side_view else 0
    # Lean shears the upper body: zero at the hips, ``lean`` at the top of the head.
    lean_dir = forward if side_view else 1

    def sheared(u: float, v: float) -> np.ndarray:
        return _point(u + lean * lean_dir * max(0.0, (hip_v - v) / hip_v), v)

    thigh = 0.5 * body.leg_length
    shin = SOLE_V - hip_v - thigh
    upper_arm = 0.48 * body.arm_length
    forearm = body.arm_length - upper_arm
    legs: list[_Limb] = []
    arms: list[_Limb] = []
    for side, leg_phase in ((-1, phase), (1, phase + math.pi)):
        swing = math.sin(leg_phase)
        bend = KNEE_BEND_RAD * max(0.0, math.cos(leg_phase))  # knee bends while swinging forward
        arm_angle = -ARM_SWING_RAD * swing  # arms swing against the leg on the same side
        if side_view:
            hip = _point(0.0, hip_v)
            thigh_angle = LEG_SWING_RAD * swing
            knee = hip + thigh * np.array([forward * math.sin(thigh_angle), math.cos(thigh_angle)])
            shin_angle = thigh_angle - bend
            ankle = knee + shin * np.array([forward * math.sin(shin_angle), math.cos(shin_angle)])
            # keep the sole on the ground line however the knee bends
            ankle[1] = min(ankle[1], SOLE_V)
            toe = ankle + np.array([forward * body.limb_width * 1.2, 0.0])
            shoulder = sheared(0.0, shoulder_v + 0.01)
            elbow = shoulder + upper_arm * np.array(
                [forward * math.sin(arm_angle), math.cos(arm_angle)]
            )
            fore_angle = arm_angle + ELBOW_BEND_RAD
            wrist = elbow + forearm * np.array(
                [forward * math.sin(fore_angle), math.cos(fore_angle)]
            )
        else:
            hip_u = side * body.hip_half_width * 0.55
            hip = _point(hip_u, hip_v)
            drop = FRONT_VIEW_FOOT_DROP * swing * (1 if facing == Facing.FRONT else -1)
            bend_fraction = bend / KNEE_BEND_RAD  # a bent knee lifts the foot and the knee
            ankle = _point(
                hip_u * 1.15,
                SOLE_V - 0.03 - FRONT_VIEW_FOOT_DROP + drop - FRONT_VIEW_FOOT_LIFT * bend_fraction,
            )
            knee = _point(hip_u * 1.05, hip_v + thigh * (1.0 - 0.2 * bend_fraction))
            toe = ankle + np.array([side * body.limb_width * 0.25, 0.02])
            shoulder_u = side * (body.shoulder_half_width - 0.32 * body.limb_width)
            shoulder = sheared(shoulder_u, shoulder_v + 0.012)
            # seen from the front an arm swing mostly shortens the arm
            shortening = 1.0 - 0.12 * abs(math.sin(arm_angle)) / math.sin(ARM_SWING_RAD)
            elbow = shoulder + np.array([side * 0.018, upper_arm * shortening])
            wrist = elbow + np.array([side * 0.012, forearm * shortening])
        hand = wrist + (wrist - elbow) * 0.12
        legs.append(_Limb(hip, knee, ankle, toe))
        arms.append(_Limb(shoulder, elbow, wrist, hand))

    torso_half = body.shoulder_half_width * (0.62 if side_view else 1.0)
    hip_half = body.hip_half_width * (0.8 if side_view else 1.0) + 0.01
    torso = np.stack(
        [
            sheared(-torso_half, shoulder_v),
            sheared(torso_half, shoulder_v),
            _point(hip_half, hip_v + 0.025),
            _point(-hip_half, hip_v + 0.025),
        ]
    )
    head_centre = sheared(0.0, 0.006 + body.head_height * 0.5)
    if side_view:
        head_centre = head_centre + np.array([forward * 0.012, 0.0])
    return _Pose(
        head_centre=head_centre,
        neck_base=sheared(0.0, shoulder_v + 0.01),
        torso=torso,
        arm_a=arms[0],
        arm_b=arms[1],
        leg_a=legs[0],
        leg_b=legs[1],
        forward=forward,
    )


# --- drawing --------------------------------------------------------------------------------------
class _BoxPainter:
    """Draws shapes given in body units onto a canvas the size of the person's box."""

    def __init__(self, canvas: np.ndarray) -> None:
        self.canvas = canvas
        box_h, box_w = canvas.shape[:2]
        self._x_scale = box_w / NOMINAL_BOX_ASPECT  # pixels per body unit, horizontally
        self._y_scale = float(box_h)
        self._x_offset = box_w / 2.0
        self.px_per_unit = math.sqrt(self._x_scale * self._y_scale)

    def to_px(self, points_uv: np.ndarray) -> np.ndarray:
        """Body units -> fixed-point pixel coordinates (int32) for OpenCV's ``shift`` argument."""
        uv = np.asarray(points_uv, dtype=np.float64)
        xy = uv * (self._x_scale, self._y_scale) + (self._x_offset, 0.0)
        return np.round(xy * _FIXED_POINT).astype(np.int32)

    def point_px(self, point_uv: np.ndarray) -> tuple[int, int]:
        """One point in body units -> fixed-point pixel coordinates (fast path for scalars)."""
        u, v = float(point_uv[0]), float(point_uv[1])
        return (
            int(round((u * self._x_scale + self._x_offset) * _FIXED_POINT)),
            int(round(v * self._y_scale * _FIXED_POINT)),
        )

    def pixel_centres_uv(self, x0: int, x1: int, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        """Body coordinates of the centres of pixel columns ``x0:x1`` and rows ``y0:y1``."""
        u = (np.arange(x0, x1, dtype=np.float32) + 0.5 - self._x_offset) / self._x_scale
        v = (np.arange(y0, y1, dtype=np.float32) + 0.5) / self._y_scale
        return u, v

    def thickness(self, width: float) -> int:
        return max(1, int(round(width * self.px_per_unit)))

    def polygon(self, points_uv: np.ndarray, colour: BGR) -> None:
        cv2.fillPoly(self.canvas, [self.to_px(points_uv)], colour, cv2.LINE_AA, DRAW_SHIFT)

    def segment(self, a: np.ndarray, b: np.ndarray, width: float, colour: BGR) -> None:
        """A thick segment with round ends (a limb, a strap)."""
        cv2.line(
            self.canvas, self.point_px(a), self.point_px(b), colour, self.thickness(width),
            cv2.LINE_AA, DRAW_SHIFT,
        )

    def ellipse(
        self,
        centre: np.ndarray,
        half_axes_uv: tuple[float, float],
        colour: BGR,
        start_deg: float = 0.0,
        end_deg: float = 360.0,
        angle_deg: float = 0.0,
    ) -> None:
        centre_px = self.point_px(centre)
        axes_px = (
            max(1, int(round(half_axes_uv[0] * self._x_scale * _FIXED_POINT))),
            max(1, int(round(half_axes_uv[1] * self._y_scale * _FIXED_POINT))),
        )
        cv2.ellipse(
            self.canvas, centre_px, axes_px, angle_deg, start_deg, end_deg, colour, -1,
            cv2.LINE_AA, DRAW_SHIFT,
        )

    def rectangle(self, top_left: np.ndarray, bottom_right: np.ndarray, colour: BGR) -> None:
        (u0, v0), (u1, v1) = top_left, bottom_right
        self.polygon(np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]]), colour)

    def textured_polygon(
        self,
        points_uv: np.ndarray,
        texture: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        """Fill a polygon with ``texture(u, v) -> HxWx3 uint8``, evaluated on its bounding box.

        The texture is computed in body units, so stripes follow the body rather than the
        pixel grid and keep their size at any box scale.
        """
        pts = self.to_px(points_uv)
        x0, y0 = np.floor(pts.min(0) / _FIXED_POINT).astype(int) - 1
        x1, y1 = np.ceil(pts.max(0) / _FIXED_POINT).astype(int) + 2
        canvas_h, canvas_w = self.canvas.shape[:2]
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, canvas_w), min(y1, canvas_h)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        offset = np.array([x0, y0], np.int32) * _FIXED_POINT
        cv2.fillPoly(mask, [pts - offset], 255, cv2.LINE_AA, DRAW_SHIFT)
        u, v = np.meshgrid(*self.pixel_centres_uv(x0, x1, y0, y1))
        fill = texture(u, v).astype(np.float32)
        alpha = (mask.astype(np.float32) / 255.0)[..., None]
        region = self.canvas[y0:y1, x0:x1]
        region[...] = (region * (1.0 - alpha) + fill * alpha + 0.5).astype(np.uint8)


def _shade(colour: BGR, factor: float) -> BGR:
    shaded = (int(min(255, max(0, round(c * factor)))) for c in colour)
    return tuple(shaded)  # type: ignore[return-value]


def _upper_texture(
    upper: UpperGarment, body: BodyShape
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Texture function for the torso (see :meth:`_BoxPainter.textured_polygon`)."""
    base = np.array(upper.colour_bgr, np.float32)
    accent = np.array(upper.pattern_colour_bgr, np.float32)
    period = upper.pattern_period
    torso_top = body.shoulder_v

    def texture(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        pattern = upper.pattern
        if pattern == UpperPattern.HORIZONTAL_STRIPES:
            use_accent = np.floor((v - torso_top) / period).astype(np.int32) % 2 == 1
        elif pattern == UpperPattern.VERTICAL_STRIPES:
            use_accent = np.floor(u / period + 0.5).astype(np.int32) % 2 == 1
        elif pattern == UpperPattern.CHECKS:
            rows = np.floor((v - torso_top) / period).astype(np.int32)
            cols = np.floor(u / period + 0.5).astype(np.int32)
            use_accent = (rows + cols) % 2 == 1
        elif pattern == UpperPattern.TWO_TONE:
            yoke_bottom = torso_top + 0.35 * (body.hip_v - torso_top)
            use_accent = v < yoke_bottom
        else:  # PLAIN, LOGO_BLOCK (the logo is drawn on top, front view only)
            return np.broadcast_to(base, (*u.shape, 3))
        return np.where(use_accent[..., None], accent, base)

    return texture


def _draw_leg(p: _BoxPainter, leg: _Limb, a: PersonAppearance, factor: float) -> None:
    body, lower = a.body, a.lower
    width = body.limb_width
    lower_colour = _shade(lower.colour_bgr, factor)
    skin = _shade(a.skin_bgr, factor)
    if lower.kind == LowerKind.TROUSERS:
        p.segment(leg.root, leg.mid, width, lower_colour)
        p.segment(leg.mid, leg.end, width * 0.85, lower_colour)
    elif lower.kind == LowerKind.SHORTS:
        p.segment(leg.mid, leg.end, width * 0.7, skin)
        p.segment(leg.root, leg.root + 0.75 * (leg.mid - leg.root), width * 1.05, lower_colour)
    else:  # skirt: the skirt itself is drawn over both legs later
        p.segment(leg.root, leg.mid, width * 0.8, skin)
        p.segment(leg.mid, leg.end, width * 0.7, skin)
    shoe = _shade(a.shoes_bgr, factor)
    p.segment(leg.end, leg.tip, width * 0.75, shoe)


def _draw_arm(p: _BoxPainter, arm: _Limb, a: PersonAppearance, factor: float) -> None:
    width = a.body.limb_width * 0.78
    sleeve = _shade(a.upper.colour_bgr, factor)
    skin = _shade(a.skin_bgr, factor)
    p.segment(arm.root, arm.mid, width, sleeve)
    if a.upper.sleeves == SleeveLength.LONG:
        p.segment(arm.mid, arm.end, width * 0.9, sleeve)
    else:
        p.segment(arm.mid, arm.end, width * 0.75, skin)
    p.segment(arm.end, arm.tip, width * 0.85, skin)


def _draw_skirt(p: _BoxPainter, pose: _Pose, a: PersonAppearance) -> None:
    hip_v = a.body.hip_v
    knee_v = 0.5 * (pose.leg_a.mid[1] + pose.leg_b.mid[1])
    top = a.body.hip_half_width + 0.01
    spread = max(abs(pose.leg_a.mid[0] - pose.leg_b.mid[0]) * 0.6, top * 1.25)
    centre = 0.5 * (pose.leg_a.mid[0] + pose.leg_b.mid[0])
    p.polygon(
        np.array(
            [[-top, hip_v - 0.01], [top, hip_v - 0.01], [centre + spread, knee_v],
             [centre - spread, knee_v]]
        ),
        a.lower.colour_bgr,
    )


def _draw_head(p: _BoxPainter, pose: _Pose, a: PersonAppearance, facing: Facing) -> None:
    body = a.body
    hh = body.head_height
    centre = pose.head_centre
    axes = (hh * 0.36, hh * 0.5)
    side_view = pose.forward != 0
    # neck
    p.segment(pose.neck_base, centre + np.array([0.0, hh * 0.3]), hh * 0.3, a.skin_bgr)
    hair = a.hair_bgr
    long_hair = a.hair_style == HairStyle.LONG
    if long_hair and facing != Facing.BACK:
        # hair behind the head falls to the shoulders
        behind = centre + np.array([-pose.forward * hh * 0.08, hh * 0.45])
        p.ellipse(behind, (hh * 0.42, hh * 0.62), hair)
    p.ellipse(centre, axes, a.skin_bgr)
    if a.hair_style == HairStyle.SHAVED:
        hair = _shade(a.skin_bgr, 0.55) if facing == Facing.FRONT else hair
        p.ellipse(centre, (axes[0] * 1.02, axes[1] * 1.02), hair, 180, 360)
    elif facing == Facing.BACK:
        p.ellipse(centre, (axes[0] * 1.05, axes[1] * 1.04), hair)
        if long_hair:
            p.ellipse(centre + np.array([0.0, hh * 0.55]), (hh * 0.4, hh * 0.62), hair)
    elif side_view:
        p.ellipse(centre, (axes[0] * 1.05, axes[1] * 1.05), hair, 180, 360)
        # the back of the head is hair too
        back = 90 if pose.forward > 0 else 0
        p.ellipse(centre, (axes[0] * 1.05, axes[1] * 1.05), hair, back, back + 90)
    else:  # front: a fringe over the top of the face
        p.ellipse(centre, (axes[0] * 1.05, axes[1] * 1.05), hair, 175, 365)
        p.ellipse(centre + np.array([0.0, -hh * 0.12]), (axes[0] * 1.02, axes[1] * 0.45), hair)
    if a.hair_style == HairStyle.PONYTAIL and facing != Facing.FRONT:
        tail_u = -pose.forward * hh * 0.42
        tail = centre + np.array([tail_u, hh * 0.38])
        p.ellipse(tail, (hh * 0.14, hh * 0.32), hair)
    if a.hat_bgr is not None:
        crown = centre + np.array([0.0, -hh * 0.08])
        p.ellipse(crown, (axes[0] * 1.1, axes[1] * 0.98), a.hat_bgr, 180, 360)
        brim_dir = pose.forward if side_view else 0
        brim_a = centre + np.array([-axes[0] * 1.1 + brim_dir * hh * 0.2, -hh * 0.08])
        brim_b = centre + np.array([axes[0] * 1.1 + brim_dir * hh * 0.35, -hh * 0.08])
        p.segment(brim_a, brim_b, hh * 0.1, a.hat_bgr)


def _draw_torso_accessories_behind(p: _BoxPainter, pose: _Pose, a: PersonAppearance) -> None:
    """Things hidden by the torso: a backpack seen from the side sticks out behind it."""
    body = a.body
    if a.backpack_bgr is not None and pose.forward != 0:
        depth = body.shoulder_half_width * 0.62
        top_v = body.shoulder_v + 0.015
        bottom_v = top_v + 0.62 * (body.hip_v - body.shoulder_v)
        back_u = -pose.forward * depth
        outer_u = back_u - pose.forward * body.shoulder_half_width * 0.75
        u0, u1 = sorted((back_u, outer_u))
        p.rectangle(np.array([u0, top_v]), np.array([u1, bottom_v]), a.backpack_bgr)


def _draw_torso(p: _BoxPainter, pose: _Pose, a: PersonAppearance, facing: Facing) -> None:
    body = a.body
    p.textured_polygon(pose.torso, _upper_texture(a.upper, body))
    torso_len = body.hip_v - body.shoulder_v
    if a.upper.pattern == UpperPattern.LOGO_BLOCK and facing == Facing.FRONT:
        half = body.shoulder_half_width * 0.45
        top = body.shoulder_v + 0.22 * torso_len
        p.rectangle(
            np.array([-half, top]), np.array([half, top + 0.3 * torso_len]),
            a.upper.pattern_colour_bgr,
        )
    if a.scarf_bgr is not None:
        neck_v = body.shoulder_v + 0.012
        half = body.shoulder_half_width * (0.55 if pose.forward == 0 else 0.4)
        p.segment(
            np.array([-half, neck_v]), np.array([half, neck_v]), body.head_height * 0.22,
            a.scarf_bgr,
        )
        if facing == Facing.FRONT:
            p.segment(
                np.array([half * 0.4, neck_v]), np.array([half * 0.5, neck_v + 0.3 * torso_len]),
                body.head_height * 0.16, a.scarf_bgr,
            )


def _draw_front_accessories(
    p: _BoxPainter, pose: _Pose, a: PersonAppearance, facing: Facing
) -> None:
    """Accessories in front of the torso: backpack (or its straps), shoulder bag."""
    body = a.body
    strap_width = body.limb_width * 0.28
    torso_len = body.hip_v - body.shoulder_v
    shoulder_v = body.shoulder_v + 0.01
    if a.backpack_bgr is not None:
        if facing == Facing.BACK:
            half = body.shoulder_half_width * 0.78
            top = shoulder_v + 0.02
            p.rectangle(np.array([-half, top]), np.array([half, top + 0.62 * torso_len]),
                        a.backpack_bgr)
            flap = _shade(a.backpack_bgr, 0.75)
            p.rectangle(np.array([-half * 0.8, top + 0.35 * torso_len]),
                        np.array([half * 0.8, top + 0.5 * torso_len]), flap)
        elif facing == Facing.FRONT:
            for side in (-1, 1):
                u = side * body.shoulder_half_width * 0.55
                strap_end = np.array([u * 0.95, shoulder_v + 0.55 * torso_len])
                p.segment(np.array([u, shoulder_v]), strap_end, strap_width, a.backpack_bgr)
        else:
            u = pose.forward * body.shoulder_half_width * 0.1
            strap_end = np.array([u - pose.forward * 0.01, shoulder_v + 0.5 * torso_len])
            p.segment(np.array([u, shoulder_v]), strap_end, strap_width, a.backpack_bgr)
    if a.bag_bgr is not None:
        # which way the bag's body side shows up in the image
        if facing == Facing.FRONT:
            image_side = 1 if a.bag_side == BodySide.LEFT else -1
        elif facing == Facing.BACK:
            image_side = -1 if a.bag_side == BodySide.LEFT else 1
        else:
            near_side = BodySide.RIGHT if facing == Facing.RIGHT else BodySide.LEFT
            if a.bag_side != near_side:
                return  # carried on the far side: hidden by the body
            image_side = 0
        half_w = body.shoulder_half_width
        strap_top = np.array([-image_side * half_w * 0.6, shoulder_v])
        bag_u = image_side * half_w * 1.05
        bag_top = body.hip_v - 0.045
        strap_end = np.array([bag_u, bag_top])
        p.segment(strap_top, strap_end, strap_width, a.bag_bgr)
        bag_half = half_w * (0.5 if image_side else 0.6)
        p.rectangle(np.array([bag_u - bag_half, bag_top]),
                    np.array([bag_u + bag_half, bag_top + 0.09]), a.bag_bgr)


#: Far-side limbs are drawn darker so a side view reads as 3-D.
FAR_LIMB_SHADE = 0.72


def _paint_person(
    p: _BoxPainter, appearance: PersonAppearance, phase: float, facing: Facing, lean: float
) -> None:
    pose = _pose(appearance.body, phase, facing, lean)
    side_view = pose.forward != 0
    far_shade = FAR_LIMB_SHADE if side_view else 1.0
    if side_view:
        _draw_arm(p, pose.arm_a, appearance, far_shade)
    _draw_torso_accessories_behind(p, pose, appearance)
    _draw_leg(p, pose.leg_a, appearance, far_shade)
    _draw_leg(p, pose.leg_b, appearance, 1.0)
    if appearance.lower.kind == LowerKind.SKIRT:
        _draw_skirt(p, pose, appearance)
    if not side_view:  # arms hang beside the torso; the torso overlaps their inner edge
        _draw_arm(p, pose.arm_a, appearance, 1.0)
        _draw_arm(p, pose.arm_b, appearance, 1.0)
    _draw_torso(p, pose, appearance, facing)
    _draw_head(p, pose, appearance, facing)
    _draw_front_accessories(p, pose, appearance, facing)
    if side_view:
        _draw_arm(p, pose.arm_b, appearance, 1.0)


#: Per-drawing lean jitter (body units at the top of the head).
LEAN_JITTER = 0.025


def draw_person(
    frame: np.ndarray,
    appearance: PersonAppearance,
    box_xyxy: Sequence[float],
    phase: float,
    facing: Facing,
    rng: np.random.Generator | None = None,
) -> None:
    """Draw ``appearance`` at gait ``phase`` (radians) into ``frame`` (HxWx3 uint8), in place.

    The person fills ``box_xyxy`` (head top to soles, like a detector box). Only the pixels of
    the rounded box (columns ``round(x1)`` to ``round(x2) - 1``, rows likewise) are touched; a box
    partly or wholly outside the frame is clipped. ``rng`` adds a small random lean and cloth
    folds; without it the drawing is fully determined by the arguments.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be an HxWx3 uint8 image, got {frame.dtype} {frame.shape}")
    box = np.asarray(box_xyxy, dtype=np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise ValueError(f"box_xyxy must be 4 finite numbers, got {box_xyxy!r}")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box_xyxy must have x2 > x1 and y2 > y1, got {box_xyxy!r}")
    x1, y1, x2, y2 = (int(round(c)) for c in box)
    if x2 - x1 < MIN_DRAWABLE_BOX_PX or y2 - y1 < MIN_DRAWABLE_BOX_PX:
        return  # too small for anything recognisable
    frame_h, frame_w = frame.shape[:2]
    fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x2, frame_w), min(y2, frame_h)
    if fx2 <= fx1 or fy2 <= fy1:
        return
    # Draw on a box-sized canvas holding the frame's pixels, then copy back only the part that
    # lies inside the frame: drawing can never leak outside the box.
    canvas = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
    inner = (slice(fy1 - y1, fy2 - y1), slice(fx1 - x1, fx2 - x1))
    canvas[inner] = frame[fy1:fy2, fx1:fx2]
    before = canvas.copy()
    lean = float(rng.normal(0.0, LEAN_JITTER)) if rng is not None else 0.0
    painter = _BoxPainter(canvas)
    _paint_person(painter, appearance, float(phase), Facing(facing), lean)
    _shade_body(canvas, np.any(canvas != before, axis=2), painter, rng)
    frame[fy1:fy2, fx1:fx2] = canvas[inner]


#: Shading turns flat cartoon colours into the graded colours of lit cloth: a round body is
#: darker towards its silhouette, lit from above, and folds add soft random light and dark.
SIDE_DARKENING = 0.38
BODY_HALF_WIDTH_FOR_SHADING = 0.2  # body units at which the side darkening is full
TOP_LIGHT = 0.22  # brightness change from head (+) to feet (-)
FOLD_SHADING_STD = 0.08
FOLD_GRID = (10, 5)  # rows, columns of the random fold field (upsampled smoothly)
_SHADE_ONE = 128  # fixed-point value of a shading factor of 1.0


def _shade_body(
    canvas: np.ndarray, body_mask: np.ndarray, painter: _BoxPainter,
    rng: np.random.Generator | None,
) -> None:
    """Multiply the pixels the person covers by a smooth lighting field (in place)."""
    if not body_mask.any():
        return
    box_h, box_w = canvas.shape[:2]
    u, v = painter.pixel_centres_uv(0, box_w, 0, box_h)
    side = np.minimum(np.abs(u) / BODY_HALF_WIDTH_FOR_SHADING, 1.0) ** 2
    shading = (1.0 - SIDE_DARKENING * side)[None, :] * (1.0 + TOP_LIGHT * (0.5 - v))[:, None]
    if rng is not None:
        folds = rng.normal(0.0, FOLD_SHADING_STD, FOLD_GRID).astype(np.float32)
        shading = shading * (1.0 + cv2.resize(folds, (box_w, box_h), interpolation=cv2.INTER_CUBIC))
    # fixed-point multiply in OpenCV (saturating), then keep the result on the body only
    shade_u8 = np.clip(shading * _SHADE_ONE + 0.5, 0, 255).astype(np.uint8)
    shaded = cv2.multiply(canvas, cv2.merge([shade_u8] * 3), scale=1.0 / _SHADE_ONE)
    np.copyto(canvas, shaded, where=body_mask[..., None])
