"""Centre-loss centres under Lightning's precision plugins and gradient accumulation.

The centres are stepped by the optimizer object Lightning sees (``WithCenterSGD``), so these
tests run a real ``Trainer`` with the real datamodule and module, and look at the centres
around every optimizer step.
"""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.precision import MixedPrecision

from conftest import TINY_TRAIN
from reidsort.reid.optim import WithCenterSGD
from reidsort.tasks.train import build_module

CENTER_LR = 0.5
INIT_SCALE = 256.0
CENTER_WEIGHT = 5e-4
# a small network without normalisation layers: cheap under CPU autocast, and (unlike a
# randomly initialised OSNet in train mode, which amplifies bf16 rounding to ~30% of its feature
# norm, measured) it only perturbs the features by the rounding itself
CENTER_TRAIN = [*TINY_TRAIN, "model.backbone._target_=tiny_models.NormFreeBackbone",
                "~model.backbone.ibn", "data.image_size=[64,32]", "loss=ce_triplet_center",
                "data.augment.hflip=0", "data.augment.pad=0", "data.augment.random_erasing=0",
                "scheduler.warmup_epochs=0", "data.batches_per_epoch=4"]


class CenterRecorder(L.Callback):
    """Centres before every batch, and the (unscaled) centre gradient each step used."""

    def __init__(self) -> None:
        self.before_batch: list[torch.Tensor] = []
        self.step_grads: list[torch.Tensor] = []
        self.after_fit: torch.Tensor | None = None

    @staticmethod
    def centers(pl_module) -> torch.Tensor:
        return pl_module.objective.center.centers

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.before_batch.append(self.centers(pl_module).detach().clone())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # runs after GradScaler.unscale_: the gradient the step is about to use
        self.step_grads.append(self.centers(pl_module).grad.detach().clone())

    def on_train_end(self, trainer, pl_module) -> None:
        self.after_fit = self.centers(pl_module).detach().clone()


class InjectInfGradient(L.Callback):
    """Make one step's gradient non-finite, before GradScaler looks at it."""

    def __init__(self, batch_index: int) -> None:
        self.batch_index = batch_index
        self.current = -1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.current = batch_idx

    def on_after_backward(self, trainer, pl_module) -> None:
        if self.current == self.batch_index:
            weight = next(p for p in pl_module.backbone.parameters() if p.grad is not None)
            weight.grad.view(-1)[0] = float("inf")


def _fit(make_config, precision: str, callbacks: list[L.Callback], init_state=None,
         accumulate: int = 1, overrides: list[str] | None = None):
    cfg = make_config([*CENTER_TRAIN, *(overrides or [])])
    L.seed_everything(0, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule.num_classes)
    if init_state is not None:
        module.load_state_dict(init_state)
    if precision == "16-mixed":
        # Lightning turns precision="16-mixed" on CPU into bf16; pass fp16 AMP with its
        # GradScaler explicitly, as it runs on a GPU
        # (a small initial scale: no overflow skips in these few steps, still 256x scaled)
        scaler = torch.amp.GradScaler("cpu", init_scale=INIT_SCALE)
        plugins = [MixedPrecision("16-mixed", "cpu", scaler=scaler)]
        precision_flag = None
    else:
        plugins, precision_flag = [], precision
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, precision=precision_flag,
                        plugins=plugins,
                        accumulate_grad_batches=accumulate, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=callbacks)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


@pytest.fixture
def initial_state(make_config):
    cfg = make_config(CENTER_TRAIN)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    torch.manual_seed(0)
    return copy.deepcopy(build_module(cfg, datamodule.num_classes).state_dict())


