"""FairMOT training targets from boxes and identities (NumPy only: no torch import).

Every box becomes a Gaussian peak on the centre heatmap of its class at output stride 4, plus
rows of fixed-size (``max_objects``) tables: the box size and the sub-pixel offset of its centre
(both in output-map units), the flattened index of the centre cell, a validity mask and its
identity. This follows ``JointDataset.__getitem__`` of ifzhang/FairMOT (src/lib/datasets/
dataset/jde.py) and CenterNet's ``gaussian_radius`` / ``draw_umich_gaussian`` (utils/image.py),
except that by default boxes are clipped to the image *before* their centre and size are taken,
so a half-visible person's centre lies on the visible part and its size matches it.
``amodal=True`` is FairMOT's behaviour since its Sept. 2020 update instead: the full box is kept,
its centre clamped into the map, and the size regresses the full box from that centre (use it
with ``size_mode="ltrb"``, which then decodes back to the full box).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reidsort.utils.errors import ReidsortError

#: CenterNet / FairMOT output stride of the heads
OUTPUT_STRIDE = 4
#: FairMOT's ``opt.K`` / ``max_objs``: the rows of the target tables
MAX_OBJECTS = 500
#: CenterNet ``gaussian_radius(det_size, min_overlap=0.7)``: a box shifted by the radius still
#: overlaps the true one by at least this IoU
MIN_OVERLAP = 0.7
#: CenterNet ``gaussian2D``: values below this fraction of the peak are set to 0
GAUSSIAN_CUTOFF = np.finfo(np.float64).eps
#: "wh": width and height (FairMOT's original); "ltrb": centre-to-side distances (FairMOT's
#: later default, ``opt.ltrb``)
SIZE_MODES: dict[str, int] = {"wh": 2, "ltrb": 4}
#: identity of a box that is a detection target but not an identity target
NO_ID = -1


@dataclass
class JDETargets:
    """Targets of one image; ``K = max_objects`` rows of which the first ``mask.sum()`` are used."""

    heatmap: np.ndarray  # (C, h, w) float32, 1.0 exactly at each centre cell
    size: np.ndarray  # (K, 2 | 4) float32, output-map units
    offset: np.ndarray  # (K, 2) float32, centre - its integer cell, in [0, 1)
    index: np.ndarray  # (K,) int64, y * w + x of the centre cell
    mask: np.ndarray  # (K,) bool
    ids: np.ndarray  # (K,) int64, NO_ID for none and for padding rows
    boxes: np.ndarray  # (K, 4) float32 xyxy in input pixels (clipped unless amodal)


def gaussian_radius(height: float, width: float, min_overlap: float = MIN_OVERLAP) -> float:
    """CenterNet's radius for a box of ``height`` x ``width`` (output-map units)."""
    return float(_gaussian_radii(np.float64(height), np.float64(width), min_overlap))


