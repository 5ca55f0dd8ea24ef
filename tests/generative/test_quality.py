"""FID and KID against torchmetrics on the same features, their known values, and the offline
feature networks (the shared ImageNet MobileNetV2, a task=train checkpoint)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from reidsort.generative.quality import (
    FeatureNetwork,
    build_feature_network,
    extract_features,
    frechet_distance,
    kernel_inception_distance,
    polynomial_mmd2,
)
from reidsort.utils.errors import ReidsortError

DIM = 8


class GivenFeatures(nn.Module):
    """torchmetrics' feature extractor slot, fed features directly (so both sides score the
    very same vectors)."""

    num_features = DIM

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _sets(n_real: int = 300, n_fake: int = 260, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(DIM, DIM))
    real = rng.normal(size=(n_real, DIM)) @ mixing
    fake = rng.normal(size=(n_fake, DIM)) @ (mixing * 0.7) + 0.5
    return real, fake


def test_fid_matches_torchmetrics_on_the_same_features():
    real, fake = _sets()
    metric = FrechetInceptionDistance(feature=GivenFeatures())
    metric.update(torch.from_numpy(real).float(), real=True)
    metric.update(torch.from_numpy(fake).float(), real=False)
    expected = float(metric.compute())
    ours = frechet_distance(real.astype(np.float32), fake.astype(np.float32))
    assert ours == pytest.approx(expected, rel=1e-4)
    assert ours > 1.0


def test_fid_of_a_set_with_itself_is_zero_and_a_mean_shift_adds_its_square():
    real, _ = _sets()
    assert abs(frechet_distance(real, real)) < 1e-6
    shift = np.zeros(DIM)
    shift[:3] = [1.0, -2.0, 0.5]
    # same covariance: the trace term vanishes, FID = ||shift||^2 exactly
    assert frechet_distance(real, real + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_fid_of_two_known_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20000, 2))
    b = rng.normal(size=(20000, 2)) * 2.0 + np.array([3.0, 0.0])
    # ||mu||^2 + sum (s1 + s2 - 2 sqrt(s1 s2)) = 9 + 2 * (1 + 4 - 4)
    assert frechet_distance(a, b) == pytest.approx(11.0, rel=0.03)


def test_kid_matches_torchmetrics_with_one_subset_of_every_sample():
    real, fake = _sets(200, 200)
    metric = KernelInceptionDistance(feature=GivenFeatures(), subsets=1, subset_size=200)
    metric.update(torch.from_numpy(real).double(), real=True)
    metric.update(torch.from_numpy(fake).double(), real=False)
    expected_mean, _ = metric.compute()
    mean, std = kernel_inception_distance(real, fake, subsets=1, subset_size=200)
    assert mean == pytest.approx(float(expected_mean), rel=1e-6)
    assert std == 0.0


def test_kid_over_subsets_agrees_with_torchmetrics_statistically():
    real, fake = _sets(400, 400, seed=3)
    torch.manual_seed(0)
    metric = KernelInceptionDistance(feature=GivenFeatures(), subsets=40, subset_size=100)
    metric.update(torch.from_numpy(real).double(), real=True)
    metric.update(torch.from_numpy(fake).double(), real=False)
    their_mean, their_std = (float(v) for v in metric.compute())
    mean, std = kernel_inception_distance(real, fake, subsets=40, subset_size=100, seed=0)
    # different random subsets of the same sets: the means agree within the subset spread
    assert abs(mean - their_mean) < 2 * max(std, their_std) / np.sqrt(40) * 3
    assert std == pytest.approx(their_std, rel=0.5)
    assert mean > 0


def test_kid_is_unbiased_near_zero_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(300, DIM)), rng.normal(size=(300, DIM))
    mean, std = kernel_inception_distance(a, b, subsets=20, subset_size=150, seed=1)
    shifted, _ = kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=150, seed=1)
    assert abs(mean) < 3 * std + 1e-3
    assert shifted > 10 * abs(mean)


def test_cached_kernels_give_the_per_subset_scores(monkeypatch):
    from reidsort.generative import quality

    real, fake = _sets(120, 90, seed=7)
    reference = quality.RealReference.from_features(real)
    assert reference.kernel is not None and reference.kernel.shape == (120, 120)
    cached = quality.quality_scores(reference, fake, kid_subsets=7, kid_subset_size=50, seed=2)
    monkeypatch.setattr(quality, "MAX_GRAM_ROWS", 10)  # forces the per-subset computation
    direct = quality.kernel_inception_distance(real, fake, 7, 50, seed=2)
    assert (cached.kid, cached.kid_std) == pytest.approx(direct, rel=1e-10)
    assert cached.fid == pytest.approx(frechet_distance(real, fake), rel=1e-10)
    assert (cached.num_real, cached.num_fake) == (120, 90)


def test_polynomial_mmd_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 1.0], [0.0, 0.0]])
    # k = (x.y / 2 + 1)^3; xx off-diagonal: (0 + 1)^3 = 1 (twice); yy off-diagonal: 1 (twice);
    # xy: (1.5^3, 1, 1.5^3, 1)
    expected = (2 + 2) / 2 - 2 * (2 * 1.5 ** 3 + 2) / 4
    assert polynomial_mmd2(x, y) == pytest.approx(expected)


def test_bad_feature_sets_are_one_line_errors():
    with pytest.raises(ValueError, match="features"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        kernel_inception_distance(np.full((4, 2), np.nan), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="network"):
        build_feature_network("inception", None)
    with pytest.raises(ReidsortError, match="needs gan.quality.weights"):
        build_feature_network("mobilenet_v2", None, [64, 32])
    with pytest.raises(ReidsortError, match="not found"):
        build_feature_network("mobilenet_v2", "/nonexistent/weights.pt", [64, 32])


def test_feature_network_resizes_and_normalises_gan_images():
    seen = {}

    class Probe(nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x.mean(dim=(2, 3))

    network = FeatureNetwork(Probe(), [32, 16], "probe", mean=(0.5, 0.5, 0.5),
                             std=(0.5, 0.5, 0.5))
    images = torch.full((2, 3, 16, 8), 0.2)
    features = network(images)
    assert seen["x"].shape == (2, 3, 32, 16)
    # [-1, 1] -> [0, 1] -> (v - 0.5) / 0.5 is the identity on the GAN range
    assert torch.allclose(features, torch.full((2, 3), 0.2), atol=1e-6)
    network.train()
    assert not network.net.training


def test_the_shared_imagenet_mobilenet_scores_people(shared_data):
    weights = shared_data / "models" / "mobilenetv2_imagenet.pt"
    network = build_feature_network("mobilenet_v2", str(weights), [128, 64])
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(24, 3, 64, 32, generator=generator) * 2 - 1
    smooth = torch.nn.functional.avg_pool2d(noise, 5, stride=1, padding=2)
    a, b = extract_features(network, [noise[:12]]), extract_features(network, [noise[12:]])
    c = extract_features(network, [smooth[:12]])
    assert a.shape == (12, 1280) and (a >= 0).all()  # pooled ReLU6 features
    # noise vs noise is closer than noise vs blurred noise
    assert frechet_distance(a, b) < frechet_distance(a, c)


def test_a_reid_checkpoint_gives_its_l2_normalised_embedding(tmp_path):
    from tiny_models import tiny_module, write_checkpoint

    from reidsort.export.model import load_checkpoint_net

    ckpt = write_checkpoint(tiny_module(), tmp_path / "reid" / "last.ckpt")
    network = build_feature_network("reid", str(ckpt))
    assert network.input_size == (64, 32) and network.name == "reid:last.ckpt"
    images = torch.rand(3, 3, 32, 16) * 2 - 1
    features = extract_features(network, [images])
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    # the same as the checkpoint's inference network on the resized, ImageNet-normalised input
    reference = load_checkpoint_net(ckpt).net
    unit = torch.nn.functional.interpolate((images + 1) / 2, size=(64, 32), mode="bilinear",
                                           align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference((unit - mean) / std).double().numpy()
    assert np.allclose(features, expected, atol=1e-5)
    with pytest.raises(ReidsortError, match="needs gan.quality.weights"):
        build_feature_network("reid", None)
