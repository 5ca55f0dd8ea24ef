"""Training options where they meet Lightning: the strong baseline's epoch-stepped schedule,
weight decay on every parameter by default, ImageNet weights through torchvision's weights API
(from local files: nothing is downloaded in tests), and checkpoints that do not need them."""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torchvision import models as tv_models

from conftest import TINY_TRAIN
from reidsort.reid.backbones import osnet_x0_25, resnet18
from reidsort.reid.backbones.pretrained import hub_cache_file, torchvision_weights
from reidsort.reid.module import ReIDModule
from reidsort.tasks.train import build_module, train

BASE_LR = 3.5e-4


def reference_lr(epoch: int, milestones=(3, 5), warmup=4, factor=0.01, gamma=0.1) -> float:
    """reid-strong-baseline's WarmupMultiStepLR as its ignite loop uses it: the scheduler is
    stepped at every epoch start, so 0-based epoch e trains at last_epoch = e + 1."""
    last_epoch = epoch + 1
    warmup_factor = 1.0
    if last_epoch < warmup:
        alpha = last_epoch / warmup
        warmup_factor = factor * (1 - alpha) + alpha
    return BASE_LR * warmup_factor * gamma ** bisect_right(list(milestones), last_epoch)


class LearningRates(L.Callback):
    def __init__(self) -> None:
        self.per_epoch: dict[int, set[float]] = {}
        self.center: set[float] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        groups = trainer.optimizers[0].param_groups
        self.per_epoch.setdefault(trainer.current_epoch, set()).add(groups[0]["lr"])
        self.center.update(g["lr"] for g in groups if g.get("center_sgd"))


def test_epoch_granularity_reproduces_the_strong_baseline_schedule(make_config):
    cfg = make_config([*TINY_TRAIN, "scheduler=warmup_multistep", "scheduler.granularity=epoch",
                       "scheduler.warmup_epochs=4", "scheduler.milestones=[3,5]",
                       f"optimizer.lr={BASE_LR}", "loss=ce_triplet_center",
                       "data.batches_per_epoch=2"])
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule.num_classes)
    rates = LearningRates()
    trainer = L.Trainer(accelerator="cpu", max_epochs=7, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, limit_val_batches=0, callbacks=[rates])
    trainer.fit(module, datamodule=datamodule)
    for epoch in range(7):
        (lr,) = rates.per_epoch[epoch]  # constant within an epoch
        assert lr == pytest.approx(reference_lr(epoch), rel=1e-9), epoch
    assert rates.center == {0.5}  # the centres' SGD is not scheduled


def test_weight_decay_reaches_norm_layers_and_biases_by_default(make_config):
    cfg = make_config([*TINY_TRAIN, "optimizer.weight_decay=5e-4"])
    module = build_module(cfg, num_classes=4)
    groups = module.parameter_groups()
    assert [g["weight_decay"] for g in groups] == [5e-4]  # one group: everything decays
    opt_out = make_config([*TINY_TRAIN, "optimizer.weight_decay=5e-4",
                           "module.no_decay_norm_and_bias=true"])
    decays = sorted(g["weight_decay"] for g in build_module(opt_out, 4).parameter_groups())
    assert decays == [0.0, 5e-4]


def _put_in_hub_cache(arch: str, name: str = "IMAGENET1K_V1", seed: int = 3) -> dict:
    torch.manual_seed(seed)
    state = getattr(tv_models, arch)().state_dict()
    path = hub_cache_file(torchvision_weights(arch, name))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_imagenet_weights_load_from_the_torch_hub_cache(torch_home):
    state = _put_in_hub_cache("resnet18")
    model = resnet18(pretrained="imagenet")
    loaded = model.state_dict()
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    assert hub_cache_file(torchvision_weights("resnet18", "imagenet")).parent == \
        torch_home / "hub" / "checkpoints"


def test_offline_without_the_file_is_one_line_naming_file_and_folder(torch_home):
    with pytest.raises(ValueError) as error:
        resnet18(pretrained="imagenet")
    message = str(error.value)
    assert "\n" not in message
    assert "resnet18-f37072fd.pth" in message and str(torch_home / "hub" / "checkpoints") \
        in message and "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


def test_other_torchvision_weight_names_and_bad_ones(torch_home):
    assert torchvision_weights("resnet50", "IMAGENET1K_V2").name == "IMAGENET1K_V2"
    with pytest.raises(ValueError, match="resnet50 knows imagenet, IMAGENET1K_V1, IMAGENET1K_V2"):
        torchvision_weights("resnet50", "imagenet21k")
    with pytest.raises(ValueError, match="torchvision has no osnet_x0_25 weights"):
        osnet_x0_25(pretrained="imagenet")


def test_a_wrong_file_in_the_cache_is_an_error_not_a_partial_load(torch_home):
    state = _put_in_hub_cache("resnet18")
    del state["layer4.1.bn2.weight"]
    torch.save(state, hub_cache_file(torchvision_weights("resnet18", "imagenet")))
    with pytest.raises(ValueError, match="missing.*layer4.1.bn2.weight"):
        resnet18(pretrained="imagenet")


def test_checkpoints_of_pretrained_runs_reload_without_the_weights(make_config, torch_home):
    _put_in_hub_cache("resnet18")
    tiny = [o for o in TINY_TRAIN if not o.startswith("model=")]
    cfg = make_config([*tiny, "model=resnet18", "model.backbone.pretrained=imagenet",
                       "data.image_size=[64,32]", "task.test=false", "callbacks=default"])
    train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    for cached in (torch_home / "hub" / "checkpoints").iterdir():
        cached.unlink()  # the ImageNet file is gone: the checkpoint must not need it
    hparams = torch.load(last, map_location="cpu")["hyper_parameters"]
    assert hparams["model"]["backbone"]["pretrained"] is None
    module = ReIDModule.load_from_checkpoint(last, map_location="cpu")
    assert module.feature_dim == 512
