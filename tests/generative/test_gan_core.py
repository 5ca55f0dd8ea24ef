"""GANModule, its losses and the generator EMA: hand-computed cases and tiny fits through a real
Lightning Trainer (one step of each kind moves G and D, n_critic, the discriminator's targets,
the VAE-GAN encoder's gradients, sampling, checkpoint reload, bf16)."""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import reidsort.generative.module as module_lib
from reidsort.generative.ema import make_ema, update_ema
from reidsort.generative.losses import (
    bce_discriminator_loss,
    bce_generator_loss,
    feature_matching_loss,
    gradient_penalty,
    interpolate,
    kl_divergence,
    wgan_critic_loss,
    wgan_generator_loss,
)
from reidsort.generative.module import GANModule
from reidsort.generative.networks import DiscriminatorNorm, image_geometry

HW = (16, 8)
TINY = {"image_size": list(HW), "latent_dim": 8, "base_channels": 4}
CLASSES = 3


def _loader(batches: int = 1, batch_size: int = 8, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    count = batches * batch_size
    images = torch.rand(count, 3, *HW, generator=generator) * 2 - 1
    labels = torch.arange(count) % CLASSES
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=False)


def _fit(module: GANModule, batches: int, **trainer_options) -> L.Trainer:
    trainer = L.Trainer(max_epochs=1, limit_train_batches=batches, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", **trainer_options)
    trainer.fit(module, train_dataloaders=_loader(batches))
    return trainer


def _state(network: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def _moved(before: dict[str, torch.Tensor], network: nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in network.state_dict().items()
               if v.dtype.is_floating_point and "running" not in k)


# ----------------------------------------------------------------------- losses by hand
def test_bce_discriminator_targets_are_smoothed_real_and_zero_fake():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5])
    sig = torch.sigmoid

    def bce(logit, target):
        return -(target * torch.log(sig(logit)) + (1 - target) * torch.log(1 - sig(logit)))

    expected = bce(real, 0.9).mean() + bce(fake, 0.0).mean()
    assert bce_discriminator_loss(real, fake, 0.9).item() == pytest.approx(expected.item(),
                                                                            rel=1e-6)
    # minimising it raises the real logits (towards 0.9) and lowers the fake ones
    real.requires_grad_(True)
    fake.requires_grad_(True)
    bce_discriminator_loss(real, fake, 0.9).backward()
    assert real.grad[1] < 0 and fake.grad[0] > 0
    # at sigmoid(real) = 0.9 the real term is at its minimum: no push beyond 0.9
    at_target = torch.tensor([math.log(9.0)], requires_grad=True)
    bce_discriminator_loss(at_target, torch.tensor([0.0]), 0.9).backward()
    assert at_target.grad.abs().item() < 1e-6
    # the generator wants its fakes called real (target 1, no smoothing)
    assert bce_generator_loss(torch.tensor([0.0])).item() == pytest.approx(math.log(2.0))
    with pytest.raises(ValueError, match="real_label"):
        bce_discriminator_loss(real, fake, 0.0)


def test_wasserstein_losses_and_gradient_penalty_of_a_linear_critic():
    assert wgan_critic_loss(torch.tensor([3.0, 1.0]), torch.tensor([0.5])).item() == -1.5
    assert wgan_generator_loss(torch.tensor([0.5, 1.5])).item() == -1.0
    # D(x) = <w, x>: the gradient is w everywhere, so the penalty is 10 (||w|| - 1)^2
    weight = torch.zeros(3, 4, 2)
    weight[0, 0, 0], weight[1, 2, 1] = 2.0, math.sqrt(5.0)     # ||w|| = 3

    def critic(x):
        return (x * weight).flatten(1).sum(1)

    real, fake = torch.randn(5, 3, 4, 2), torch.randn(5, 3, 4, 2)
    assert gradient_penalty(critic, real, fake, 10.0).item() == pytest.approx(40.0, rel=1e-5)

    # D(x) = ||x||^2 / 2: the gradient at x_hat is x_hat itself
    def quadratic(x):
        return 0.5 * x.flatten(1).pow(2).sum(1)

    eps = torch.tensor([0.0, 1.0, 0.5]).view(3, 1, 1, 1)
    real, fake = torch.full((3, 1, 1, 4), 1.0), torch.full((3, 1, 1, 4), 3.0)
    x_hat = interpolate(real, fake, eps)
    assert x_hat[:, 0, 0, 0].tolist() == [3.0, 1.0, 2.0]       # eps * real + (1 - eps) * fake
    norms = torch.tensor([6.0, 2.0, 4.0])                      # ||x_hat|| over 4 pixels
    expected = 10.0 * ((norms - 1) ** 2).mean()
    assert gradient_penalty(quadratic, real, fake, 10.0, eps).item() == pytest.approx(
        expected.item())


