"""torchvision detection models (Faster R-CNN, RetinaNet, SSD/SSDlite, Mask R-CNN) with a local
weights file; Mask R-CNN's instance masks are kept (and drawn on the video).

Nothing is downloaded: the model is built without pretrained weights and ``weights_path`` (a
torchvision state dict such as ``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``, or a checkpoint
holding one under ``state_dict``/``model``) is loaded with strict key and shape checks.
torchvision's COCO models number classes from 1 (person = 1, 0 = background).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidsort.detection.base import Detections, PixelDetector, class_list, keep_classes
from reidsort.utils.errors import ReidsortError

#: Architectures by torchvision builder name.
ARCHITECTURES: tuple[str, ...] = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
)
#: torchvision's COCO label space: 90 category ids + background.
COCO_NUM_CLASSES = 91
COCO_PERSON = 1
#: Keys under which training checkpoints commonly nest the model's state dict.
NESTED_STATE_KEYS = ("state_dict", "model", "model_state_dict")


def _state_dict(path: Path) -> dict:
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise ReidsortError(f"cannot load detector weights {path}: "
                            f"{str(error).splitlines()[0]}") from None
    for key in NESTED_STATE_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict):
        raise ReidsortError(f"{path} holds no state dict")
    return loaded


class TorchvisionDetector(PixelDetector):
    """A torchvision detection model.

    Args:
        architecture: one of :data:`ARCHITECTURES`.
        weights_path: local state dict (required: nothing is downloaded).
        num_classes: size of the model's label space (91 for torchvision's COCO weights).
        classes: labels to keep (COCO person = 1); None keeps all.
        score_threshold: minimum score (also passed to the model's own post-processing).
        mask_threshold: mask probability above which a pixel belongs to the instance.
        device: ``cpu`` or ``cuda``.
        batch_size: frames per forward pass.
        model_kwargs: extra keyword arguments of the builder (``min_size``, ``max_size``,
            ``box_nms_thresh``, ...).
    """

    def __init__(self, architecture: str = "fasterrcnn_resnet50_fpn",
                 weights_path: str | os.PathLike | None = None,
                 num_classes: int = COCO_NUM_CLASSES,
                 classes: Sequence[int] | int | None = (COCO_PERSON,),
                 score_threshold: float = 0.5, mask_threshold: float = 0.5,
                 device: str = "cpu", batch_size: int = 4,
                 model_kwargs: dict | None = None) -> None:
        import torch
        import torchvision.models.detection as detection

        if architecture not in ARCHITECTURES:
            raise ReidsortError(f"unknown torchvision detector {architecture!r}; choose from "
                                f"{', '.join(ARCHITECTURES)}")
        if weights_path is None:
            raise ReidsortError(
                f"detector=torchvision needs detector.weights_path (a local {architecture} "
                "state dict); nothing is downloaded"
            )
        path = Path(weights_path)
        if not path.is_file():
            raise ReidsortError(f"detector weights not found: {path}")
        kwargs = dict(model_kwargs or {})
        # the model's own filter: box_score_thresh (R-CNNs) or score_thresh (RetinaNet, SSD)
        score_key = "box_score_thresh" if "rcnn" in architecture else "score_thresh"
        kwargs.setdefault(score_key, float(score_threshold))
        builder = getattr(detection, architecture)
        model = builder(weights=None, weights_backbone=None, num_classes=int(num_classes),
                        **kwargs)
        state = _state_dict(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            first = str(error).splitlines()
            raise ReidsortError(f"{path} does not fit {architecture} with {num_classes} classes: "
                                f"{' '.join(first[:2])}") from None
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.architecture = architecture
        self.classes = class_list(classes)
        self.score_threshold = float(score_threshold)
        self.mask_threshold = float(mask_threshold)
        self.batch_size = max(1, int(batch_size))
        self.produces_masks = architecture.startswith("maskrcnn")

    def detect_images(self, images: Sequence[np.ndarray]) -> list[Detections]:
        import torch

        results: list[Detections] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                tensors = [
                    torch.from_numpy(np.ascontiguousarray(image[..., ::-1]))
                    .to(self.device).permute(2, 0, 1).float().div_(255.0)
                    for image in chunk
                ]
                for output in self.model(tensors):
                    results.append(self._to_detections(output))
        return results

    def _to_detections(self, output: dict) -> Detections:
        scores = output["scores"].cpu().numpy().astype(np.float64)
        labels = output["labels"].cpu().numpy().astype(np.int64)
        keep = (scores >= self.score_threshold) & keep_classes(labels, self.classes)
        boxes = output["boxes"].cpu().numpy().astype(np.float64)[keep]
        masks = None
        if "masks" in output:
            masks = (output["masks"][:, 0] > self.mask_threshold).cpu().numpy()[keep]
        return Detections(boxes, scores[keep], labels[keep], masks)
