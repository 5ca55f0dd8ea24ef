"""The networks of the person GANs: a DCGAN-style generator and discriminator (critic) for
upright person images (H x W, e.g. 128 x 64), and the VAE-GAN encoder.

- :class:`Generator`: ``z`` -> linear projection to a small base map (``(4, 2)`` for every
  ``H = 2W`` size) -> transposed-conv x2 stages (BatchNorm + ReLU) -> 3x3 conv -> tanh, so the
  output lies in [-1, 1]. Identity conditioning uses class-conditional BatchNorm (a per-class
  gain and bias after every normalisation; Dumoulin et al. 2017, de Vries et al. 2017).
- :class:`Discriminator`: strided 4x4 convs with LeakyReLU 0.2 down to the base map, then one
  linear output (a logit or a critic value). The normalisation is a choice because it depends
  on the objective: BatchNorm (DCGAN), layer norm (WGAN-GP: a batch-norm critic makes each
  sample's output depend on the batch, which breaks the per-sample gradient penalty) or none
  (spectral normalisation, which constrains the critic by itself). Identity conditioning is the
  projection discriminator (Miyato & Koyama 2018): ``out = psi(h) + <embed(y), h>``.
- :class:`SelfAttention` (SAGAN, Zhang et al. 2019) at one mid resolution in G and D, with a
  learned gain ``gamma`` starting at 0 so the networks start purely convolutional.
- Spectral normalisation (``torch.nn.utils.parametrizations.spectral_norm``) of every conv and
  linear weight of G and D when asked (SAGAN applies it to both; Miyato et al. 2018 to D).

Weights start as in DCGAN: conv / linear weights N(0, 0.02), norm gains N(1, 0.02), biases 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

#: DCGAN initialisation (Radford et al. 2016): N(0, 0.02) weights, N(1, 0.02) norm gains
INIT_STD = 0.02
#: the LeakyReLU slope of DCGAN's discriminator
LEAKY_SLOPE = 0.2
#: channels never grow beyond this multiple of ``base_channels`` (DCGAN's 8 x ngf)
MAX_CHANNEL_MULTIPLIER = 8
#: the smallest side of the base map the generator starts from (and the critic ends at)
MIN_BASE_SIDE = 2
#: at least this many x2 stages, so that "a mid resolution" for attention exists
MIN_STAGES = 2
#: SAGAN's query / key channels: C / 8
ATTENTION_REDUCTION = 8
#: transposed conv / strided conv that exactly doubles / halves a side
UP_DOWN_KERNEL, UP_DOWN_STRIDE, UP_DOWN_PADDING = 4, 2, 1


class DiscriminatorNorm(str, Enum):
    """How the discriminator normalises its hidden layers (see the module docstring)."""

    BATCH = "batch"
    LAYER = "layer"
    NONE = "none"


@dataclass(frozen=True)
class Geometry:
    """Where an image size starts / ends in the networks: ``stages`` x2 steps from the
    ``base`` map (height, width) to the image; attention at ``attention_stage``."""

    image_size: tuple[int, int]
    base: tuple[int, int]
    stages: int

    @property
    def attention_stage(self) -> int:
        """The generator stage after which attention runs: a middle one (its output is the
        discriminator's input to stage ``stages - 2 - attention_stage``: same resolution)."""
        return (self.stages - 1) // 2

    @property
    def discriminator_attention_stage(self) -> int:
        return self.stages - 2 - self.attention_stage

    def channels(self, base_channels: int, level: int) -> int:
        """Channels at ``level`` x2 steps above the base map: DCGAN's halving per step, capped
        at ``MAX_CHANNEL_MULTIPLIER x base_channels``; ``base_channels`` at the image."""
        return base_channels * min(2 ** (self.stages - level), MAX_CHANNEL_MULTIPLIER)


def image_geometry(image_size: tuple[int, int] | list[int]) -> Geometry:
    """The base map and stage count for an ``(H, W)`` image: the most halvings of both sides
    that stay whole and keep each side >= ``MIN_BASE_SIDE`` (128x64 -> (4, 2) in 5 stages)."""
    if len(image_size) != 2 or any(int(side) != side or int(side) < 1 for side in image_size):
        raise ValueError(f"image_size={list(image_size)}: expected [height, width], "
                         "two positive integers")
    height, width = int(image_size[0]), int(image_size[1])
    stages = 0
    while (height % 2 ** (stages + 1) == 0 and width % 2 ** (stages + 1) == 0
           and min(height, width) // 2 ** (stages + 1) >= MIN_BASE_SIDE):
        stages += 1
    if stages < MIN_STAGES:
        raise ValueError(f"image_size={[height, width]}: both sides must halve at least "
                         f"{MIN_STAGES} times to >= {MIN_BASE_SIDE} (e.g. 128x64, 64x32, 16x8)")
    return Geometry((height, width), (height // 2 ** stages, width // 2 ** stages), stages)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation of one layer (use with ``Module.apply``)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def _maybe_spectral(layer: nn.Module, spectral: bool) -> nn.Module:
    """``layer`` DCGAN-initialised, then spectrally normalised when ``spectral`` (initialising
    first: the parametrisation keeps the initial weight as its ``original``)."""
    init_weights(layer)
    return apply_spectral_norm(layer) if spectral else layer


class SelfAttention(nn.Module):
    """SAGAN self-attention: every position attends to every other (1x1 conv query, key and
    value); the result is added back scaled by ``gamma``, which starts at 0."""

    def __init__(self, channels: int, spectral: bool = False) -> None:
        super().__init__()
        inner = max(1, channels // ATTENTION_REDUCTION)
        self.query = _maybe_spectral(nn.Conv2d(channels, inner, 1), spectral)
        self.key = _maybe_spectral(nn.Conv2d(channels, inner, 1), spectral)
        self.value = _maybe_spectral(nn.Conv2d(channels, channels, 1), spectral)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)             # (B, N, C')
        key = self.key(x).flatten(2)                                 # (B, C', N)
        attention = torch.softmax(torch.bmm(query, key), dim=-1)     # (B, N, N): rows sum to 1
        value = self.value(x).flatten(2)                             # (B, C, N)
        attended = torch.bmm(value, attention.transpose(1, 2))       # (B, C, N)
        return x + self.gamma * attended.view(batch, channels, height, width)


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose gain and bias come from the class (gain 1 + N(0, 0.02), bias 0 at the
    start); unconditional (``num_classes == 0``): plain affine BatchNorm."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.norm = nn.BatchNorm2d(channels, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)

    def reset_class_parameters(self) -> None:
        if self.num_classes:
            nn.init.normal_(self.gain.weight, 1.0, INIT_STD)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        x = self.norm(x)
        if not self.num_classes:
            return x
        return x * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


def _check_labels(labels: Tensor | None, num_classes: int, batch: int) -> Tensor | None:
    """The labels a conditional network needs (one per image, 0..C-1); None when
    unconditional."""
    if not num_classes:
        return None
    if labels is None or labels.shape != (batch,):
        raise ValueError(f"a conditional network needs one label per image ({batch}), got "
                         f"{None if labels is None else tuple(labels.shape)}")
    return labels.long()


class Generator(nn.Module):
    """``z`` (B, latent_dim) [+ labels (B,)] -> images (B, 3, H, W) in [-1, 1]."""

    def __init__(self, image_size: tuple[int, int] | list[int], latent_dim: int = 128,
                 base_channels: int = 64, num_classes: int = 0, spectral_norm: bool = False,
                 self_attention: bool = False) -> None:
        super().__init__()
        self.geometry = image_geometry(image_size)
        self.latent_dim, self.num_classes = int(latent_dim), int(num_classes)
        geometry, base_height, base_width = self.geometry, *self.geometry.base
        first = geometry.channels(base_channels, 0)
        self.base_shape = (first, base_height, base_width)
        self.project = _maybe_spectral(nn.Linear(latent_dim, first * base_height * base_width),
                                       spectral_norm)
        self.project_norm = ConditionalBatchNorm(first, num_classes)
        self.ups = nn.ModuleList()
        self.norms = nn.ModuleList()
        for level in range(geometry.stages):
            inputs, outputs = (geometry.channels(base_channels, level),
                               geometry.channels(base_channels, level + 1))
            self.ups.append(_maybe_spectral(nn.ConvTranspose2d(
                inputs, outputs, UP_DOWN_KERNEL, UP_DOWN_STRIDE, UP_DOWN_PADDING, bias=False),
                spectral_norm))
            self.norms.append(ConditionalBatchNorm(outputs, num_classes))
        attention_channels = geometry.channels(base_channels, geometry.attention_stage + 1)
        self.attention = (SelfAttention(attention_channels, spectral_norm) if self_attention
                          else None)
        self.to_rgb = _maybe_spectral(nn.Conv2d(base_channels, 3, 3, padding=1), spectral_norm)
        for norm in [self.project_norm, *self.norms]:
            init_weights(norm.norm)
            norm.reset_class_parameters()

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        labels = _check_labels(labels, self.num_classes, z.shape[0])
        x = self.project(z).view(z.shape[0], *self.base_shape)
        x = torch.relu(self.project_norm(x, labels))
        for stage, (up, norm) in enumerate(zip(self.ups, self.norms)):
            x = torch.relu(norm(up(x), labels))
            if self.attention is not None and stage == self.geometry.attention_stage:
                x = self.attention(x)
        return torch.tanh(self.to_rgb(x))


def _norm_layer(kind: DiscriminatorNorm, channels: int) -> nn.Module:
    if kind is DiscriminatorNorm.BATCH:
        return nn.BatchNorm2d(channels)
    if kind is DiscriminatorNorm.LAYER:
        # one group = normalisation over (C, H, W) of each sample, per-channel affine
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class _DownStages(nn.Module):
    """The strided-conv trunk shared by the discriminator and the encoder: ``stages`` x(1/2)
    steps from the image to the base map; no normalisation on the first (DCGAN)."""

    def __init__(self, geometry: Geometry, base_channels: int, norm: DiscriminatorNorm,
                 spectral: bool, attention: SelfAttention | None = None,
                 attention_stage: int = -1) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        for index in range(geometry.stages):
            level = geometry.stages - index
            inputs = 3 if index == 0 else geometry.channels(base_channels, level)
            outputs = geometry.channels(base_channels, level - 1)
            conv = _maybe_spectral(nn.Conv2d(inputs, outputs, UP_DOWN_KERNEL, UP_DOWN_STRIDE,
                                             UP_DOWN_PADDING), spectral)
            layer_norm = nn.Identity() if index == 0 else _norm_layer(norm, outputs)
            init_weights(layer_norm)
            self.stages.append(nn.Sequential(conv, layer_norm, nn.LeakyReLU(LEAKY_SLOPE)))
        self.attention, self.attention_stage = attention, attention_stage
        self.out_channels = geometry.channels(base_channels, 0)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Every stage's output, image side first (the last is the base map)."""
        outputs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if self.attention is not None and index == self.attention_stage:
                x = self.attention(x)
            outputs.append(x)
        return outputs


class Discriminator(nn.Module):
    """images (B, 3, H, W) [+ labels] -> one logit / critic value per image (B,).

    ``features(x)`` is the representation the VAE-GAN reconstruction is measured in (Larsen et
    al. 2016 use a deep hidden layer): the output of the stage before the last, flattened.
    """

    def __init__(self, image_size: tuple[int, int] | list[int], base_channels: int = 64,
                 num_classes: int = 0, spectral_norm: bool = False, self_attention: bool = False,
                 norm: str | DiscriminatorNorm = DiscriminatorNorm.BATCH) -> None:
        super().__init__()
        self.geometry = image_geometry(image_size)
        self.num_classes = int(num_classes)
        norm = DiscriminatorNorm(norm)
        geometry = self.geometry
        attention_stage = geometry.discriminator_attention_stage
        attention = None
        if self_attention:
            channels = geometry.channels(base_channels, geometry.stages - attention_stage - 1)
            attention = SelfAttention(channels, spectral_norm)
        self.trunk = _DownStages(geometry, base_channels, norm, spectral_norm, attention,
                                 attention_stage)
        features = self.trunk.out_channels * geometry.base[0] * geometry.base[1]
        self.output = _maybe_spectral(nn.Linear(features, 1), spectral_norm)
        self.embed = (_maybe_spectral(nn.Embedding(num_classes, features), spectral_norm)
                      if num_classes else None)
        self.feature_stage = max(0, geometry.stages - 2)

    def forward(self, x: Tensor, labels: Tensor | None = None,
                return_features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        labels = _check_labels(labels, self.num_classes, x.shape[0])
        stages = self.trunk(x)
        h = stages[-1].flatten(1)
        out = self.output(h).squeeze(1)
        if self.embed is not None:
            # projection: the class embedding's inner product with the features
            out = out + (self.embed(labels) * h).sum(dim=1)
        if return_features:
            return out, stages[self.feature_stage].flatten(1)
        return out

    def features(self, x: Tensor) -> Tensor:
        """The feature-matching layer only (labels do not enter the trunk)."""
        return self.trunk(x)[self.feature_stage].flatten(1)


class Encoder(nn.Module):
    """VAE-GAN encoder: images (B, 3, H, W) -> ``(mu, logvar)`` of q(z|x), each (B, latent)."""

    def __init__(self, image_size: tuple[int, int] | list[int], latent_dim: int = 128,
                 base_channels: int = 64) -> None:
        super().__init__()
        self.geometry = image_geometry(image_size)
        self.trunk = _DownStages(self.geometry, base_channels, DiscriminatorNorm.BATCH,
                                 spectral=False)
        features = self.trunk.out_channels * self.geometry.base[0] * self.geometry.base[1]
        self.moments = nn.Linear(features, 2 * latent_dim)
        init_weights(self.moments)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.moments(self.trunk(x)[-1].flatten(1)).chunk(2, dim=1)
        return mu, logvar


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """``z = mu + sigma * eps``, eps ~ N(0, I): a sample of q(z|x) that gradients pass."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


__all__ = ["ConditionalBatchNorm", "Discriminator", "DiscriminatorNorm", "Encoder", "Generator",
           "Geometry", "SelfAttention", "image_geometry", "init_weights", "reparameterize"]
