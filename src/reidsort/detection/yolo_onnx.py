"""YOLO detectors exported to ONNX (YOLOX, YOLOv5, YOLOv8, YOLO11), run with ONNX Runtime.

Output layouts (``B`` batch, ``A`` candidate boxes, ``C`` classes; boxes are ``cx, cy, w, h`` in
letterboxed-input pixels):

* ``yolox``: ``(B, A, 5 + C)`` raw head output of the official YOLOX export (one row per grid
  cell of strides 8, 16, 32): ``cx = (x + grid_x) * stride``, ``w = exp(w) * stride``; then
  objectness and class probabilities.
* ``yolox_decoded``: the same rows already decoded in the graph (``--decode_in_inference``).
* ``yolov5``: ``(B, 3 A_cells, 5 + C)``: three anchors per cell, decoded, objectness first.
* ``yolov8`` (also YOLO11): ``(B, 4 + C, A)``: transposed, decoded, no objectness.

``layout: auto`` tells them apart from the output shape and the input size (YOLOX has one row
per grid cell, YOLOv5 three, YOLOv8/11 puts the boxes last). Input conventions differ too:
YOLOX takes BGR 0-255 letterboxed into the top-left corner; Ultralytics models take RGB 0-1
letterboxed in the centre; both pad with grey 114. Score = objectness x class probability
(YOLOX, YOLOv5) or the class probability (YOLOv8/11), maximised over the allowed classes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from reidsort.detection.base import Detections, PixelDetector, class_list
from reidsort.detection.letterbox import LetterboxTransform, letterbox
from reidsort.detection.nms import nms_xyxy
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: Feature-map strides of the P3-P5 heads shared by all supported families.
DEFAULT_STRIDES: tuple[int, ...] = (8, 16, 32)
#: YOLOv5 predicts this many anchor boxes per grid cell.
YOLOV5_ANCHORS_PER_CELL = 3
#: Input size used when the model's input height/width are dynamic and none is configured.
DEFAULT_INPUT_SIZE = (640, 640)
#: Images per ONNX Runtime call for models with a dynamic batch dimension.
DEFAULT_BATCH_SIZE = 8
#: Only this many best candidates enter NMS (bounds the cost on cluttered frames).
MAX_NMS_CANDIDATES = 3000
#: ONNX Runtime session option: may idle intra-op threads busy-wait?
SPINNING_KEY = "session.intra_op.allow_spinning"
#: Box coordinate columns and the objectness column of the row-major layouts.
BOX_COLUMNS = 4
OBJECTNESS_COLUMN = 4


class YoloLayout(str, Enum):
    YOLOX = "yolox"
    YOLOX_DECODED = "yolox_decoded"
    YOLOV5 = "yolov5"
    YOLOV8 = "yolov8"


LAYOUT_ALIASES: dict[str, YoloLayout] = {
    "yolo11": YoloLayout.YOLOV8,
    "yolov11": YoloLayout.YOLOV8,
    "yolox_raw": YoloLayout.YOLOX,
}
AUTO = "auto"
SUPPORTED_LAYOUTS = (
    "yolox (B, A, 5+C) raw YOLOX head, grid-decoded here; yolox_decoded (B, A, 5+C); "
    "yolov5 (B, 3*A, 5+C); yolov8 / yolo11 (B, 4+C, A)"
)


@dataclass(frozen=True)
class InputConvention:
    """How a family wants its input: channel order, value scale and letterbox placement."""

    rgb: bool
    unit_scale: bool  # divide by 255
    center: bool


CONVENTIONS: dict[YoloLayout, InputConvention] = {
    YoloLayout.YOLOX: InputConvention(rgb=False, unit_scale=False, center=False),
    YoloLayout.YOLOX_DECODED: InputConvention(rgb=False, unit_scale=False, center=False),
    YoloLayout.YOLOV5: InputConvention(rgb=True, unit_scale=True, center=True),
    YoloLayout.YOLOV8: InputConvention(rgb=True, unit_scale=True, center=True),
}


def grid_cells(input_hw: Sequence[int], strides: Sequence[int] = DEFAULT_STRIDES) -> int:
    """Number of grid cells over all strides for an input of ``input_hw``."""
    return sum((int(input_hw[0]) // s) * (int(input_hw[1]) // s) for s in strides)


def yolox_grid(input_hw: Sequence[int], strides: Sequence[int] = DEFAULT_STRIDES
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(A, 2)`` cell offsets ``(x, y)`` and ``(A, 1)`` strides, in YOLOX's row order (stride by
    stride, then row-major over each feature map)."""
    offsets, cell_strides = [], []
    for stride in strides:
        rows, cols = int(input_hw[0]) // stride, int(input_hw[1]) // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        offsets.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        cell_strides.append(np.full((rows * cols, 1), stride))
    return (np.concatenate(offsets).astype(np.float32),
            np.concatenate(cell_strides).astype(np.float32))