def test_penalty_is_differentiable_in_the_critic_parameters():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    penalty = gradient_penalty(lambda x: critic(x).squeeze(1), torch.randn(4, 3, 2, 2),
                               torch.randn(4, 3, 2, 2), 10.0)
    penalty.backward()
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0


def test_kl_and_feature_matching_by_hand():
    assert kl_divergence(torch.zeros(2, 4), torch.zeros(2, 4)).item() == 0.0
    # mu = 1, sigma = 1: 0.5 per dimension; mu = 0, log sigma^2 = 1: 0.5 (e - 2)
    assert kl_divergence(torch.ones(2, 4), torch.zeros(2, 4)).item() == pytest.approx(0.5)
    assert kl_divergence(torch.zeros(1, 2), torch.ones(1, 2)).item() == pytest.approx(
        0.5 * (math.e - 2.0))
    real = torch.randn(3, 5, requires_grad=True)
    fake = (real.detach() + 2.0).requires_grad_(True)
    loss = feature_matching_loss(fake, real)
    assert loss.item() == pytest.approx(4.0)
    loss.backward()
    assert real.grad is None and fake.grad is not None          # real features are the target


def test_ema_update_by_hand():
    live = nn.BatchNorm1d(2)
    ema = make_ema(live)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        live.weight.fill_(3.0)
        ema.weight.fill_(1.0)
        live.running_mean.fill_(5.0)
    update_ema(ema, live, decay=0.9)
    assert ema.weight.tolist() == pytest.approx([1.2, 1.2])     # 0.9 * 1 + 0.1 * 3
    assert ema.running_mean.tolist() == [5.0, 5.0]              # statistics are copied
    update_ema(ema, live, decay=0.0)
    assert ema.weight.tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="ema_decay"):
        update_ema(ema, live, decay=1.0)


# ----------------------------------------------------------------------- the module
@pytest.mark.parametrize("kind", ["dcgan", "wgan_gp", "vae_gan"])
@pytest.mark.parametrize("conditional", [False, True])
def test_one_step_moves_generator_and_discriminator(kind, conditional):
    torch.manual_seed(0)
    module = GANModule(kind, num_classes=CLASSES if conditional else 0,
                       conditional=conditional, ema_decay=0.5, **TINY)
    g, d, ema = _state(module.generator), _state(module.discriminator), _state(
        module.generator_ema)
    e = _state(module.encoder) if module.encoder is not None else None
    trainer = _fit(module, batches=1)
    assert _moved(g, module.generator) and _moved(d, module.discriminator)
    assert _moved(ema, module.generator_ema)
    if e is not None:
        assert _moved(e, module.encoder)
    assert int(module.generator_steps) == 1
    metrics = trainer.callback_metrics
    for key in ("train/loss_d", "train/loss_g", "train/d_real", "train/d_fake"):
        assert torch.isfinite(metrics[key]), key
    extra = {"wgan_gp": ["train/gp"], "vae_gan": ["train/kl", "train/recon"]}.get(kind, [])
    for key in extra:
        assert torch.isfinite(metrics[key]), key


def test_norms_by_kind():
    assert module_lib.discriminator_norm(module_lib.GANKind.WGAN_GP, False) is \
        DiscriminatorNorm.LAYER
    assert module_lib.discriminator_norm(module_lib.GANKind.DCGAN, False) is \
        DiscriminatorNorm.BATCH
    assert module_lib.discriminator_norm(module_lib.GANKind.DCGAN, True) is DiscriminatorNorm.NONE
    critic = GANModule("wgan_gp", **TINY).discriminator
    assert not any(isinstance(m, nn.BatchNorm2d) for m in critic.modules())


