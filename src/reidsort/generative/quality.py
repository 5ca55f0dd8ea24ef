"""Sample quality: Fréchet (FID) and kernel (KID) distances between feature sets.

Inception-v3 weights cannot be downloaded here, so the features come from a network we have
offline (:func:`build_feature_network`):

* ``mobilenet_v2``: the ImageNet MobileNetV2 of ``../shared/data/models/mobilenetv2_imagenet.pt``
  (torchvision's ``features`` trunk, globally average-pooled 1280-d features at ImageNet
  normalisation): generic visual statistics, like Inception's pool3 features;
* ``reid``: the retrieval embedding of a trained ``task=train`` checkpoint: statistics of what a
  Re-ID model sees in a person (identity cues rather than ImageNet objects).

Numbers are comparable only for the same feature network, input size and sample counts: FID is
biased upwards at small sample counts (more so with fewer samples than feature dimensions), KID
is unbiased (Bińkowski et al. 2018), so prefer KID when few samples are affordable.

* FID (Heusel et al. 2017): ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` of the two
  feature Gaussians, in float64, unbiased covariances, ``scipy.linalg.sqrtm``.
* KID: the unbiased MMD^2 with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``,
  averaged over random equal-size subsets of both sets (mean and population std over subsets).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from reidsort.utils.errors import ReidsortError

log = logging.getLogger(__name__)

#: added to both covariance diagonals when their product has no finite square root
#: (singular covariances, e.g. fewer samples than feature dimensions)
SQRTM_DIAGONAL_OFFSET = 1e-6
#: imaginary parts of the matrix square root above this (relative to its largest real
#: entry) mean numerical trouble and are reported; below it they are rounding noise
IMAGINARY_TOLERANCE = 1e-3
#: the polynomial kernel of KID: (gamma x.y + coef)^degree with gamma = 1 / dimension
KID_DEGREE = 3
KID_COEF = 1.0
#: up to this many samples per set, KID kernels are computed once for all pairs (5000 real
#: images: a 200 MB float64 matrix) and the subsets index into them
MAX_GRAM_ROWS = 5000
#: torchvision MobileNetV2 trunk without the ImageNet stride change of Re-ID backbones
IMAGENET_LAST_STRIDE = 2


class FeatureKind(str, Enum):
    MOBILENET_V2 = "mobilenet_v2"
    REID = "reid"


class FeatureNetwork(nn.Module):
    """GAN images in [-1, 1] ``(B, 3, H, W)`` -> ``(B, D)`` float features of a frozen network:
    mapped to [0, 1], resized to ``input_size`` (antialiased bilinear), normalised by
    ``mean`` / ``std``, then ``net``."""

    def __init__(self, net: nn.Module, input_size: Sequence[int], name: str,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.net = net.eval()
        self.net.requires_grad_(False)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.name = name
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> FeatureNetwork:
        # frozen: BatchNorm keeps its running statistics whatever the Trainer sets
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        unit = (images.float().clamp(-1.0, 1.0) + 1.0) / 2.0
        if tuple(unit.shape[-2:]) != self.input_size:
            unit = F.interpolate(unit, size=self.input_size, mode="bilinear",
                                 align_corners=False, antialias=True)
        return self.net((unit - self.mean) / self.std).float().flatten(1)


def build_feature_network(kind: str, weights: str | None,
                          input_size: Sequence[int] | None = None) -> FeatureNetwork:
    """The feature network of ``gan.quality``: ``mobilenet_v2`` with an ImageNet state-dict
    file (torchvision or tonylins layout) at ``input_size``, or ``reid`` with a ``task=train``
    checkpoint (at its training input size unless ``input_size`` is given). A random-init
    network is no option: its features collapse (~1e-10 through eval-mode BatchNorm)."""
    values = tuple(k.value for k in FeatureKind)
    if kind not in values:
        raise ValueError(f"gan.quality.network={kind!r}: expected one of {', '.join(values)}")
    what = "an ImageNet MobileNetV2 state dict" if kind == FeatureKind.MOBILENET_V2.value \
        else "a task=train checkpoint"
    if weights in (None, ""):
        raise ReidsortError(f"gan.quality.network={kind} needs gan.quality.weights=<{what}> "
                            "(or gan.quality.every_n_epochs=0 to train without FID / KID)")
    if not Path(weights).is_file():
        raise ReidsortError(f"gan.quality.weights={weights}: file not found (pass {what}, or "
                            "gan.quality.every_n_epochs=0 to train without FID / KID)")
    if kind == FeatureKind.MOBILENET_V2.value:
        from reidsort.reid.backbones.torchvision_nets import build_torchvision_backbone

        if input_size is None:
            raise ValueError("gan.quality.input_size is not set: [height, width] the "
                             "MobileNetV2 sees (e.g. [256, 128])")
        net = build_torchvision_backbone("mobilenet_v2", weights=weights,
                                         last_stride=IMAGENET_LAST_STRIDE)
        return FeatureNetwork(net, input_size, name="mobilenet_v2")
    from reidsort.export.model import load_checkpoint_net

    loaded = load_checkpoint_net(weights, input_size)
    meta = loaded.metadata
    if meta.channel_order != "RGB":
        raise ReidsortError(f"{weights}: expects {meta.channel_order} input; only RGB models "
                            "can score GAN samples")
    return FeatureNetwork(loaded.net, meta.input_size, name=f"reid:{Path(weights).name}",
                          mean=meta.mean, std=meta.std)


@torch.no_grad()
def extract_features(network: nn.Module, batches: Iterable[Tensor | Sequence[Tensor]],
                     device: torch.device | str = "cpu") -> np.ndarray:
    """``(N, D)`` float64 features of every image of ``batches`` (tensors in [-1, 1], or
    data-loader tuples whose first item is the images)."""
    parts = []
    for batch in batches:
        images = batch if isinstance(batch, Tensor) else batch[0]
        parts.append(network(images.to(device)).double().cpu().numpy())
    if not parts:
        raise ValueError("no images to extract features from")
    return np.concatenate(parts)


def _check_features(features: np.ndarray, name: str, minimum: int = 2) -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or len(array) < minimum:
        raise ValueError(f"{name}: expected ({minimum}+, D) features, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: features contain NaN or inf")
    return array


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (``N - 1``) of ``(N, D)`` features, float64."""
    array = _check_features(features, "features")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # a singular product (fewer samples than dimensions) is expected; what matters is whether
    # the root is finite and nearly real, which the caller checks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(matrix)
    return np.asarray(root[0] if isinstance(root, tuple) else root)


