"""The person GANs as one LightningModule with manual optimisation.

``kind`` picks the objective (:mod:`reidsort.generative.losses`) on the networks of
:mod:`reidsort.generative.networks`:

- ``dcgan``: BCE with one-sided label smoothing (real target ``real_label``, fake 0) for the
  discriminator; the non-saturating loss (fakes against 1) for the generator.
- ``wgan_gp``: the Wasserstein critic loss plus ``gp_weight`` x the gradient penalty; a
  layer-normalised critic (BatchNorm would couple the samples the penalty treats one by one).
  The generator steps once every ``n_critic`` critic steps, each critic step on a new batch
  (Gulrajani et al. 2017, Algorithm 1).
- ``vae_gan``: Larsen et al. 2016. An encoder gives q(z|x); the discriminator tells real images
  from reconstructions and prior samples; the encoder minimises KL + the reconstruction error in
  the discriminator's feature space; the generator minimises that reconstruction error plus the
  adversarial loss. As in the paper the encoder gets no adversarial gradient (the adversarial
  term of the reconstruction is computed from a detached code).

Under DDP each step runs the discriminator and the generator through one wrapped forward and
two backward passes, with the other network's parameters toggled off, so ``task=gan`` turns on
DDP's unused-parameter detection (``ddp`` -> ``ddp_find_unused_parameters_true``).

Every step: one discriminator update, then (every ``n_critic``-th step) one generator update
and one EMA step of ``generator_ema`` (``ema_decay``; a plain copy before ``ema_start_step``
generator steps). Before the EMA samples, its BatchNorm statistics are re-estimated from its own
seeded batches ("standing statistics", Brock et al. 2019): the live network's running statistics,
which the EMA copies, do not fit averaged weights and wash the samples out. Spectral normalisation replaces the discriminator's normalisation (Miyato et
al. 2018 use none). With ``conditional`` the generator uses class-conditional BatchNorm and the
discriminator is a projection discriminator over the ``num_classes`` training identities; fakes
are drawn for the real batch's labels. Logged: ``train/loss_d``, ``train/loss_g``,
``train/d_real`` and ``train/d_fake`` (mean probability for BCE kinds, mean critic value for
WGAN-GP), ``train/gp``, ``train/kl``, ``train/recon``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import lightning as L
import torch
from torch import Tensor, nn

from reidsort.generative.ema import make_ema, update_ema
from reidsort.generative.losses import (
    bce_discriminator_loss,
    bce_generator_loss,
    feature_matching_loss,
    gradient_penalty,
    kl_divergence,
    wgan_critic_loss,
    wgan_generator_loss,
)
from reidsort.generative.networks import (
    Discriminator,
    DiscriminatorNorm,
    Encoder,
    Generator,
    image_geometry,
    reparameterize,
)

#: "standing statistics" of the EMA generator's BatchNorm layers (Brock et al. 2019): its
#: averaged weights do not match the live network's running statistics, which washes samples
#: out, so before sampling they are re-estimated from this many seeded batches of its own
STANDING_STATS_BATCHES = 8
STANDING_STATS_BATCH_SIZE = 64
STANDING_STATS_SEED = 20190212


class GANKind(str, Enum):
    DCGAN = "dcgan"
    WGAN_GP = "wgan_gp"
    VAE_GAN = "vae_gan"

    @classmethod
    def parse(cls, value: str | GANKind) -> GANKind:
        try:
            return cls(str(getattr(value, "value", value)).lower())
        except ValueError:
            raise ValueError(f"gan kind {value!r}: expected one of "
                             f"{', '.join(k.value for k in cls)}") from None


def discriminator_norm(kind: GANKind, spectral_norm: bool) -> DiscriminatorNorm:
    """Spectral norm: none; WGAN-GP: layer norm (per-sample penalty); else BatchNorm."""
    if spectral_norm:
        return DiscriminatorNorm.NONE
    return DiscriminatorNorm.LAYER if kind is GANKind.WGAN_GP else DiscriminatorNorm.BATCH


class GANModule(L.LightningModule):
    """Generator, discriminator (critic), the VAE-GAN encoder and the generator EMA; batches are
    ``(images in [-1, 1], labels, ...)`` (labels 0..num_classes-1 when conditional)."""

    def __init__(self, kind: str, image_size: Sequence[int], num_classes: int = 0,
                 conditional: bool = False, latent_dim: int = 128, base_channels: int = 64,
                 spectral_norm: bool = False, self_attention: bool = False,
                 lr_g: float = 2.0e-4, lr_d: float = 8.0e-4,
                 betas: Sequence[float] = (0.0, 0.9), n_critic: int = 1,
                 gp_weight: float = 10.0, real_label: float = 0.9, kl_weight: float = 1.0,
                 recon_weight: float = 1.0, ema_decay: float = 0.999,
                 ema_start_step: int = 0) -> None:
        super().__init__()
        self.kind = GANKind.parse(kind)
        image_geometry(list(image_size))  # a one-line error for impossible sizes, first
        if conditional and int(num_classes) < 1:
            raise ValueError("gan.module.conditional=true needs the number of training "
                             f"identities (num_classes={num_classes})")
        if int(n_critic) < 1:
            raise ValueError(f"gan.module.n_critic={n_critic}: expected >= 1")
        if len(betas) != 2:
            raise ValueError(f"gan.module.betas={list(betas)}: expected [beta1, beta2]")
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"gan.module.ema_decay={ema_decay}: expected 0 <= decay < 1")
        if not 0.0 < float(real_label) <= 1.0:
            raise ValueError(f"gan.module.real_label={real_label}: expected in (0, 1]")
        # plain types only: Lightning 2.6 loads checkpoints weights_only
        self.save_hyperparameters({
            "kind": self.kind.value, "image_size": [int(s) for s in image_size],
            "num_classes": int(num_classes), "conditional": bool(conditional),
            "latent_dim": int(latent_dim), "base_channels": int(base_channels),
            "spectral_norm": bool(spectral_norm), "self_attention": bool(self_attention),
            "lr_g": float(lr_g), "lr_d": float(lr_d), "betas": [float(b) for b in betas],
            "n_critic": int(n_critic), "gp_weight": float(gp_weight),
            "real_label": float(real_label), "kl_weight": float(kl_weight),
            "recon_weight": float(recon_weight), "ema_decay": float(ema_decay),
            "ema_start_step": int(ema_start_step)})
        self.automatic_optimization = False
        self.image_size = tuple(int(s) for s in image_size)
        self.latent_dim = int(latent_dim)
        self.num_classes = int(num_classes) if conditional else 0
        self.lr_g, self.lr_d, self.betas = float(lr_g), float(lr_d), [float(b) for b in betas]
        self.n_critic, self.gp_weight = int(n_critic), float(gp_weight)
        self.real_label = float(real_label)
        self.kl_weight, self.recon_weight = float(kl_weight), float(recon_weight)
        self.ema_decay, self.ema_start_step = float(ema_decay), int(ema_start_step)

        self.generator = Generator(self.image_size, self.latent_dim, int(base_channels),
                                   self.num_classes, bool(spectral_norm), bool(self_attention))
        self.discriminator = Discriminator(self.image_size, int(base_channels), self.num_classes,
                                           bool(spectral_norm), bool(self_attention),
                                           discriminator_norm(self.kind, bool(spectral_norm)))
        self.encoder = (Encoder(self.image_size, self.latent_dim, int(base_channels))
                        if self.kind is GANKind.VAE_GAN else None)
        self.generator_ema = make_ema(self.generator)
        # generator updates so far (in the checkpoint: the EMA warm-up survives a resume)
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))
        # the EMA's BatchNorm statistics are re-estimated before it next samples
        self._ema_statistics_stale = True

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        generator_parameters = list(self.generator.parameters())
        if self.encoder is not None:
            generator_parameters += list(self.encoder.parameters())
        betas = (self.betas[0], self.betas[1])
        optimizer_g = torch.optim.Adam(generator_parameters, lr=self.lr_g, betas=betas)
        optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr_d,
                                       betas=betas)
        return [optimizer_g, optimizer_d]

    def _latents(self, count: int) -> Tensor:
        return torch.randn(count, self.latent_dim, device=self.device)

    def _labels(self, batch: Sequence[Tensor], check: bool) -> Tensor | None:
        if not self.num_classes:
            return None
        labels = batch[1].long()
        # checked on an epoch's first batch only: the comparison waits for the device
        if check and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"batch labels {labels.min().item()}..{labels.max().item()} "
                             f"outside the conditioning range 0..{self.num_classes - 1}")
        return labels

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> None:
        real = batch[0]
        labels = self._labels(batch, check=batch_idx == 0)
        optimizer_g, optimizer_d = self.optimizers()
        count = real.shape[0]

        # ---- discriminator / critic
        self.toggle_optimizer(optimizer_d)
        logs = self._discriminator_step(real, labels, count, optimizer_d)
        self.untoggle_optimizer(optimizer_d)

        # ---- generator (+ encoder), every n_critic-th step
        if (batch_idx + 1) % self.n_critic == 0:
            self.toggle_optimizer(optimizer_g)
            logs.update(self._generator_step(real, labels, count, optimizer_g))
            self.untoggle_optimizer(optimizer_g)
            self.generator_steps += 1
            decay = self.ema_decay if int(self.generator_steps) > self.ema_start_step else 0.0
            update_ema(self.generator_ema, self.generator, decay)
            self._ema_statistics_stale = True

        for key, value in logs.items():
            self.log(f"train/{key}", value.detach().float(), on_step=True, on_epoch=True,
                     prog_bar=key in ("loss_d", "loss_g"), batch_size=count,
                     sync_dist=True)  # under DDP: the mean over every rank's batch

    def _discriminator_step(self, real: Tensor, labels: Tensor | None, count: int,
                            optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
        with torch.no_grad():
            fake = self.generator(self._latents(count), labels)
            if self.kind is GANKind.VAE_GAN:
                mu, logvar = self.encoder(real)
                fake = torch.cat([fake, self.generator(reparameterize(mu, logvar), labels)])
        fake_labels = None if labels is None else labels.repeat(fake.shape[0] // count)
        real_out = self.discriminator(real, labels)
        fake_out = self.discriminator(fake, fake_labels)
        logs: dict[str, Tensor] = {}
        if self.kind is GANKind.WGAN_GP:
            penalty = gradient_penalty(lambda x: self.discriminator(x, labels), real, fake,
                                       self.gp_weight)
            loss = wgan_critic_loss(real_out, fake_out) + penalty
            logs.update(gp=penalty, d_real=real_out.float().mean(),
                        d_fake=fake_out.float().mean())
        else:
            loss = bce_discriminator_loss(real_out, fake_out, self.real_label)
            logs.update(d_real=torch.sigmoid(real_out.float()).mean(),
                        d_fake=torch.sigmoid(fake_out.float()).mean())
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        logs["loss_d"] = loss
        return logs

    def _generator_step(self, real: Tensor, labels: Tensor | None, count: int,
                        optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
        fake = self.generator(self._latents(count), labels)
        logs: dict[str, Tensor] = {}
        if self.kind is GANKind.WGAN_GP:
            loss = wgan_generator_loss(self.discriminator(fake, labels))
        elif self.kind is GANKind.DCGAN:
            loss = bce_generator_loss(self.discriminator(fake, labels))
        else:
            mu, logvar = self.encoder(real)
            code = reparameterize(mu, logvar)
            reconstruction = self.generator(code, labels)
            with torch.no_grad():
                real_features = self.discriminator.features(real)
            kl = kl_divergence(mu, logvar)
            recon = feature_matching_loss(self.discriminator.features(reconstruction),
                                          real_features)
            # the adversarial term reaches the generator only (Larsen et al.: the encoder
            # minimises prior + reconstruction terms)
            adversarial_input = torch.cat([fake, self.generator(code.detach(), labels)])
            adversarial_labels = None if labels is None else labels.repeat(2)
            adversarial = bce_generator_loss(self.discriminator(adversarial_input,
                                                                adversarial_labels))
            loss = self.kl_weight * kl + self.recon_weight * recon + adversarial
            logs.update(kl=kl, recon=recon)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        logs["loss_g"] = loss
        return logs

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | Sequence[int] | None = None,
               seed: int | None = None, use_ema: bool = True) -> Tensor:
        """``n`` images ``(n, 3, H, W)`` float32 in [-1, 1] from the EMA (or the trained)
        generator in eval mode. The latents are drawn on the CPU from ``seed``, so a seed gives
        the same images on every device; a conditional GAN without ``labels`` cycles through
        the identities."""
        n = int(n)
        generator_rng = torch.Generator()
        if seed is None:
            generator_rng.seed()
        else:
            generator_rng.manual_seed(int(seed))
        z = torch.randn(n, self.latent_dim, generator=generator_rng).to(self.device)
        if self.num_classes:
            labels = (torch.arange(n) % self.num_classes if labels is None
                      else torch.as_tensor(labels, dtype=torch.long))
            if labels.shape != (n,) or labels.min() < 0 or labels.max() >= self.num_classes:
                raise ValueError(f"sample: expected {n} labels in 0..{self.num_classes - 1}")
            labels = labels.to(self.device)
        else:
            labels = None
        if use_ema and self._ema_statistics_stale:
            self.refresh_ema_statistics()
        network = self.generator_ema if use_ema else self.generator
        was_training = network.training
        network.eval()
        try:
            with torch.autocast(self.device.type, enabled=False):
                images = network(z, labels).float()
        finally:
            network.train(was_training)
        return images.clamp(-1.0, 1.0)

    @torch.no_grad()
    def refresh_ema_statistics(self) -> None:
        """Re-estimate the EMA generator's BatchNorm running statistics as the plain average
        over ``STANDING_STATS_BATCHES`` batches of seeded latents (labels cycling through the
        identities). A function of the EMA weights only: the same after a checkpoint reload and
        on every DDP rank. Other buffers (spectral-norm power-iteration vectors) are kept."""
        network = self.generator_ema
        norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        kept = {name: buffer.clone() for name, buffer in network.named_buffers()
                if not any(name.endswith(suffix) for suffix in
                           ("running_mean", "running_var", "num_batches_tracked"))}
        momenta = [m.momentum for m in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the batches below
        rng = torch.Generator().manual_seed(STANDING_STATS_SEED)
        network.train()
        try:
            with torch.autocast(self.device.type, enabled=False):
                for index in range(STANDING_STATS_BATCHES):
                    z = torch.randn(STANDING_STATS_BATCH_SIZE, self.latent_dim,
                                    generator=rng).to(self.device)
                    labels = None
                    if self.num_classes:
                        start = index * STANDING_STATS_BATCH_SIZE
                        labels = (torch.arange(start, start + STANDING_STATS_BATCH_SIZE)
                                  % self.num_classes).to(self.device)
                    network(z, labels)
        finally:
            for norm, momentum in zip(norms, momenta):
                norm.momentum = momentum
            buffers = dict(network.named_buffers())
            for name, value in kept.items():
                buffers[name].copy_(value)
            network.eval()
        self._ema_statistics_stale = False

    def on_train_start(self) -> None:
        # Trainer.fit puts every submodule in train mode; the average is never trained
        self.generator_ema.eval()


__all__ = ["GANKind", "GANModule", "discriminator_norm"]