def test_centres_follow_the_strong_baseline_update_in_fp32(make_config, initial_state):
    recorder = CenterRecorder()
    module, trainer = _fit(make_config, "32-true", [recorder], initial_state)
    assert isinstance(trainer.optimizers[0], WithCenterSGD)
    snapshots = [*recorder.before_batch, recorder.after_fit]
    assert len(recorder.step_grads) == 4
    for before, after, grad in zip(snapshots, snapshots[1:], recorder.step_grads):
        # c <- c - 0.5 * grad / 0.0005, whatever the network's optimizer (Adam) does
        torch.testing.assert_close(after, before - CENTER_LR * grad / CENTER_WEIGHT)
        assert grad.abs().max() > 0
    # the schedule (warmup, cosine) never touches the centres' learning rate
    assert trainer.optimizers[0].center_groups[0]["lr"] == CENTER_LR


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_follows_the_fp32_centre_trajectory(make_config, initial_state,
                                                             precision):
    # network lr 0: the network stays put (Adam amplifies rounding into a different network
    # within a few steps), so the centres see the same features up to autocast's rounding
    frozen_network = ["optimizer.lr=0"]
    reference = CenterRecorder()
    _fit(make_config, "32-true", [reference], initial_state, overrides=frozen_network)
    mixed = CenterRecorder()
    _, trainer = _fit(make_config, precision, [mixed], initial_state, overrides=frozen_network)
    start = reference.before_batch[0]
    fp32_path = [c - start for c in (*reference.before_batch[1:], reference.after_fit)]
    mixed_path = [c - start for c in (*mixed.before_batch[1:], mixed.after_fit)]
    # a centre step on GradScaler's scaled gradients would move them 256x too far
    for step, (fp32_move, mixed_move) in enumerate(zip(fp32_path, mixed_path)):
        relative = float((mixed_move - fp32_move).norm() / fp32_move.norm())
        assert relative < 0.02, f"{precision}: step {step} off the fp32 path by {relative:.3f}"
    if precision == "16-mixed":
        assert trainer.precision_plugin.scaler.get_scale() == INIT_SCALE  # no step skipped


def test_a_step_that_gradscaler_skips_leaves_the_centres_untouched(make_config,
                                                                    initial_state):
    recorder = CenterRecorder()
    module, trainer = _fit(make_config, "16-mixed", [recorder, InjectInfGradient(1)],
                           initial_state)
    snapshots = [*recorder.before_batch, recorder.after_fit]
    assert torch.equal(snapshots[1], snapshots[2])  # batch 1's step was skipped
    assert not torch.equal(snapshots[0], snapshots[1])  # the others moved them
    assert not torch.equal(snapshots[2], snapshots[3])
    assert torch.isfinite(snapshots[-1]).all()
    scaler = trainer.precision_plugin.scaler
    assert scaler.get_scale() == INIT_SCALE / 2  # the scaler saw the inf and backed off


def test_gradient_accumulation_steps_the_centres_once_per_optimizer_step(make_config,
                                                                         initial_state):
    recorder = CenterRecorder()
    _fit(make_config, "32-true", [recorder], initial_state, accumulate=2)
    before = recorder.before_batch
    assert len(before) == 4 and len(recorder.step_grads) == 2
    assert torch.equal(before[0], before[1])  # no centre step after the first micro-batch
    assert torch.equal(before[2], before[3])
    torch.testing.assert_close(before[2], before[0] - CENTER_LR * recorder.step_grads[0]
                               / CENTER_WEIGHT)
    torch.testing.assert_close(recorder.after_fit, before[2] - CENTER_LR
                               * recorder.step_grads[1] / CENTER_WEIGHT)


def test_centre_optimizer_state_survives_a_checkpoint_round_trip():
    centers = torch.nn.Parameter(torch.randn(3, 4))
    weight = torch.nn.Parameter(torch.randn(4))
    optimizer = WithCenterSGD(torch.optim.Adam([weight], lr=0.1), [centers], lr=0.5,
                              grad_divisor=CENTER_WEIGHT)
    ((weight ** 2).sum() + CENTER_WEIGHT * (centers ** 2).sum()).backward()
    optimizer.step()
    restored = WithCenterSGD(torch.optim.Adam([weight], lr=0.1), [centers], lr=0.5,
                             grad_divisor=CENTER_WEIGHT)
    restored.load_state_dict(optimizer.state_dict())
    # the wrapped Adam sees the restored moments and groups (one shared state)
    assert restored.network.state[weight]["step"] == 1
    assert restored.network.param_groups[0] is restored.param_groups[0]
    assert restored.center_groups[0]["lr"] == 0.5
