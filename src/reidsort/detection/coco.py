"""Detections from a COCO-format annotations JSON, matched to frames by image file name.

For workflows whose "detections" are annotations (e.g. cell tracking from segmentation
annotations): annotations are grouped by ``image_id``, the image's ``file_name`` (its base name)
is matched to the names of the source's frames. Polygon and uncompressed-RLE segmentations
become masks; compressed RLE (a string) needs pycocotools and is skipped with one warning.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from reidsort.detection.base import Detections, class_list
from reidsort.utils.errors import ReidsortError
from reidsort.video.frame import Frame
from reidsort.video.sources import SourceInfo

log = logging.getLogger(__name__)

#: Score of annotations that carry none (ground-truth annotations).
DEFAULT_SCORE = 1.0


class CocoDetector:
    """Detections from a COCO annotations file; no pixels needed.

    Args:
        annotations: the JSON file (``images``, ``annotations``; ``categories`` optional).
        category_ids: categories to keep (None keeps all).
        min_score: annotations with a ``score`` below this are dropped.
        masks: rasterise segmentations into masks (drawn on the video).
    """

    needs_pixels = False

    def __init__(self, annotations: str | os.PathLike, category_ids: Sequence[int] | None = None,
                 min_score: float | None = None, masks: bool = True) -> None:
        if annotations is None:
            raise ReidsortError("detector=coco needs detector.annotations=<annotations.json>")
        self.path = Path(annotations)
        self.category_ids = class_list(category_ids)
        self.min_score = min_score
        self.masks = bool(masks)
        self.produces_masks = self.masks
        self._images, self._by_image = _load(self.path)
        self._by_name: dict[str, int] = {}
        self._frame_to_image: dict[int, int] = {}
        self._warned_rle = False

    def bind(self, source: SourceInfo) -> None:
        if source.frame_names is None:
            raise ReidsortError(
                f"detector=coco matches frames by image file name; {source.name} is a "
                f"{source.kind} without file names (use an image folder or MOT sequence)"
            )
        by_name: dict[str, int] = {}
        for image_id, image in self._images.items():
            by_name.setdefault(PurePosixPath(str(image.get("file_name", ""))).name, image_id)
        self._frame_to_image = {
            index: by_name[name]
            for index, name in enumerate(source.frame_names, start=1) if name in by_name
        }
        if not self._frame_to_image:
            example = next(iter(by_name), "(no images)")
            raise ReidsortError(
                f"{self.path}: none of its {len(by_name)} image file names match the "
                f"{len(source.frame_names)} frames of {source.name} (e.g. {example!r} vs "
                f"{source.frame_names[0]!r})"
            )
        unmatched = len(source.frame_names) - len(self._frame_to_image)
        if unmatched:
            log.warning("%s: %d of %d frames have no image entry in %s (no detections there)",
                        source.name, unmatched, len(source.frame_names), self.path.name)

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        return [self._frame_detections(frame) for frame in frames]

    def _frame_detections(self, frame: Frame) -> Detections:
        image_id = self._frame_to_image.get(frame.index)
        annotations = self._by_image.get(image_id, []) if image_id is not None else []
        rows, scores, classes, segmentations = [], [], [], []
        for ann in annotations:
            category = int(ann.get("category_id", 0))
            score = float(ann.get("score", DEFAULT_SCORE))
            if self.category_ids is not None and category not in self.category_ids:
                continue
            if self.min_score is not None and score < self.min_score:
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            if not (w > 0 and h > 0):
                continue
            rows.append((x, y, x + w, y + h))
            scores.append(score)
            classes.append(category)
            segmentations.append(ann.get("segmentation"))
        if not rows:
            return Detections.empty()
        masks = None
        if self.masks and any(s for s in segmentations):
            size = self._image_size(image_id, frame)
            if size is not None:
                masks = np.stack([self._rasterise(s, size) for s in segmentations])
        return Detections(np.array(rows), np.array(scores), np.array(classes), masks)

    def _image_size(self, image_id: int, frame: Frame) -> tuple[int, int] | None:
        if frame.image is not None:
            return frame.image.shape[0], frame.image.shape[1]
        image = self._images[image_id]
        if "height" in image and "width" in image:
            return int(image["height"]), int(image["width"])
        return None

    def _rasterise(self, segmentation, size: tuple[int, int]) -> np.ndarray:
        height, width = size
        mask = np.zeros((height, width), dtype=np.uint8)
        if isinstance(segmentation, list):  # polygons [[x1, y1, x2, y2, ...], ...]
            polygons = [np.round(np.asarray(p, np.float64).reshape(-1, 2)).astype(np.int32)
                        for p in segmentation if len(p) >= 6]
            if polygons:
                cv2.fillPoly(mask, polygons, 1)
        elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
            mask = _decode_uncompressed_rle(segmentation, size)
        elif segmentation and not self._warned_rle:
            self._warned_rle = True
            log.warning("%s: compressed RLE segmentations are not decoded (no masks for them)",
                        self.path.name)
        return mask.astype(bool)


def _decode_uncompressed_rle(rle: dict, size: tuple[int, int]) -> np.ndarray:
    """COCO uncompressed RLE: alternating run lengths of 0 and 1, column-major (Fortran order)."""
    height, width = (int(v) for v in rle.get("size", size))
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = np.zeros(len(counts), dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, counts)[: height * width]
    flat = np.pad(flat, (0, height * width - len(flat)))
    mask = flat.reshape((width, height)).T
    if (height, width) != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return mask


def _load(path: Path) -> tuple[dict[int, dict], dict[int, list[dict]]]:
    if not path.is_file():
        raise ReidsortError(f"annotations file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ReidsortError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ReidsortError(f"{path}: a COCO annotations file needs 'images' and 'annotations' "
                            "lists")
    images = {int(image["id"]): image for image in data["images"] if "id" in image}
    by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in data["annotations"]:
        if "image_id" in ann and "bbox" in ann and len(ann["bbox"]) == 4:
            by_image[int(ann["image_id"])].append(ann)
    return images, dict(by_image)
