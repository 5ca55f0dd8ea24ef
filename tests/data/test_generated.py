"""Generated images for LSRO: reading the folder, the sampler's generated tail (per epoch,
seeded, DDP-sharded) and the data module keeping them out of everything but training."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN
from hydra.utils import instantiate

from reidsort.data.generated import (
    GENERATED_LABEL,
    GeneratedImageDataset,
    generated_per_batch,
    read_generated_folder,
)
from reidsort.data.sampler import PKBatchSampler
from reidsort.utils.errors import ReidsortError, user_error_message

#: 12 identities (ids 0..11) with 4 images each
PIDS = np.repeat(np.arange(12), 4)
#: what a GAN writes: people stand upright, taller than wide
GENERATED_HW = (32, 16)


def write_people(folder: Path, count: int, suffix: str = ".png", seed: int = 0) -> list[Path]:
    """``count`` random 32x16 RGB images in ``folder`` (made here, a stand-in for GAN output)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"gen_{seed}_{i:03d}{suffix}"
        assert cv2.imwrite(str(path), rng.integers(0, 256, (*GENERATED_HW, 3), dtype=np.uint8))
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------ the folder
def test_reads_a_flat_folder_and_nested_ones(tmp_path):
    flat = write_people(tmp_path / "flat", 3)
    assert read_generated_folder(tmp_path / "flat").paths == sorted(str(p) for p in flat)

    nested = [*write_people(tmp_path / "tree" / "a", 2, ".jpg"),
              *write_people(tmp_path / "tree" / "b" / "c", 2, ".jpeg", seed=1)]
    upper = tmp_path / "tree" / "UPPER.PNG"
    write_people(tmp_path / "tree", 1)[0].rename(upper)
    # neither a manifest, nor another image type, nor a hidden file is a generated image
    (tmp_path / "tree" / "generated.json").write_text("{}")
    write_people(tmp_path / "tree", 1, ".bmp")
    write_people(tmp_path / "tree" / ".hidden", 1)
    folder = read_generated_folder(tmp_path / "tree")
    assert folder.paths == sorted(str(p) for p in [*nested, upper])
    assert folder.skipped == []


def test_unreadable_files_are_skipped_with_a_warning_and_counted(tmp_path, caplog):
    good = write_people(tmp_path, 3)
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:40])
    with caplog.at_level(logging.WARNING, logger="reidsort.data.generated"):
        folder = read_generated_folder(tmp_path)
    assert folder.paths == sorted(str(p) for p in good)
    assert sorted(Path(p).name for p in folder.skipped) == ["empty.jpg", "text.png",
                                                             "truncated.png"]
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "skipping 3 unreadable generated image(s)" in warning[0]
    assert f"data.generated_root={tmp_path}" in warning[0]


@pytest.mark.parametrize("case", ["missing", "file", "empty", "no_images", "all_unreadable"])
def test_a_bad_folder_is_a_one_line_error_naming_it(tmp_path, case):
    root = tmp_path / "gen"
    if case == "file":
        root.write_text("x")
    elif case != "missing":
        root.mkdir()
    if case == "no_images":
        (root / "generated.json").write_text("{}")
    if case == "all_unreadable":
        (root / "a.png").write_text("nope")
    with pytest.raises(ReidsortError) as error:
        read_generated_folder(root)
    message = str(error.value)
    assert message.startswith(f"data.generated_root={root}: ") and "\n" not in message
    expected = {"missing": "folder not found", "file": "not a folder",
                "empty": "no jpeg/jpg/png images", "no_images": "no jpeg/jpg/png images",
                "all_unreadable": "none of its 1 image files is readable"}[case]
    assert expected in message


def test_a_file_that_fails_to_decode_later_is_replaced_by_another(tmp_path):
    paths = write_people(tmp_path, 2)
    dataset = GeneratedImageDataset([str(p) for p in paths], lambda image: image)
    paths[0].write_bytes(b"broken after the check")
    with pytest.warns(RuntimeWarning, match="unreadable generated image"):
        image, label, camid, index = dataset[0]
    assert tuple(image.shape) == (3, *GENERATED_HW) and label == GENERATED_LABEL == -1
    assert (camid, index) == (-1, 0) and dataset.bad_files == {str(paths[0])}


def test_generated_per_batch_is_the_ratio_of_p_x_k():
    assert generated_per_batch(0.25, 16, 4) == 16
    assert generated_per_batch(0.25, 4, 2) == 2
    assert generated_per_batch(0.01, 4, 2) == 0


# --------------------------------------------------------------------------- the sampler
def _sampler(**kwargs) -> PKBatchSampler:
    settings = {"p": 4, "k": 2, "seed": 3, "num_replicas": 1, "rank": 0, "batches_per_epoch": 5}
    return PKBatchSampler(PIDS, **{**settings, **kwargs})


def test_batches_are_p_x_k_real_then_the_generated_tail():
    plain = _sampler()
    mixed = _sampler(num_generated=7, generated_per_batch=4)
    assert mixed.samples_per_rank == 8 + 4
    for plain_batch, batch in zip(plain, mixed, strict=True):
        assert len(batch) == 12
        # the real part is the batch of a run without generated images, the tail is generated
        assert batch[:8] == plain_batch
        assert all(len(PIDS) <= i < len(PIDS) + 7 for i in batch[8:])


