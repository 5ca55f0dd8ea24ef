"""Appearance embedders for the tracker: ``embed(frame_bgr, boxes_xyxy) -> (N, D)`` float32.

Config group ``conf/embedder/``: ``onnx`` (ONNX Runtime, torch-free), ``torch`` (a Lightning
checkpoint), ``histogram`` (colour histograms, no model). ``hydra.utils.instantiate(cfg.embedder)``
or :func:`build_embedder` builds one. Submodules are imported lazily: importing this package (or
``reidsort.embedders.onnx``) never imports torch.
"""

from __future__ import annotations

from typing import Any

from reidsort.embedders.base import Embedder, clip_boxes_xyxy, crop_boxes, l2_normalize_rows
from reidsort.utils.errors import USER_ERROR_TYPES, ReidsortError


def build_embedder(cfg: Any) -> Embedder:
    """Instantiate an embedder config (``_target_`` + arguments); the result is checked.

    Unlike a bare ``hydra.utils.instantiate``, a user error inside the constructor (missing model
    file, bad metadata, ...) comes out as itself, not wrapped in Hydra's InstantiationException,
    so the CLI reports it as one line.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        embedder = instantiate(cfg)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, (ReidsortError, *USER_ERROR_TYPES)):
            raise exc.__cause__ from None
        raise
    if not isinstance(embedder, Embedder):
        raise TypeError(f"{type(embedder).__name__} does not implement the Embedder interface")
    return embedder


__all__ = ["Embedder", "build_embedder", "clip_boxes_xyxy", "crop_boxes", "l2_normalize_rows"]