def test_n_critic_steps_the_critic_every_batch_and_the_generator_every_nth():
    torch.manual_seed(0)
    module = GANModule("wgan_gp", n_critic=3, **TINY)
    g = _state(module.generator)
    _fit(module, batches=2)
    assert int(module.generator_steps) == 0 and not _moved(g, module.generator)
    _, optimizer_d = module.trainer.optimizers
    assert next(iter(optimizer_d.state.values()))["step"].item() == 2
    torch.manual_seed(0)
    module = GANModule("wgan_gp", n_critic=3, **TINY)
    _fit(module, batches=3)
    assert int(module.generator_steps) == 1 and _moved(g, module.generator)


def test_discriminator_sees_real_images_as_real_and_generator_targets_real(monkeypatch):
    """Spy on the losses inside one DCGAN step: the discriminator loss gets D(real batch) with
    target real_label first and D(G(z)) second; the generator loss gets D(G(z))."""
    calls: dict[str, list] = {"d": [], "g": []}

    def spy_d(real_logits, fake_logits, real_label):
        calls["d"].append((real_logits.detach().clone(), fake_logits.detach().clone(),
                           real_label))
        return bce_discriminator_loss(real_logits, fake_logits, real_label)

    def spy_g(fake_logits):
        calls["g"].append(fake_logits.shape)
        return bce_generator_loss(fake_logits)

    monkeypatch.setattr(module_lib, "bce_discriminator_loss", spy_d)
    monkeypatch.setattr(module_lib, "bce_generator_loss", spy_g)
    torch.manual_seed(0)
    module = GANModule("dcgan", real_label=0.9, **TINY)
    before = copy.deepcopy(module.discriminator).train()
    real_batch = next(iter(_loader(1)))[0]
    with torch.no_grad():
        expected_real = before(real_batch)
    _fit(module, batches=1)
    (real_logits, fake_logits, label), = calls["d"]
    assert label == 0.9
    torch.testing.assert_close(real_logits, expected_real)
    assert fake_logits.shape == (8,) and calls["g"] == [torch.Size([8])]


def test_discriminator_learns_the_smoothed_targets_with_the_generator_frozen():
    torch.manual_seed(0)
    module = GANModule("dcgan", lr_g=0.0, lr_d=2e-3, betas=[0.5, 0.999], **TINY)
    trainer = L.Trainer(max_epochs=40, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu")
    trainer.fit(module, train_dataloaders=_loader(1))
    d_real, d_fake = trainer.callback_metrics["train/d_real"], trainer.callback_metrics[
        "train/d_fake"]
    assert d_real > 0.75 and d_fake < 0.25


def test_vae_gan_encoder_gets_no_adversarial_gradient():
    torch.manual_seed(0)
    module = GANModule("vae_gan", kl_weight=0.0, recon_weight=0.0, **TINY)
    encoder, generator = _state(module.encoder), _state(module.generator)
    _fit(module, batches=1)
    assert not _moved(encoder, module.encoder) and _moved(generator, module.generator)


def test_ema_start_step_copies_before_averaging():
    torch.manual_seed(0)
    module = GANModule("dcgan", ema_decay=0.999, ema_start_step=5, **TINY)
    _fit(module, batches=1)
    for ema, live in zip(module.generator_ema.parameters(), module.generator.parameters()):
        torch.testing.assert_close(ema, live)


def test_sample_is_seeded_upright_in_range_and_keeps_modes():
    torch.manual_seed(0)
    module = GANModule("dcgan", num_classes=CLASSES, conditional=True, **TINY)
    module.generator.train()
    first = module.sample(5, seed=3)
    assert first.shape == (5, 3, *HW) and first.dtype == torch.float32
    assert first.min() >= -1 and first.max() <= 1
    torch.testing.assert_close(module.sample(5, seed=3), first)
    assert not torch.equal(module.sample(5, seed=4), first)
    assert not torch.equal(module.sample(5, seed=3, use_ema=False),
                           module.sample(5, seed=3, labels=[2, 2, 2, 2, 2], use_ema=False))
    assert module.generator.training and not module.generator_ema.training
    with pytest.raises(ValueError, match="labels"):
        module.sample(2, labels=[0, CLASSES])


def test_checkpoint_reload_gives_the_same_samples_and_step_count(tmp_path):
    torch.manual_seed(0)
    module = GANModule("vae_gan", ema_decay=0.5, **TINY)
    trainer = _fit(module, batches=2)
    path = tmp_path / "gan.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["hyper_parameters"]["kind"] == "vae_gan"
    reloaded = GANModule.load_from_checkpoint(path)
    assert int(reloaded.generator_steps) == 2
    torch.testing.assert_close(reloaded.sample(4, seed=7), module.sample(4, seed=7))
    torch.testing.assert_close(reloaded.sample(4, seed=7, use_ema=False),
                               module.sample(4, seed=7, use_ema=False))


@pytest.mark.parametrize("kind", ["dcgan", "wgan_gp"])
def test_bf16_mixed_step_is_finite_and_moves_weights(kind):
    torch.manual_seed(0)
    module = GANModule(kind, spectral_norm=True, self_attention=True, **TINY)
    g, d = _state(module.generator), _state(module.discriminator)
    trainer = _fit(module, batches=1, precision="bf16-mixed")
    assert _moved(g, module.generator) and _moved(d, module.discriminator)
    assert torch.isfinite(trainer.callback_metrics["train/loss_d"])
    assert module.sample(2, seed=0).dtype == torch.float32


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="num_classes"):
        GANModule("dcgan", conditional=True, num_classes=0, **TINY)
    with pytest.raises(ValueError, match="n_critic"):
        GANModule("wgan_gp", n_critic=0, **TINY)
    with pytest.raises(ValueError, match="expected one of dcgan, wgan_gp, vae_gan"):
        GANModule("stylegan", **TINY)
    with pytest.raises(ValueError, match="image_size"):
        GANModule("dcgan", image_size=[6, 3], latent_dim=8, base_channels=4)
    assert image_geometry([128, 64]).base == (4, 2)


