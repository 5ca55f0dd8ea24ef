"""GAN training data: only the training identities of a Re-ID dataset (never validation or
test query/gallery), at the GAN's size in [-1, 1], seeded, sharded per rank."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reidsort.data.records import ImageRecord
from reidsort.generative.data import GANDataModule, ToGANImage, check_image_size
from reidsort.utils.errors import ReidsortError

TINY_DATA = [
    "data.synthetic.num_identities=24",
    "data.synthetic.num_cameras=4",
    "data.synthetic.images_per_identity_camera=2",
    "data.val_identities=4",
    "data.num_workers=0",
]


def _gan_data(make_config, overrides=(), **options) -> GANDataModule:
    cfg = make_config([*TINY_DATA, *overrides])
    options = {"image_size": [32, 16], "batch_size": 4, "seed": 0, **options}
    data = GANDataModule.from_config(cfg.data, **options)
    data.prepare_data()
    data.setup("fit")
    return data


def test_only_training_identities_reach_the_gan(make_config):
    data = _gan_data(make_config)
    reid = data.reid
    reid.setup("fit")
    gan_paths = {r.path for r in data.records}
    assert gan_paths == {r.path for r in reid.split.train}
    held_out = {r.path for r in [*reid.split.query, *reid.split.gallery,
                                 *reid.final.test_query, *reid.final.test_gallery]}
    assert held_out and not gan_paths & held_out
    # the identities too: no validation or test person is ever shown to the GAN
    held_out_pids = {r.pid for r in [*reid.split.query, *reid.final.test_query]}
    assert not {r.pid for r in data.records} & held_out_pids
    # labels are the Re-ID training relabelling: 0..C-1, the same mapping as ReIDDataModule
    assert data.label_of_pid == reid.label_of_pid and data.num_classes == 8
    assert sorted(set(data.labels)) == list(range(8))
    summary = data.summary()
    assert summary["train_images"] == len(reid.split.train) and summary["train_identities"] == 8
    record = data.record()
    assert record["pid_of_label"] == sorted(reid.label_of_pid)
    assert record["image_size"] == [32, 16]


def test_generated_images_never_train_a_gan(make_config, tmp_path):
    folder = tmp_path / "generated"
    folder.mkdir()
    Image.new("RGB", (16, 32), (10, 200, 10)).save(folder / "g.png")
    data = _gan_data(make_config, [f"data.generated_root={folder}"])
    assert data.reid.generated_root is None
    assert all("generated" not in r.path for r in data.records)


def test_batches_are_gan_images_in_range_with_labels(make_config):
    data = _gan_data(make_config, flip=False)
    images, labels, *_ = next(iter(data.train_dataloader()))
    assert images.shape == (4, 3, 32, 16) and images.dtype == torch.float32
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0.05
    assert labels.dtype == torch.long and labels.max() < data.num_classes
    # drop_last: every batch is full
    assert all(len(batch[0]) == 4 for batch in data.train_dataloader())


def test_the_image_is_the_antialiased_resize_scaled_to_minus_one_one():
    image = torch.randint(0, 256, (3, 64, 32), dtype=torch.uint8)
    out = ToGANImage([32, 16], flip=False)(image)
    # the antialiased (triangle-filter) bilinear of PIL, within one grey level
    pil = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((16, 32), Image.BILINEAR)
    expected = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 127.5 - 1.0
    assert out.shape == (3, 32, 16)
    assert (out - expected).abs().max() <= 1.01 / 127.5
    black, white = torch.zeros_like(image), torch.full_like(image, 255)
    assert torch.equal(ToGANImage([32, 16], False)(black), torch.full((3, 32, 16), -1.0))
    assert torch.equal(ToGANImage([32, 16], False)(white), torch.full((3, 32, 16), 1.0))
    torch.manual_seed(0)
    flipped = [ToGANImage([32, 16], flip=True)(image) for _ in range(20)]
    assert any(torch.equal(f, out.flip(-1)) for f in flipped)
    assert any(torch.equal(f, out) for f in flipped)


def test_shuffling_is_seeded_per_epoch_and_sharded_per_rank(make_config):
    data = _gan_data(make_config, flip=False)
    loader = data.train_dataloader()

    def epoch_order(epoch: int, seed_data: GANDataModule = data) -> list[int]:
        sampler = seed_data.train_dataloader().sampler
        sampler.set_epoch(epoch)
        return list(sampler)

    assert epoch_order(0) == epoch_order(0)
    assert epoch_order(0) != epoch_order(1)
    assert sorted(epoch_order(0)) == list(range(len(data.records)))
    assert len(loader) == len(data.records) // 4

    class FakeTrainer:
        world_size = 2

        def __init__(self, rank):
            self.global_rank = rank

    shards = []
    for rank in (0, 1):
        data.trainer = FakeTrainer(rank)
        sampler = data.train_dataloader().sampler
        sampler.set_epoch(3)
        shards.append(list(sampler))
    assert not set(shards[0]) & set(shards[1])
    assert len(shards[0]) == len(shards[1]) == len(data.records) // 2


def test_the_reference_images_are_fixed_unflipped_and_capped(make_config):
    data = _gan_data(make_config, flip=True)
    first = torch.cat([b[0] for b in data.reference_loader(batch_size=5)])
    again = torch.cat([b[0] for b in data.reference_loader(batch_size=7)])
    assert torch.equal(first, again) and len(first) == len(data.records)
    capped = list(data.reference_loader(max_images=6, batch_size=4))
    assert sum(len(b[0]) for b in capped) == 6


def test_unreadable_training_images_are_replaced_like_reid_training(make_config, tmp_path):
    data = _gan_data(make_config, flip=False)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    first = data.train_set.records[0]
    # a file that breaks after the scan: another image of the same person stands in
    data.train_set.records[0] = ImageRecord(str(broken), first.pid, first.camid)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        image, label, *_ = data.train_set[0]
    assert image.shape == (3, 32, 16) and label == data.labels[0]
    assert str(broken) in data.unreadable


def test_bad_settings_are_one_line_errors(make_config):
    with pytest.raises(ValueError, match=r"height > width"):
        check_image_size([64, 128])
    with pytest.raises(ValueError, match="batch_size"):
        _gan_data(make_config, batch_size=0)
    with pytest.raises(ReidsortError, match="fewer than gan.data.batch_size=10000"):
        _gan_data(make_config, batch_size=10000)