def decode_yolox(raw: np.ndarray, grid_xy: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """Decode raw YOLOX rows ``(A, 5 + C)``: box centre and size to input pixels (copy)."""
    out = np.array(raw, dtype=np.float32, copy=True)
    out[:, 0:2] = (out[:, 0:2] + grid_xy) * strides
    out[:, 2:4] = np.exp(out[:, 2:4]) * strides
    return out


def parse_layout(value: str | YoloLayout | None) -> YoloLayout | None:
    """A layout from the config (None for ``auto``); unknown names name the supported ones."""
    if value is None or str(value).lower() == AUTO:
        return None
    key = str(value.value if isinstance(value, YoloLayout) else value).lower()
    if key in LAYOUT_ALIASES:
        return LAYOUT_ALIASES[key]
    try:
        return YoloLayout(key)
    except ValueError:
        raise ReidsortError(f"unknown YOLO layout {value!r}; supported: auto, "
                            f"{SUPPORTED_LAYOUTS}") from None


def infer_layout(output_shape: Sequence[int], input_hw: Sequence[int],
                 strides: Sequence[int] = DEFAULT_STRIDES, model: str = "model") -> YoloLayout:
    """Tell the layout from the output shape ``(B, d1, d2)`` and the input size."""
    cells = grid_cells(input_hw, strides)
    if len(output_shape) == 3:
        _, rows, cols = (int(d) for d in output_shape)
        if rows == cells and cols > OBJECTNESS_COLUMN + 1:
            return YoloLayout.YOLOX
        if rows == YOLOV5_ANCHORS_PER_CELL * cells and cols > OBJECTNESS_COLUMN + 1:
            return YoloLayout.YOLOV5
        if cols == cells and rows > BOX_COLUMNS:
            return YoloLayout.YOLOV8
    raise ReidsortError(
        f"{model}: unknown YOLO output layout {tuple(output_shape)} for a "
        f"{input_hw[0]}x{input_hw[1]} input ({cells} grid cells at strides {tuple(strides)}); "
        f"supported layouts: {SUPPORTED_LAYOUTS}; set detector.layout if the model is one of them"
    )


def _check_layout(layout: YoloLayout, shape: tuple[int, ...], input_hw, strides, model) -> int:
    """Validate ``shape`` against an explicit ``layout``; returns the number of classes."""
    if len(shape) != 3:
        raise ReidsortError(f"{model}: YOLO output must be 3-d (B, ., .), got {shape}; "
                            f"supported layouts: {SUPPORTED_LAYOUTS}")
    _, rows, cols = shape
    if layout is YoloLayout.YOLOV8:
        classes = rows - BOX_COLUMNS
    else:
        classes = cols - OBJECTNESS_COLUMN - 1
        if layout is YoloLayout.YOLOX and rows != grid_cells(input_hw, strides):
            raise ReidsortError(
                f"{model}: layout yolox needs one row per grid cell "
                f"({grid_cells(input_hw, strides)} at strides {tuple(strides)} for "
                f"{input_hw[0]}x{input_hw[1]}), the output has {rows}; set detector.strides or "
                f"detector.layout (supported: {SUPPORTED_LAYOUTS})"
            )
    if classes < 1:
        raise ReidsortError(f"{model}: output {shape} leaves no class scores for layout "
                            f"{layout.value}; supported layouts: {SUPPORTED_LAYOUTS}")
    return classes


class YoloOnnxDetector(PixelDetector):
    """A YOLO ONNX export run with ONNX Runtime (see the module docstring for the layouts).

    Args:
        model_path: the ``.onnx`` file.
        layout: ``auto`` or one of the layouts above.
        classes: class ids to keep (COCO person = 0); None keeps all.
        score_threshold: minimum score (objectness x class probability).
        nms_threshold: IoU above which a lower-scored box of the same class is dropped.
        agnostic_nms: suppress across classes too.
        max_detections: at most this many boxes per image after NMS.
        input_size: ``[height, width]`` for models with dynamic input size (else ignored unless
            it contradicts the model).
        strides: feature-map strides (grid decode and layout detection).
        rgb, unit_scale, center: override the family's input convention (None = family
            default).
        batch_size: images per call for models with a dynamic batch dimension.
        threads: ONNX Runtime intra-op threads (None = its default, all cores).
        allow_spinning: let idle ONNX Runtime threads busy-wait for the next call. Off by
            default: the tracker alternates this model with the embedder's every frame, and
            spinning threads of one session steal the cores the other needs (measured 3-4x
            slower end to end on 2 cores; benchmarks/track_speed.py).
        providers: ONNX Runtime execution providers, in order of preference.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        layout: str = AUTO,
        classes: Sequence[int] | int | None = (0,),
        score_threshold: float = 0.3,
        nms_threshold: float = 0.45,
        agnostic_nms: bool = False,
        max_detections: int = 300,
        input_size: Sequence[int] | None = None,
        strides: Sequence[int] = DEFAULT_STRIDES,
        rgb: bool | None = None,
        unit_scale: bool | None = None,
        center: bool | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        allow_spinning: bool = False,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        import onnxruntime as ort

        if model_path is None:
            raise ReidsortError("detector=yolo_onnx needs detector.model_path=<model.onnx>")
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ReidsortError(f"detector model not found: {self.model_path}")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 < nms_threshold <= 1.0:
            raise ReidsortError(f"detector thresholds out of range: score_threshold="
                                f"{score_threshold} (0..1), nms_threshold={nms_threshold} (0..1]")
        self.classes = class_list(classes)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.agnostic_nms = bool(agnostic_nms)
        self.max_detections = int(max_detections)
        self.strides = tuple(int(s) for s in strides)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.add_session_config_entry(SPINNING_KEY, "1" if allow_spinning else "0")
        try:
            self.session = ort.InferenceSession(str(self.model_path), options,
                                                providers=list(providers))
        except Exception as error:  # onnxruntime raises its own exception types
            raise ReidsortError(f"ONNX Runtime cannot load {self.model_path}: "
                                f"{str(error).splitlines()[0]}") from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_hw = self._input_size(model_input.shape, input_size)
        batch_dim = model_input.shape[0]
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self.batch_size = self.fixed_batch or max(1, int(batch_size))

        # one dry run tells the real output shape (exports often leave dimensions symbolic)
        probe = np.zeros((self.fixed_batch or 1, 3, *self.input_hw), dtype=np.float32)
        shape = tuple(int(d) for d in self._run(probe).shape)
        explicit = parse_layout(layout)
        self.layout = explicit or infer_layout(shape, self.input_hw, self.strides,
                                               self.model_path.name)
        self.num_classes = _check_layout(self.layout, shape, self.input_hw, self.strides,
                                         self.model_path.name)
        if self.classes is not None and max(self.classes) >= self.num_classes:
            raise ReidsortError(f"detector.classes {list(self.classes)}: the model has only "
                                f"{self.num_classes} classes")
        family = CONVENTIONS[self.layout]
        self.convention = InputConvention(
            rgb=family.rgb if rgb is None else bool(rgb),
            unit_scale=family.unit_scale if unit_scale is None else bool(unit_scale),
            center=family.center if center is None else bool(center),
        )
        self._class_index = (np.arange(self.num_classes) if self.classes is None
                             else np.asarray(self.classes, dtype=np.int64))
        if self.layout is YoloLayout.YOLOX:
            self._grid_xy, self._grid_strides = yolox_grid(self.input_hw, self.strides)
        log.info("YOLO detector %s: layout %s, input %dx%d, %d classes", self.model_path.name,
                 self.layout.value, *self.input_hw, self.num_classes)

    # -- model I/O ---------------------------------------------------------------------------
    def _input_size(self, shape, configured) -> tuple[int, int]:
        dims = shape[2:4] if len(shape) == 4 else [None, None]
        fixed = all(isinstance(d, int) and d > 0 for d in dims)
        if configured is not None:
            wanted = (int(configured[0]), int(configured[1]))
            if fixed and tuple(dims) != wanted:
                raise ReidsortError(f"detector.input_size {list(wanted)} contradicts the "
                                    f"model's fixed input {list(dims)} ({self.model_path.name})")
            return wanted
        return (int(dims[0]), int(dims[1])) if fixed else DEFAULT_INPUT_SIZE

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray,
                                                                list[LetterboxTransform]]:
        """Letterbox a batch of BGR images into the model's float32 NCHW input."""
        padded, transforms = [], []
        for image in images:
            boxed, transform = letterbox(image, self.input_hw, center=self.convention.center)
            padded.append(boxed)
            transforms.append(transform)
        pixels = np.stack(padded)
        if self.convention.rgb:
            pixels = pixels[..., ::-1]
        # one strided pass into a C-contiguous NCHW float buffer (astype of the transposed view
        # followed by a contiguous copy took 5x longer: 1.5 vs 0.3 ms per 416x416 frame)
        batch = np.empty((len(padded), 3, *self.input_hw), dtype=np.float32)
        batch[...] = pixels.transpose(0, 3, 1, 2)
        if self.convention.unit_scale:
            batch *= np.float32(1.0 / 255.0)
        return batch, transforms

    def detect_images(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start:start + self.batch_size])
            batch, transforms = self.preprocess(chunk)
            if self.fixed_batch and len(chunk) < self.fixed_batch:  # pad a fixed-size batch
                filler = np.zeros((self.fixed_batch - len(chunk), *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, filler])
            output = self._run(batch)
            results.extend(self.postprocess(output[i], transforms[i]) for i in range(len(chunk)))
        return results

    # -- decoding ----------------------------------------------------------------------------
    def postprocess(self, output: np.ndarray, transform: LetterboxTransform) -> Detections:
        """One image's raw output -> thresholded, NMS-filtered detections in image pixels."""
        if self.layout is YoloLayout.YOLOV8:
            table = output.T  # (A, 4 + C)
            cells = np.arange(len(table))
            class_scores = table[:, BOX_COLUMNS:][:, self._class_index]
        else:
            objectness = output[:, OBJECTNESS_COLUMN]
            # a score never exceeds its objectness: cheap pre-filter before the class products
            cells = np.flatnonzero(objectness >= self.score_threshold)
            table = output[cells]
            class_scores = (table[:, OBJECTNESS_COLUMN + 1:][:, self._class_index]
                            * table[:, OBJECTNESS_COLUMN, None])
        if len(cells) == 0:
            return Detections.empty()
        best = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(best)), best].astype(np.float64)
        keep = np.flatnonzero(scores >= self.score_threshold)
        if len(keep) > MAX_NMS_CANDIDATES:
            keep = keep[np.argsort(-scores[keep], kind="stable")[:MAX_NMS_CANDIDATES]]
        if len(keep) == 0:
            return Detections.empty()
        cells, scores, best = cells[keep], scores[keep], best[keep]
        boxes = table[keep, :BOX_COLUMNS]
        if self.layout is YoloLayout.YOLOX:
            boxes = decode_yolox(boxes, self._grid_xy[cells], self._grid_strides[cells])
        boxes = boxes.astype(np.float64)
        xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2],
                              axis=1)
        class_ids = self._class_index[best]
        kept = nms_xyxy(xyxy, scores, self.nms_threshold,
                        None if self.agnostic_nms else class_ids, self.max_detections)
        return Detections(transform.to_image(xyxy[kept]), scores[kept], class_ids[kept])
