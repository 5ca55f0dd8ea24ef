"""Every ``python main.py`` command line in the README composes, and every training line
resolves to the recipe it promises (image size, epochs, batches per epoch, learning rate).

A recipe chosen for one dataset must not leak into another: ``python main.py`` is the quick
synthetic job, ``data=market1501`` gets Market-1501's own (strong-baseline) defaults.
"""

from __future__ import annotations

import itertools
import re
import shlex

import pytest

from conftest import REPO_ROOT, compose_config

README = REPO_ROOT / "README.md"
#: stands in for the README's placeholders (``...``, ``$R``)
PLACEHOLDER_PATH = "/tmp/reidsort-readme-placeholder"

SYNTHETIC_JOB = {"image_size": [64, 32], "max_epochs": 5, "batches_per_epoch": 40, "lr": 3e-3}
#: real data: the strong baseline's 256x128, 120 epochs, every image once per epoch, Adam 3.5e-4
REAL_DATA = {"image_size": [256, 128], "max_epochs": 120, "batches_per_epoch": None,
             "lr": 3.5e-4}

#: what each training line of the README resolves to (matched by the first key contained in
#: the line's overrides, most specific first)
EXPECTED_TRAINING: list[tuple[str, dict]] = [
    ("data.root=/data/tud_reid", {"image_size": [64, 32], "max_epochs": 12,
                                  "batches_per_epoch": 25, "lr": 3.5e-4}),
    ("model=osnet optimizer=sgd trainer.max_epochs=60", {**REAL_DATA, "lr": 0.05}),
    ("data=market1501", REAL_DATA),
    ("data=folder", REAL_DATA),
    ("hparams_search=optuna", SYNTHETIC_JOB),
    ("resume=true", SYNTHETIC_JOB),
    ("", SYNTHETIC_JOB),
]


def readme_command_lines() -> list[str]:
    """The ``python main.py ...`` lines of the README's bash blocks, continuations joined."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.strip()
            if "python main.py" not in line or line.startswith("#"):
                continue
            command = line[line.index("python main.py") + len("python main.py"):]
            commands.append(command.split(" #", 1)[0].strip())
    return commands


def overrides_of(command: str) -> list[list[str]]:
    """The override lists the command composes (one per job of a ``-m`` sweep)."""
    arguments = []
    command = re.sub(r"<[a-z_]+>", "run", command.replace("$R", PLACEHOLDER_PATH))
    for token in shlex.split(command):
        if token in ("-m", "...") or token.startswith(("hydra", "--")):
            continue  # launcher / sweeper settings and placeholders, not the job's config
        key, _, value = token.partition("=")
        if value == "...":
            value = PLACEHOLDER_PATH
        arguments.append((key, value))
    # a sweep over comma-separated choices: one job per combination (quoted lists stay whole)
    choices = [[f"{k}={v}" for v in (v.split(",") if "," in v and "[" not in v else [v])]
               for k, v in arguments]
    return [list(job) for job in itertools.product(*choices)]


COMMANDS = readme_command_lines()


def test_the_readme_has_command_lines():
    assert len(COMMANDS) >= 30
    assert "" in COMMANDS  # the main job: plain `python main.py`


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_composes_to_what_it_promises(command, tmp_path):
    for overrides in overrides_of(command):
        cfg = compose_config(overrides, tmp_path)
        if cfg.task.name != "train":
            continue
        expected = next(values for key, values in EXPECTED_TRAINING if key in overrides
                        or key in " ".join(overrides))
        resolved = {
            "image_size": list(cfg.data.image_size),
            "max_epochs": cfg.trainer.max_epochs,
            "batches_per_epoch": cfg.data.batches_per_epoch,
            "lr": cfg.optimizer.lr,
        }
        for key in ("max_epochs", "image_size"):
            # an explicit override on the command line wins, as it should
            flag = {"max_epochs": "trainer.max_epochs=", "image_size": "data.image_size="}[key]
            given = next((o for o in overrides if o.startswith(flag)), None)
            if given is not None:
                expected = {**expected, key: resolved[key]}
        assert resolved == expected, f"python main.py {' '.join(overrides)}"


def test_a_dataset_choice_gets_its_own_defaults_not_the_synthetic_recipe(tmp_path):
    market = compose_config(["data=market1501", "model=resnet50", "trainer=gpu"], tmp_path)
    assert list(market.data.image_size) == [256, 128]
    assert market.trainer.max_epochs == 120 and market.data.batches_per_epoch is None
    assert market.optimizer.lr == pytest.approx(3.5e-4)
    assert market.scheduler.warmup_epochs == 10
    assert market.model.backbone.pretrained == "imagenet"
    assert market.data.num_workers == 4 and market.data.augment.pad == 10
    quick = compose_config([], tmp_path)
    assert quick.model.backbone.pretrained is None  # nothing to download in the main job
    assert quick.data.augment.pad == 4 and quick.scheduler.warmup_epochs == 1


def test_the_strong_baseline_recipe_is_the_reference_schedule(tmp_path):
    cfg = compose_config(["experiment=market1501_resnet50_bot"], tmp_path)
    assert cfg.model.backbone._target_.endswith("resnet50")
    assert cfg.model.backbone.pretrained == "imagenet" and cfg.model.backbone.last_stride == 1
    assert list(cfg.data.image_size) == [256, 128] and (cfg.data.p, cfg.data.k) == (16, 4)
    assert cfg.data.batches_per_epoch is None and cfg.data.val_identities is None
    assert cfg.trainer.max_epochs == 120 and cfg.trainer.precision == "32-true"
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 3.5e-4
    assert cfg.optimizer.weight_decay == 5e-4 and cfg.module.no_decay_norm_and_bias is False
    assert cfg.scheduler._target_.endswith("WarmupMultiStepLR")
    assert list(cfg.scheduler.milestones) == [40, 70] and cfg.scheduler.gamma == 0.1
    assert cfg.scheduler.warmup_epochs == 10 and cfg.scheduler.warmup_start_factor == 0.01
    assert cfg.scheduler.granularity == "epoch"
    assert cfg.loss.center_weight == 5e-4 and cfg.loss.center_lr == 0.5
    assert cfg.loss.triplet_margin == 0.3 and cfg.loss.label_smoothing == 0.1
    assert cfg.data.augment.random_erasing == 0.5 and cfg.data.augment.pad == 10


def test_overrides_of_a_sweep_gives_one_job_per_choice():
    assert overrides_of("model=osnet optimizer=adam,sgd -m") == [
        ["model=osnet", "optimizer=adam"], ["model=osnet", "optimizer=sgd"]]
    assert overrides_of("task=evaluate results=... 'task.sequences=[a,b]'") == [
        ["task=evaluate", f"results={PLACEHOLDER_PATH}", "task.sequences=[a,b]"]]

