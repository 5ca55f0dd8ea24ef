"""The GAN objectives.

- DCGAN (Goodfellow et al. 2014, non-saturating form; Radford et al. 2016): the discriminator
  minimises BCE with target ``real_label`` on real images (one-sided label smoothing, Salimans
  et al. 2016: 0.9, never on fakes) and 0 on fakes; the generator minimises BCE of its fakes
  against target 1. "Fakes should be called real" is the generator's objective only.
- WGAN-GP (Gulrajani et al. 2017): the critic minimises ``mean D(fake) - mean D(real)`` plus
  ``gp_weight * mean((||grad D(x_hat)||_2 - 1)^2)`` at random interpolates ``x_hat``; the
  generator minimises ``-mean D(fake)``.
- VAE-GAN (Larsen et al. 2016): the KL divergence of q(z|x) = N(mu, sigma^2) from N(0, I) and the
  reconstruction error measured in a discriminator feature layer instead of pixels. Both are
  averaged per dimension (KL per latent dimension, squared error per feature), so their scale
  does not grow with ``latent_dim`` or the feature width; ``kl_weight`` / ``recon_weight`` set
  the balance (Larsen sum them, which is the same up to those weights).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

#: Salimans et al. 2016: real images' target 0.9 (fakes' stays 0)
REAL_LABEL = 0.9
FAKE_LABEL = 0.0
#: what the generator wants the discriminator to say about its fakes
GENERATOR_TARGET = 1.0
#: Gulrajani et al. 2017: lambda = 10
GP_WEIGHT = 10.0
#: the gradient norm a 1-Lipschitz critic should have along the interpolates
GP_TARGET_NORM = 1.0


def _bce(logits: Tensor, target: float) -> Tensor:
    """Mean BCE-with-logits against a constant target (in float32 under autocast)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def bce_discriminator_loss(real_logits: Tensor, fake_logits: Tensor,
                           real_label: float = REAL_LABEL) -> Tensor:
    """DCGAN discriminator loss: real images -> ``real_label``, fakes -> 0 (summed, as in
    DCGAN's ``errD_real + errD_fake``)."""
    if not 0.0 < real_label <= 1.0:
        raise ValueError(f"real_label={real_label}: expected in (0, 1] (0.9 = one-sided "
                         "label smoothing)")
    return _bce(real_logits, real_label) + _bce(fake_logits, FAKE_LABEL)


def bce_generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss: its fakes against target 1 (no smoothing)."""
    return _bce(fake_logits, GENERATOR_TARGET)


def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``mean D(fake) - mean D(real)``: minimising it maximises the Wasserstein estimate."""
    return fake_scores.float().mean() - real_scores.float().mean()


def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    return -fake_scores.float().mean()


def interpolate(real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor:
    """``eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per sample (given: its
    shape broadcasts, e.g. (B, 1, 1, 1))."""
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    if eps is None:
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device,
                         dtype=real.dtype)
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     weight: float = GP_WEIGHT, eps: Tensor | None = None) -> Tensor:
    """``weight * mean((||grad_x D(x_hat)||_2 - 1)^2)`` over interpolates ``x_hat`` (one norm
    per sample, over all its pixels). ``create_graph=True``: the penalty is itself
    differentiated with respect to the critic's parameters."""
    x_hat = interpolate(real.detach(), fake.detach(), eps).requires_grad_(True)
    scores = critic(x_hat)
    (gradients,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = gradients.float().flatten(1).norm(2, dim=1)
    return weight * ((norms - GP_TARGET_NORM) ** 2).mean()


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per latent dimension, averaged over dimensions and the
    batch: ``0.5 * (mu^2 + sigma^2 - 1 - log sigma^2)``."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()


def feature_matching_loss(fake_features: Tensor, real_features: Tensor) -> Tensor:
    """Mean squared error between discriminator features of reconstructions and of the real
    images (the Gaussian log-likelihood in feature space, up to constants); the real features
    are the target, never trained towards the reconstructions."""
    return F.mse_loss(fake_features.float(), real_features.detach().float())


__all__ = ["FAKE_LABEL", "GENERATOR_TARGET", "GP_WEIGHT", "REAL_LABEL", "bce_discriminator_loss",
           "bce_generator_loss", "feature_matching_loss", "gradient_penalty", "interpolate",
           "kl_divergence", "wgan_critic_loss", "wgan_generator_loss"]