def _gaussian_radii(height: np.ndarray, width: np.ndarray, min_overlap: float) -> np.ndarray:
    """The smallest of CornerNet's three cases (both corners inside, both outside, one of each),
    as CenterNet writes them. These are not the exact roots of the overlap equations (the
    ``/ 2`` should be ``/ (2a)``), but they are the radii every FairMOT model was trained
    with, so they are kept."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


def gaussian_kernel(radius: int) -> np.ndarray:
    """A (2r+1)^2 Gaussian with peak 1 and sigma = diameter / 6 (CenterNet ``gaussian2D``)."""
    sigma = (2 * radius + 1) / 6
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    kernel = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    kernel[kernel < GAUSSIAN_CUTOFF * kernel.max()] = 0
    return kernel


def draw_gaussian(heatmap: np.ndarray, centre_xy: tuple[int, int], radius: int) -> None:
    """Draw a Gaussian peak at the integer cell ``centre_xy`` into ``heatmap`` (h, w), in place,
    keeping the element-wise maximum where peaks overlap; cut at the borders."""
    if heatmap.ndim != 2:
        raise ReidsortError(f"draw_gaussian: heatmap must be (h, w), got shape {heatmap.shape}")
    radius = int(radius)
    if radius < 0:
        raise ReidsortError(f"draw_gaussian: radius must be >= 0, got {radius}")
    x, y = int(centre_xy[0]), int(centre_xy[1])
    height, width = heatmap.shape
    if not (0 <= x < width and 0 <= y < height):
        raise ReidsortError(f"draw_gaussian: centre {centre_xy} outside the {height}x{width} map")
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    patch = heatmap[y - top:y + bottom, x - left:x + right]
    kernel = gaussian_kernel(radius)[radius - top:radius + bottom, radius - left:radius + right]
    np.maximum(patch, kernel, out=patch)


def build_targets(
    boxes_xyxy: np.ndarray,
    ids: np.ndarray,
    input_hw: tuple[int, int],
    *,
    classes: np.ndarray | None = None,
    num_classes: int = 1,
    stride: int = OUTPUT_STRIDE,
    max_objects: int = MAX_OBJECTS,
    size_mode: str = "wh",
    amodal: bool = False,
) -> JDETargets:
    """Targets for the boxes ``boxes_xyxy`` (N, 4) in network-input pixels of an ``input_hw``
    image, with identities ``ids`` (N,) (``-1``: no identity) and optional ``classes`` (N,).

    Boxes are clipped to the image (``amodal``: only to decide what is visible, see the module
    docstring); those left with zero area are dropped. More than ``max_objects`` remaining
    boxes is an error (raise ``max_objects``).
    """
    if size_mode not in SIZE_MODES:
        raise ReidsortError(f"size_mode must be one of {', '.join(SIZE_MODES)}, got {size_mode!r}")
    if int(stride) < 1 or int(num_classes) < 1 or int(max_objects) < 0:
        raise ReidsortError(f"build_targets: stride {stride} and num_classes {num_classes} must "
                            f"be >= 1 and max_objects {max_objects} >= 0")
    input_h, input_w = (int(v) for v in input_hw)
    if input_h <= 0 or input_w <= 0 or input_h % stride or input_w % stride:
        raise ReidsortError(f"input size {tuple(input_hw)} must be positive multiples of the "
                            f"stride {stride}")
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
    if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
        raise ReidsortError(f"boxes must be a finite (N, 4) xyxy array, got shape {boxes.shape}")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        raise ReidsortError(f"box {boxes[np.argmax(inverted)].tolist()} has x2 < x1 or y2 < y1")
    ids = _integer_column(ids, len(boxes), "ids")
    if (ids < NO_ID).any():
        raise ReidsortError(f"ids must be >= {NO_ID} ({NO_ID} = no identity), got {ids.min()}")
    classes = (np.zeros(len(boxes), np.int64) if classes is None
               else _integer_column(classes, len(boxes), "classes"))
    if ((classes < 0) | (classes >= num_classes)).any():
        bad = classes[(classes < 0) | (classes >= num_classes)][0]
        raise ReidsortError(f"class {bad} outside [0, {num_classes}) (num_classes={num_classes})")

    visible = np.clip(boxes, 0, [input_w, input_h, input_w, input_h])
    kept = (visible[:, 2] > visible[:, 0]) & (visible[:, 3] > visible[:, 1])
    boxes = (boxes if amodal else visible)[kept]
    ids, classes = ids[kept], classes[kept]
    count = len(boxes)
    if count > max_objects:
        raise ReidsortError(f"{count} boxes in one image exceed max_objects={max_objects}; "
                            "raise max_objects")

    out_h, out_w = input_h // stride, input_w // stride
    scaled = boxes / stride
    centre = (scaled[:, :2] + scaled[:, 2:]) / 2
    if amodal:  # FairMOT: np.clip(ct, 0, output_size - 1)
        centre = np.clip(centre, 0, [out_w - 1, out_h - 1])
    # the min() only guards float rounding: a clipped box's centre is inside the image
    cell = np.minimum(np.floor(centre).astype(np.int64), [out_w - 1, out_h - 1])
    box_w, box_h = scaled[:, 2] - scaled[:, 0], scaled[:, 3] - scaled[:, 1]
    # FairMOT: radius of the box size rounded up, truncated to an integer, at least 0
    radii = np.maximum(0, _gaussian_radii(np.ceil(box_h), np.ceil(box_w), MIN_OVERLAP)
                       ).astype(np.int64)
    if size_mode == "wh":
        size = np.stack([box_w, box_h], axis=1)
    else:
        size = np.concatenate([centre - scaled[:, :2], scaled[:, 2:] - centre], axis=1)

    heatmap = np.zeros((num_classes, out_h, out_w), np.float32)
    for (x, y), radius, cls in zip(cell, radii, classes):
        draw_gaussian(heatmap[cls], (x, y), radius)
    targets = JDETargets(
        heatmap=heatmap,
        size=np.zeros((max_objects, SIZE_MODES[size_mode]), np.float32),
        offset=np.zeros((max_objects, 2), np.float32),
        index=np.zeros(max_objects, np.int64),
        mask=np.zeros(max_objects, bool),
        ids=np.full(max_objects, NO_ID, np.int64),
        boxes=np.zeros((max_objects, 4), np.float32),
    )
    targets.size[:count] = size
    targets.offset[:count] = centre - cell
    targets.index[:count] = cell[:, 1] * out_w + cell[:, 0]
    targets.mask[:count] = True
    targets.ids[:count] = ids
    targets.boxes[:count] = boxes
    return targets


def _integer_column(values: np.ndarray, count: int, name: str) -> np.ndarray:
    """``values`` as an int64 (count,) array; non-integers and a wrong length are errors."""
    array = np.asarray(values).reshape(-1) if np.size(values) else np.zeros(0, np.int64)
    if array.shape != (count,):
        raise ReidsortError(f"{name} must have one value per box ({count}), got {array.shape[0]}")
    if not np.issubdtype(array.dtype, np.integer):
        as_float = array.astype(np.float64)
        if not (np.isfinite(as_float).all() and (as_float == np.round(as_float)).all()):
            bad = array[~(np.isfinite(as_float) & (as_float == np.round(as_float)))][0]
            raise ReidsortError(f"{name} must be integers, got {bad!r}")
    return array.astype(np.int64)


__all__ = [
    "MAX_OBJECTS",
    "MIN_OVERLAP",
    "NO_ID",
    "OUTPUT_STRIDE",
    "SIZE_MODES",
    "JDETargets",
    "build_targets",
    "draw_gaussian",
    "gaussian_kernel",
    "gaussian_radius",
]
