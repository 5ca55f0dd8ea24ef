"""Annotating frames: boxes and ids in stable colours, short trails, masks and an FPS overlay."""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from reidsort.tracking.tracker import OutputColumn

BGR = tuple[int, int, int]

#: Successive ids get hues a golden-ratio turn apart: neighbouring ids look clearly different
#: and an id keeps its colour for the whole video (and across videos).
GOLDEN_RATIO_CONJUGATE = 0.618033988749895
ID_SATURATION = 0.85
ID_VALUE = 0.95
FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_COLOUR: BGR = (255, 255, 255)
OVERLAY_BACKGROUND: BGR = (0, 0, 0)


def id_colour(track_id: int) -> BGR:
    """The BGR colour of a track id (the same id always gets the same colour)."""
    hue = (int(track_id) * GOLDEN_RATIO_CONJUGATE) % 1.0
    hsv = np.array([[[hue * 179.0, ID_SATURATION * 255.0, ID_VALUE * 255.0]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


class TrackPainter:
    """Draws tracker output onto frames and remembers each id's recent positions (trails).

    One painter per source: the trails are the state. ``tracks`` is the tracker's ``(M, 8)``
    output; ``masks`` (optional) are the frame's detection masks ``(N, H, W)`` bool, looked up
    through each track's detection index.
    """

    def __init__(self, trail_length: int = 30, thickness: int = 2, font_scale: float = 0.5,
                 mask_alpha: float = 0.45, draw_masks: bool = True) -> None:
        if trail_length < 0:
            raise ValueError(f"trail_length must be >= 0, got {trail_length}")
        if not 0.0 <= mask_alpha <= 1.0:
            raise ValueError(f"mask_alpha must be in [0, 1], got {mask_alpha}")
        self.trail_length = int(trail_length)
        self.thickness = max(1, int(thickness))
        self.font_scale = float(font_scale)
        self.mask_alpha = float(mask_alpha)
        self.draw_masks = bool(draw_masks)
        self._trails: dict[int, deque[tuple[int, int]]] = {}
        self._last_seen: dict[int, int] = {}
        self._frame = 0
        self._colours: dict[int, BGR] = {}

    def colour(self, track_id: int) -> BGR:
        if track_id not in self._colours:
            self._colours[track_id] = id_colour(track_id)
        return self._colours[track_id]

    def draw(self, image: np.ndarray, tracks: np.ndarray, masks: np.ndarray | None = None,
             fps: float | None = None) -> np.ndarray:
        """Annotate ``image`` in place and return it."""
        self._frame += 1
        tracks = np.asarray(tracks, dtype=np.float64).reshape(-1, len(OutputColumn))
        ids = tracks[:, OutputColumn.TRACK_ID].astype(np.int64)
        if self.draw_masks and masks is not None and len(masks):
            self._blend_masks(image, tracks, ids, masks)
        self._update_trails(tracks, ids)
        if self.trail_length:
            for track_id in ids.tolist():
                points = self._trails[track_id]
                if len(points) > 1:
                    cv2.polylines(image, [np.array(points, np.int32)], False,
                                  self.colour(track_id), self.thickness, cv2.LINE_AA)
        for row, track_id in zip(tracks, ids.tolist()):
            self._draw_box(image, row, track_id)
        if fps is not None:
            draw_text_box(image, f"{fps:5.1f} FPS", (8, 8), self.font_scale * 1.4)
        return image

    def _blend_masks(self, image: np.ndarray, tracks: np.ndarray, ids: np.ndarray,
                     masks: np.ndarray) -> None:
        det_index = tracks[:, OutputColumn.DETECTION_INDEX].astype(np.int64)
        colour_layer = image.copy()
        union = np.zeros(image.shape[:2], dtype=bool)
        for track_id, index in zip(ids.tolist(), det_index.tolist()):
            if 0 <= index < len(masks):
                mask = masks[index]
                colour_layer[mask] = self.colour(track_id)
                union |= mask
        if union.any():
            alpha = self.mask_alpha
            blended = cv2.addWeighted(image, 1.0 - alpha, colour_layer, alpha, 0)
            image[union] = blended[union]

    def _update_trails(self, tracks: np.ndarray, ids: np.ndarray) -> None:
        centres_x = (tracks[:, OutputColumn.X1] + tracks[:, OutputColumn.X2]) / 2
        bottoms = tracks[:, OutputColumn.Y2]  # feet: where a pedestrian actually walks
        for track_id, x, y in zip(ids.tolist(), centres_x.tolist(), bottoms.tolist()):
            trail = self._trails.get(track_id)
            if trail is None:
                trail = self._trails[track_id] = deque(maxlen=max(1, self.trail_length))
            trail.append((int(round(x)), int(round(y))))
            self._last_seen[track_id] = self._frame
        # forget ids unseen for longer than a trail lasts (bounded memory on long videos)
        stale = [i for i, seen in self._last_seen.items() if self._frame - seen > self.trail_length]
        for track_id in stale:
            del self._trails[track_id], self._last_seen[track_id]

    def _draw_box(self, image: np.ndarray, row: np.ndarray, track_id: int) -> None:
        colour = self.colour(track_id)
        x1, y1, x2, y2 = (int(round(v)) for v in row[:4])
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, self.thickness)
        draw_text_box(image, str(track_id), (x1, y1), self.font_scale, background=colour,
                      above=True)


def draw_text_box(image: np.ndarray, text: str, origin: tuple[int, int], font_scale: float,
                  background: BGR = OVERLAY_BACKGROUND, above: bool = False) -> None:
    """``text`` on a filled box at ``origin`` (its top-left, or bottom-left when ``above``)."""
    thickness = max(1, int(round(font_scale * 2)))
    (width, height), baseline = cv2.getTextSize(text, FONT, font_scale, thickness)
    x, y = origin
    top = y - height - baseline - 2 if above else y
    top = max(0, top)
    cv2.rectangle(image, (x, top), (x + width + 4, top + height + baseline + 2), background, -1)
    cv2.putText(image, text, (x + 2, top + height + 1), FONT, font_scale, TEXT_COLOUR, thickness,
                cv2.LINE_AA)
