"""Every config file composes, and every object in it instantiates."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from conftest import compose_config
from reidsort.utils.hydra_utils import config_dir, resolved_yaml

CONF = config_dir()


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_default_config_composes_and_resolves(tmp_path, monkeypatch):
    # paths follow the folder the command starts from, like any Hydra app's outputs/
    monkeypatch.delenv("REIDSORT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = compose_config([], tmp_path)
    resolved_yaml(cfg)
    assert cfg.task.name == "train"
    assert cfg.optimized_metric == "val/mAP"
    assert cfg.model.backbone._target_.endswith("resnet18")
    assert list(cfg.data.image_size) == [64, 32]
    assert cfg.trainer.use_distributed_sampler is False
    assert Path(cfg.paths.root_dir) == tmp_path
    assert Path(cfg.paths.data_dir) == tmp_path / "data"


@pytest.mark.parametrize("task", _options("task"))
def test_every_task_composes(task, tmp_path):
    cfg = compose_config([f"task={task}"], tmp_path)
    resolved_yaml(cfg)
    assert cfg.task.name == task


@pytest.mark.parametrize("model", _options("model"))
def test_every_model_instantiates(model, tmp_path):
    cfg = compose_config([f"model={model}"], tmp_path)
    backbone = instantiate(cfg.model.backbone)
    assert backbone.feature_dim > 0
    head = instantiate(cfg.model.head, in_features=backbone.feature_dim, num_classes=3)
    assert head.classifier.out_features == 3


def test_osnet_family_default_is_x1_0(tmp_path):
    cfg = compose_config(["model=osnet"], tmp_path)
    assert cfg.model.backbone._target_.endswith("osnet_x1_0")


@pytest.mark.parametrize("loss", _options("loss"))
def test_every_loss_instantiates(loss, tmp_path):
    cfg = compose_config([f"loss={loss}"], tmp_path)
    objective = instantiate(cfg.loss, num_classes=4, feat_dim=8)
    assert objective.ce_weight >= 0


@pytest.mark.parametrize("optimizer", _options("optimizer"))
@pytest.mark.parametrize("scheduler", _options("scheduler"))
def test_every_optimizer_and_scheduler_instantiate(optimizer, scheduler, tmp_path):
    import torch

    cfg = compose_config([f"optimizer={optimizer}", f"scheduler={scheduler}"], tmp_path)
    param = torch.nn.Parameter(torch.zeros(2))
    opt = instantiate(cfg.optimizer)([param])
    sched = instantiate(cfg.scheduler)(opt, steps_per_epoch=5)
    opt.step()
    sched.step()


@pytest.mark.parametrize("trainer", _options("trainer"))
def test_every_trainer_composes(trainer, tmp_path):
    cfg = compose_config([f"trainer={trainer}"], tmp_path)
    assert cfg.trainer.use_distributed_sampler is False
    if trainer in ("default", "cpu"):
        t = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert t.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("logger", _options("logger"))
def test_every_logger_instantiates(logger, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = compose_config([f"logger={logger}"], tmp_path)
    for node in cfg.logger.values():
        if node.get("_target_", "").endswith("WandbLogger"):
            assert node.offline is True  # no network here: offline mode
            continue  # creating a W&B run spawns its service; composing is enough here
        instantiate(node)


@pytest.mark.parametrize("callbacks", _options("callbacks"))
def test_every_callback_instantiates(callbacks, tmp_path):
    cfg = compose_config([f"callbacks={callbacks}"], tmp_path)
    for node in (cfg.callbacks or {}).values():
        instantiate(node)


@pytest.mark.parametrize("debug", _options("debug"))
def test_every_debug_composes(debug, tmp_path):
    cfg = compose_config([f"debug={debug}"], tmp_path)
    assert cfg.data.num_workers == 0


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_composes(experiment, tmp_path):
    cfg = compose_config([f"experiment={experiment}"], tmp_path)
    resolved_yaml(cfg)


@pytest.mark.parametrize("search", _options("hparams_search"))
def test_every_hparams_search_composes(search, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    # a tracker sweep selects a tracker, which only task=track has
    task = ["task=track"] if search.endswith("optuna") and search != "optuna" else []
    cfg = compose_config(task + [f"hparams_search={search}"], tmp_path)
    assert cfg.hydra.sweeper.params


@pytest.mark.parametrize("data", _options("data"))
def test_every_data_config_composes(data, tmp_path):
    cfg = compose_config([f"data={data}", "data.root=/nonexistent"], tmp_path)
    dm = instantiate(cfg.data)
    assert dm.format == cfg.data.format


def test_group_equals_null_means_none_of_that_group(tmp_path):
    import subprocess
    import sys

    from conftest import REPO_ROOT
    from reidsort.cli import null_groups_as_deletions

    assert null_groups_as_deletions(["experiment=null", "data.root=null", "seed=null"],
                                    {"experiment", "data"}) == [
        "~experiment", "data.root=null", "seed=null"]
    done = subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), "experiment=null",
                           "debug=null", "--cfg", "job"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "Traceback" not in done.stderr


def test_onnx_embedder_preprocessing_overrides_need_no_plus(tmp_path):
    import inspect

    from reidsort.embedders.onnx import OnnxEmbedder

    cfg = compose_config(["task=track", "embedder=onnx", "embedder.input_size=[256,128]",
                          "embedder.mean=[0.485,0.456,0.406]", "embedder.std=[0.229,0.224,0.225]",
                          "embedder.channel_order=rgb"], tmp_path)
    assert list(cfg.embedder.input_size) == [256, 128] and cfg.embedder.channel_order == "rgb"
    assert list(cfg.embedder.mean) == [0.485, 0.456, 0.406]
    # every key of the YAML is a constructor argument (null = from the model's metadata)
    parameters = inspect.signature(OnnxEmbedder).parameters
    assert set(cfg.embedder) - {"_target_"} <= set(parameters)
    assert all(parameters[k].default is None for k in ("input_size", "mean", "std",
                                                      "channel_order"))


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_no_experiment_optimises_a_validation_metric_it_has_no_split_for(experiment, tmp_path):
    """A recipe without validation identities must not name val/* as the sweep target (the
    run would fail after training, or a fix would tune on the reported split)."""
    cfg = compose_config([f"experiment={experiment}"], tmp_path)
    if cfg.task.name == "train" and cfg.data.get("val_identities", 0) is None:
        assert not str(cfg.get("optimized_metric") or "").startswith("val/"), experiment


def test_distillation_overrides_in_the_jde_config_comment_compose(tmp_path):
    cfg = compose_config(["experiment=fairmot_cpu", "+jde.distill.reid.path=/teacher.ckpt",
                          "+jde.distill.reid.logits_weight=0.5"], tmp_path)
    assert cfg.jde.distill.reid.path == "/teacher.ckpt"
    assert cfg.jde.distill.reid.logits_weight == 0.5
