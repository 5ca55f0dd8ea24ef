"""The generative-augmentation study (experiments/lsro_study.py): its GAN commands compose to
task=gan at the CPU recipe's settings, each GAN sees exactly the training people of the Re-ID
run it feeds (same split, same seed), and the summary tables pair the arms seed by seed."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import REPO_ROOT, compose_config

from reidsort.generative.data import GANDataModule

STUDY_SCRIPT = REPO_ROOT / "experiments" / "lsro_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("lsro_study", STUDY_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lsro_study"] = module
    spec.loader.exec_module(module)
    return module


def _gan_overrides(study, dataset: str, seed: int) -> list[str]:
    spec = study.DATASETS[dataset]
    return [*spec["gan"], f"seed={seed}", f"gan.max_epochs={spec['gan_epochs']}",
            f"gan.quality.every_n_epochs={study.QUALITY_EVERY}"]


@pytest.mark.parametrize("dataset", ["synthetic", "mini_mars"])
def test_gan_commands_compose_to_the_cpu_recipe(study, dataset, tmp_path):
    cfg = compose_config(_gan_overrides(study, dataset, 1), tmp_path)
    recipe = compose_config(["experiment=gan_cpu"], tmp_path)
    assert cfg.task.name == "gan" and cfg.gan.module.kind == "dcgan"
    assert list(cfg.gan.image_size) == [64, 32]
    for key in ("base_channels", "latent_dim", "ema_decay"):
        assert cfg.gan.module[key] == recipe.gan.module[key], key
    assert cfg.gan.data.batch_size == recipe.gan.data.batch_size
    assert list(cfg.gan.quality.input_size) == list(recipe.gan.quality.input_size)
    assert cfg.gan.quality.num_samples == recipe.gan.quality.num_samples
    reid = compose_config([*study.DATASETS[dataset]["reid"], "seed=1"], tmp_path)
    assert reid.task.name == "train"
    # the GAN reads the Re-ID run's data config: same dataset, hold-out and seed
    for key in ("format", "root", "val_identities", "seed"):
        assert cfg.data.get(key) == reid.data.get(key), key


def test_mini_mars_gan_sees_exactly_the_training_people_of_its_seed(study, shared_data,
                                                                    tmp_path):
    held_out = {}
    for seed in (1, 2):
        cfg = compose_config(_gan_overrides(study, "mini_mars", seed), tmp_path / f"g{seed}")
        gan = GANDataModule.from_config(cfg.data, image_size=[64, 32], seed=seed,
                                        batch_size=8, num_workers=0)
        gan.setup("fit")
        reid = gan.reid
        reid.setup("fit")
        validation = {r.pid for r in [*reid.split.query, *reid.split.gallery]}
        assert len(validation) == 6
        assert {r.path for r in gan.records} == {r.path for r in reid.split.train}
        assert not {r.pid for r in gan.records} & validation
        held_out[seed] = validation
    # each seed draws its own held-out people: one GAN per seed is needed
    assert held_out[1] != held_out[2]


def test_tables_pair_the_arms_seed_by_seed(study):
    runs = {"synthetic": {("baseline", 1): {"mAP": 0.5, "rank1": 0.6},
                          ("lsro", 1): {"mAP": 0.55, "rank1": 0.6},
                          ("baseline", 2): {"mAP": 0.4, "rank1": 0.5},
                          ("lsro", 2): {"mAP": 0.35, "rank1": 0.55}}}
    table, numbers = study.results_table(runs, [1, 2])
    summary = numbers["synthetic/mAP"]
    assert summary["differences"] == pytest.approx({1: 0.05, 2: -0.05})
    assert summary["difference"][0] == pytest.approx(0.0)
    assert summary["baseline"][0] == pytest.approx(0.45)
    assert summary["lsro"][0] == pytest.approx(0.45)
    assert "+0.050, -0.050" in table and "80 test identities" in table
    gans = {("synthetic", 1): {"quality": [{"epoch": 4.0, "fid": 900.0, "kid": 2.0},
                                           {"epoch": 9.0, "fid": 700.0, "kid": 1.5},
                                           {"epoch": 14.0, "fid": 750.0, "kid": 1.6}],
                               "train_images": 585.0, "seconds": 100.0,
                               "quality_plot": "q.png"}}
    row = study.gan_table(gans).splitlines()[-1]
    assert "900.0 (epoch 5) / 700.0 / 750.0 (epoch 15)" in row and "| 585 |" in row
