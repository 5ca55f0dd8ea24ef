"""Check an exported model against PyTorch on the same batch of real-looking person crops.

The crops come from the synthetic person renderer (people with clothes, hair, bags, camera
colour casts, blur and noise, at varied sizes) and go through the project's one preprocessing,
so the check exercises the inputs a tracker will feed. The candidate runtime is run at the full
batch and at batch 1 (the dynamic batch axis); every feature row is compared with PyTorch's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reidsort.data.preprocess import PreprocessSpec, preprocess_crops
from reidsort.data.synthetic import CameraStyle, PersonAppearance, render_person_crop
from reidsort.utils.errors import ReidsortError

#: The issue's bar: an export whose features are less similar than this to PyTorch's fails.
DEFAULT_MIN_COSINE = 0.9999
#: Crops in the verification batch.
DEFAULT_NUM_CROPS = 16
#: Crop heights drawn for verification (pixels); width is height / aspect.
CROP_HEIGHT_RANGE = (64, 320)
CROP_ASPECT_RANGE = (1.8, 3.2)
#: Cameras the verification crops are spread over.
NUM_CAMERAS = 4

Features = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Verification:
    """How close a runtime's features are to PyTorch's on the verification crops."""

    max_abs_diff: float
    min_cosine: float
    num_crops: int

    def summary(self) -> str:
        return (f"max |diff| {self.max_abs_diff:.3g}, min cosine {self.min_cosine:.7f} "
                f"over {self.num_crops} crops")


def verification_crops(num_crops: int = DEFAULT_NUM_CROPS, seed: int = 0) -> list[np.ndarray]:
    """``num_crops`` BGR uint8 person crops of varied sizes, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    cameras = [CameraStyle.sample(camera, seed=seed) for camera in range(NUM_CAMERAS)]
    crops = []
    for index in range(num_crops):
        height = int(rng.integers(*CROP_HEIGHT_RANGE))
        width = max(8, int(round(height / rng.uniform(*CROP_ASPECT_RANGE))))
        appearance = PersonAppearance.sample(index, seed=seed)
        crops.append(render_person_crop(appearance, cameras[index % NUM_CAMERAS], rng,
                                        height=height, width=width))
    return crops


def verification_batch(spec: PreprocessSpec, num_crops: int = DEFAULT_NUM_CROPS,
                       seed: int = 0) -> np.ndarray:
    """The preprocessed (N, 3, H, W) float32 verification batch for a model with ``spec``."""
    return preprocess_crops(verification_crops(num_crops, seed), spec, input_order="BGR")


def compare_features(reference: np.ndarray, candidate: np.ndarray) -> Verification:
    """Row-wise comparison of two (N, D) feature arrays."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        raise ReidsortError(f"exported model returns features of shape {candidate.shape}, "
                            f"PyTorch {reference.shape}")
    if not np.all(np.isfinite(candidate)):
        return Verification(float("inf"), float("-inf"), len(reference))
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosine = np.sum(reference * candidate, axis=1) / np.maximum(norms, 1e-30)
    return Verification(
        max_abs_diff=float(np.abs(reference - candidate).max(initial=0.0)),
        min_cosine=float(cosine.min(initial=1.0)),
        num_crops=len(reference),
    )


def verify_runtime(
    reference: Features,
    candidate: Features,
    batch: np.ndarray,
    min_cosine: float = DEFAULT_MIN_COSINE,
    what: str = "exported model",
) -> Verification:
    """Compare ``candidate(batch)`` (and at batch 1) with ``reference(batch)``.

    Raises ReidsortError when the minimum cosine similarity is below ``min_cosine``.
    """
    expected = reference(batch)
    full = compare_features(expected, candidate(batch))
    single = compare_features(expected[:1], candidate(batch[:1]))
    result = Verification(
        max_abs_diff=max(full.max_abs_diff, single.max_abs_diff),
        min_cosine=min(full.min_cosine, single.min_cosine),
        num_crops=full.num_crops,
    )
    if not result.min_cosine >= min_cosine:
        raise ReidsortError(
            f"{what} differs from PyTorch: {result.summary()} (needs min cosine >= {min_cosine})"
        )
    return result