def test_ema_samples_use_standing_statistics_of_their_own_weights():
    """The EMA's BatchNorm statistics are re-estimated before sampling: copied (or garbage)
    running statistics do not change its samples; spectral-norm vectors are left alone."""
    torch.manual_seed(0)
    module = GANModule("dcgan", ema_decay=0.5, spectral_norm=True, **TINY)
    _fit(module, batches=2)
    reference = module.sample(4, seed=1)
    norms = [m for m in module.generator_ema.modules() if isinstance(m, nn.BatchNorm2d)]
    vectors = {k: v.clone() for k, v in module.generator_ema.named_buffers() if "_u" in k}
    assert norms and vectors
    with torch.no_grad():
        for norm in norms:
            norm.running_mean.fill_(5.0)
            norm.running_var.fill_(9.0)
    garbage = module.sample(4, seed=1)          # statistics are fresh: garbage is used
    assert not torch.allclose(garbage, reference)
    module.refresh_ema_statistics()
    torch.testing.assert_close(module.sample(4, seed=1), reference)
    for name, value in module.generator_ema.named_buffers():
        if name in vectors:
            torch.testing.assert_close(value, vectors[name])
    # standing statistics are the EMA network's own: its pre-norm activations have mean ~ the
    # running mean (not the live network's)
    first = norms[0]
    assert not torch.allclose(first.running_mean, module.generator.project_norm.norm.running_mean)


class _RecordParameters(L.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_train_end(self, trainer, pl_module) -> None:
        state = {f"{name}.{key}": value for name in ("generator", "discriminator")
                 for key, value in getattr(pl_module, name).named_parameters()}
        torch.save(state, f"{self.folder}/rank{trainer.global_rank}.pt")


@pytest.mark.parametrize("kind", ["dcgan", "wgan_gp", "vae_gan"])
def test_two_process_ddp_trains_and_keeps_the_ranks_in_sync(kind, tmp_path):
    """task=gan's DDP strategy (unused-parameter detection on: plain DDP refuses a GAN step)
    trains every kind on 2 CPU processes; G and D stay identical on both ranks."""
    from reidsort.tasks.gan import gan_strategy

    strategy = gan_strategy("ddp_spawn")
    assert strategy == "ddp_spawn_find_unused_parameters_true"
    assert gan_strategy("ddp") == "ddp_find_unused_parameters_true"
    assert gan_strategy("auto") is None and gan_strategy(None) is None
    torch.manual_seed(0)
    module = GANModule(kind, **TINY)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=2,
                        strategy=strategy, callbacks=[_RecordParameters(str(tmp_path))])
    trainer.fit(module, train_dataloaders=_loader(4))
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], msg=key)