def frechet_distance_from_statistics(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                                     sigma2: np.ndarray) -> float:
    """FID of two Gaussians (float64)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature statistics of other sizes: {mu1.shape} vs {mu2.shape}")
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * SQRTM_DIAGONAL_OFFSET
        log.warning("FID: singular covariance product; adding %g to the diagonals",
                    SQRTM_DIAGONAL_OFFSET)
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        scale = max(float(np.abs(covmean.real).max()), np.finfo(np.float64).tiny)
        imaginary = float(np.abs(covmean.imag).max())
        if imaginary > IMAGINARY_TOLERANCE * scale:
            log.warning("FID: matrix square root has imaginary parts up to %.3g (of %.3g); "
                        "taking the real part (more samples make the covariances better "
                        "conditioned)", imaginary, scale)
        covmean = covmean.real
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(value)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two ``(N, D)`` feature sets."""
    _check_features(fake, "fake features")
    return frechet_distance_from_statistics(*gaussian_statistics(real),
                                            *gaussian_statistics(fake))


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The KID kernel ``(a.b / d + 1)^3`` between the rows of ``a`` and ``b``."""
    return (a @ b.T / a.shape[1] + KID_COEF) ** KID_DEGREE


def _mmd2_from_kernels(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    m = len(k_xx)
    # the diagonals k(x_i, x_i) are left out: that is what makes the estimate unbiased
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size sets with the KID kernel ``(x.y / d + 1)^3``."""
    if x.shape != y.shape:
        raise ValueError(f"MMD subsets of other shapes: {x.shape} vs {y.shape}")
    return _mmd2_from_kernels(polynomial_kernel(x, x), polynomial_kernel(y, y),
                              polynomial_kernel(x, y))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0,
                              real_kernel: np.ndarray | None = None) -> tuple[float, float]:
    """KID: mean and (population) std of :func:`polynomial_mmd2` over ``subsets`` random
    subsets of ``min(subset_size, len(real), len(fake))`` images of each set.

    With both sets at most :data:`MAX_GRAM_ROWS` long the kernels are computed once for all
    pairs and every subset indexes into them (``real_kernel``: the real set's, cached by the
    caller), which is what makes 100 subsets cheap; the subsets and the scores are the same
    either way."""
    real = _check_features(real, "real features")
    fake = _check_features(fake, "fake features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sets of other widths: {real.shape[1]} vs {fake.shape[1]}")
    if int(subsets) < 1:
        raise ValueError(f"KID subsets={subsets}: must be >= 1")
    size = min(int(subset_size), len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID subset_size={subset_size}: must be >= 2")
    rng = np.random.default_rng(seed)
    draws = [(rng.choice(len(real), size, replace=False),
              rng.choice(len(fake), size, replace=False)) for _ in range(int(subsets))]
    if max(len(real), len(fake)) > MAX_GRAM_ROWS:
        scores = [polynomial_mmd2(real[r], fake[f]) for r, f in draws]
    else:
        k_rr = real_kernel if real_kernel is not None else polynomial_kernel(real, real)
        k_ff, k_rf = polynomial_kernel(fake, fake), polynomial_kernel(real, fake)
        scores = [_mmd2_from_kernels(k_rr[np.ix_(r, r)], k_ff[np.ix_(f, f)], k_rf[np.ix_(r, f)])
                  for r, f in draws]
    return float(np.mean(scores)), float(np.std(scores))


@dataclass(frozen=True)
class QualityScores:
    fid: float
    kid: float
    kid_std: float
    num_real: int
    num_fake: int


@dataclass(frozen=True)
class RealReference:
    """The real images' features with what every measurement reuses: their Gaussian and, for
    sets of at most :data:`MAX_GRAM_ROWS`, their KID kernel matrix."""

    features: np.ndarray
    mean: np.ndarray
    covariance: np.ndarray
    kernel: np.ndarray | None

    @classmethod
    def from_features(cls, features: np.ndarray) -> RealReference:
        array = _check_features(features, "real features")
        mean, covariance = gaussian_statistics(array)
        kernel = polynomial_kernel(array, array) if len(array) <= MAX_GRAM_ROWS else None
        return cls(array, mean, covariance, kernel)


def quality_scores(real: RealReference | np.ndarray, fake: np.ndarray, kid_subsets: int = 100,
                   kid_subset_size: int = 1000, seed: int = 0) -> QualityScores:
    """FID and KID of ``fake`` against ``real`` (features, or their cached reference)."""
    reference = real if isinstance(real, RealReference) else RealReference.from_features(real)
    fid = frechet_distance_from_statistics(reference.mean, reference.covariance,
                                           *gaussian_statistics(fake))
    kid, kid_std = kernel_inception_distance(reference.features, fake, kid_subsets,
                                             kid_subset_size, seed, reference.kernel)
    return QualityScores(fid, kid, kid_std, len(reference.features), len(fake))


__all__ = ["FeatureKind", "FeatureNetwork", "QualityScores", "RealReference",
           "build_feature_network", "extract_features", "frechet_distance",
           "frechet_distance_from_statistics", "gaussian_statistics",
           "kernel_inception_distance", "polynomial_kernel", "polynomial_mmd2",
           "quality_scores"]