def test_generated_picks_are_seeded_per_epoch_and_use_every_image_once_first():
    settings = {"num_generated": 20, "generated_per_batch": 4}
    sampler = _sampler(**settings)
    first = sampler.generated_batches()
    # same seed, same epoch: same picks; another epoch or another seed: others
    assert torch.equal(first, _sampler(**settings).generated_batches())
    sampler.set_epoch(1)
    assert not torch.equal(first, sampler.generated_batches())
    assert not torch.equal(first, _sampler(seed=4, **settings).generated_batches())
    # 5 batches x 4 = 20 picks of 20 images: one shuffle, every image once
    assert sorted(first.reshape(-1).tolist()) == list(range(len(PIDS), len(PIDS) + 20))


@pytest.mark.parametrize("pool", [3, 7])
def test_a_batch_holds_distinct_generated_images_when_there_are_enough(pool):
    batches = _sampler(num_generated=pool, generated_per_batch=3,
                       batches_per_epoch=9).generated_batches()
    assert batches.shape == (9, 3)
    assert all(len(set(row)) == 3 for row in batches.tolist())
    assert set(batches.reshape(-1).tolist()) <= set(range(len(PIDS), len(PIDS) + pool))
    # more per batch than there are: every image in every batch, some twice
    crowded = _sampler(num_generated=2, generated_per_batch=3).generated_batches()
    assert all(sorted(set(row)) == [len(PIDS), len(PIDS) + 1] for row in crowded.tolist())


def test_two_replicas_split_the_generated_tail_disjointly():
    settings = {"num_generated": 9, "generated_per_batch": 4}
    whole = list(_sampler(**settings))
    ranks = [list(_sampler(num_replicas=2, rank=r, **settings)) for r in range(2)]
    for batch, rank0, rank1 in zip(whole, *ranks, strict=True):
        assert len(rank0) == len(rank1) == 4 + 2  # (P / 2) x K real, 4 / 2 generated each
        real = [*rank0[:4], *rank1[:4]]
        generated = [*rank0[4:], *rank1[4:]]
        # each rank its own share; together exactly the global batch, real and generated
        assert real == batch[:8] and generated == batch[8:]
        assert set(rank0).isdisjoint(rank1)


def test_bad_generated_settings_are_clear_errors():
    with pytest.raises(ValueError, match="cannot be split evenly over 2 ranks"):
        _sampler(num_replicas=2, num_generated=5, generated_per_batch=3)
    with pytest.raises(ValueError, match="no generated images"):
        _sampler(generated_per_batch=2)


# ----------------------------------------------------------------------- the data module
def _datamodule(make_config, *overrides: str):
    cfg = make_config([*TINY_TRAIN, *overrides])
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    return datamodule


def test_generated_images_are_training_images_only(make_config, tmp_path):
    root = tmp_path / "generated"
    generated = {str(p) for p in write_people(root, 5)}
    plain = _datamodule(make_config)
    plain.setup("fit")
    mixed = _datamodule(make_config, f"data.generated_root={root}")
    mixed.setup("fit")
    assert mixed.num_classes == plain.num_classes == 8
    assert mixed.generated_set is not None and set(mixed.generated_set.paths) == generated
    for name in ("train_set", "query_set", "gallery_set", "test_query_set",
                 "test_gallery_set"):
        paths = {r.path for r in getattr(mixed, name).records}
        assert paths.isdisjoint(generated), name
        assert paths == {r.path for r in getattr(plain, name).records}, name
    assert mixed.split == plain.split and mixed.final.test_query == plain.final.test_query
    # the summary counts them apart: the identity and image counts are the real ones
    summary = mixed.summary()
    assert summary == {**plain.summary(), "generated_images": 5,
                       "unreadable_generated_images": 0}
    # validation and test loaders read the real query/gallery only
    for loader in (*mixed.val_dataloader(), *mixed.test_dataloader()):
        assert {r.path for r in loader.dataset.dataset.records}.isdisjoint(generated)
        assert len(loader.dataset) == len(loader.dataset.dataset)
    # the training loader: P x K real + round(0.25 x 8) = 2 generated per batch, label -1
    loader = mixed.train_dataloader()
    images, labels, camids, indices = next(iter(loader))
    # the 32 x 16 generated images are resized (and augmented) like the real ones
    assert tuple(images.shape) == (10, 3, *mixed.image_size) and mixed.image_size != GENERATED_HW
    assert (labels[:8] >= 0).all() and labels[8:].tolist() == [GENERATED_LABEL] * 2
    assert camids[8:].tolist() == [-1, -1] and (indices[8:] >= len(mixed.train_set)).all()


def test_evaluating_never_needs_the_generated_folder(make_config, tmp_path):
    missing = tmp_path / "gone"
    datamodule = _datamodule(make_config, f"data.generated_root={missing}")
    loaded, final = datamodule.load()  # what task=scan / task=eval read
    assert final.has_test and loaded.split.train
    datamodule.setup("test")
    assert datamodule.generated_set is None and datamodule.test_dataloader()
    with pytest.raises(ReidsortError, match=f"data.generated_root={missing}: folder not found"):
        datamodule.setup("fit")


def test_a_ratio_that_gives_no_generated_image_is_an_error(make_config, tmp_path):
    with pytest.raises(Exception) as error:  # Hydra wraps the ValueError; the CLI unwraps it
        _datamodule(make_config, f"data.generated_root={tmp_path}", "data.generated_ratio=0.01")
    message = user_error_message(error.value)
    assert message is not None and "\n" not in message
    assert "data.generated_ratio=0.01 gives no generated image in a P4 x K2 batch" in message
