"""JDE training data (reidsort.jde.data): sources, MIX identities, samples, errors, DataModule."""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from reidsort.data.fairmot import write_fairmot_labels
from reidsort.data.prepare import assign_pids, load_sequences
from reidsort.jde.data import (
    EpochShuffleSampler,
    IdentityMap,
    JDEDataModule,
    JDEDataset,
    JDESource,
    collate_jde,
)
from reidsort.utils.errors import ReidsortError

INPUT = (64, 96)  # network input (H, W), multiples of 32
FRAME_HW = (48, 64)  # the tiny frames written by write_tree
TINY_SYNTH = {"num_frames": 4, "width": 128, "height": 96, "num_people": 4, "num_pillars": 0}
NO_AUGMENT = {"enabled": False}
FLIP_ONLY = {"hsv_fraction": 0.0, "affine": False, "flip": 1.0}


def write_tree(root: Path, sequences: dict[str, list[list[str]]], list_name: str = "mot.train",
               size_hw: tuple[int, int] = FRAME_HW) -> Path:
    """A FairMOT labels_with_ids tree: real JPEG frames, one label line per string."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    listed = []
    for seq, frames in sequences.items():
        for k, rows in enumerate(frames, 1):
            rel = Path("images") / seq / "img1" / f"{k:06d}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 255, (*size_hw, 3), dtype=np.uint8)
            assert cv2.imwrite(str(root / rel), image)
            label = root / "labels_with_ids" / seq / "img1" / f"{k:06d}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(f"{row}\n" for row in rows))
            listed.append(rel.as_posix())
    (root / list_name).write_text("".join(f"{p}\n" for p in listed))
    return root


#: two sequences, raw ids 5, 9 and -1 (a box without identity), one empty frame
TREE = {
    "SEQA": [["0 5 0.5 0.5 0.25 0.5", "0 9 0.25 0.5 0.125 0.25"], []],
    "SEQB": [["0 -1 0.75 0.5 0.25 0.5", "0 5 0.5 0.25 0.5 0.25"]],
}


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_tree(tmp_path / "tree", TREE)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, Path]:
    """(data_dir, sequence folder) of a tiny rendered synthetic sequence."""
    from reidsort.data.synthetic.mot import ensure_synthetic_mot

    data_dir = tmp_path_factory.mktemp("jde_data")
    return data_dir, ensure_synthetic_mot(data_dir, **TINY_SYNTH)


# ---------------------------------------------------------------------------- sources
def test_labels_with_ids_tree_loads(tree):
    source = JDESource.from_labels_with_ids(tree)
    assert source.name == "tree" and len(source.frames) == 3
    assert source.sequences == ["SEQA", "SEQB"]
    first, empty, third = source.frames
    assert first.image == tree / "images/SEQA/img1/000001.jpg"
    assert first.label_file == tree / "labels_with_ids/SEQA/img1/000001.txt"
    np.testing.assert_allclose(first.labels, [[0, 5, 0.5, 0.5, 0.25, 0.5],
                                              [0, 9, 0.25, 0.5, 0.125, 0.25]])
    assert empty.labels.shape == (0, 6) and third.labels[0, 1] == -1
    assert source.identities().tolist() == [5, 9]


def test_synthetic_source_matches_its_gt(synthetic):
    data_dir, folder = synthetic
    source = JDESource.from_synthetic(data_dir, **TINY_SYNTH)
    assert len(source.frames) == TINY_SYNTH["num_frames"]
    gt = np.loadtxt(folder / "gt" / "gt.txt", delimiter=",", ndmin=2)
    kept = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]
    assert 0 < len(kept) < len(gt)  # some rows are consider=0 (hidden people) and are left out
    width, height = TINY_SYNTH["width"], TINY_SYNTH["height"]
    for number, frame in enumerate(source.frames, 1):
        assert frame.image == folder / "img1" / f"{number:06d}.jpg"
        rows = kept[kept[:, 0] == number]
        np.testing.assert_array_equal(frame.labels[:, 1], rows[:, 1])
        tlwh = np.column_stack([(frame.labels[:, 2] - frame.labels[:, 4] / 2) * width,
                                (frame.labels[:, 3] - frame.labels[:, 5] / 2) * height,
                                frame.labels[:, 4] * width, frame.labels[:, 5] * height])
        np.testing.assert_allclose(tlwh, rows[:, 2:6], atol=1e-9)
    dataset = JDEDataset([source], INPUT, augment=False)
    assert dataset.num_ids == len(np.unique(kept[:, 1]))


def test_prepare_labels_read_back_as_the_gt_source(synthetic, tmp_path):
    """task=prepare's labels_with_ids writer and this reader agree on every box."""
    _, folder = synthetic
    sequences = load_sequences([folder])
    pids = assign_pids(sequences, [1])
    write_fairmot_labels(tmp_path / "prep", sequences, pids, [1])
    written = JDESource.from_labels_with_ids(tmp_path / "prep")
    direct = JDESource.from_mot_sequence(folder)
    assert written.sequences == [folder.name] and len(written.frames) == len(direct.frames)
    for a, b in zip(written.frames, direct.frames):
        np.testing.assert_allclose(a.labels[:, 2:], b.labels[:, 2:], atol=1e-6)
        assert a.image.resolve() == b.image.resolve()
    assert len(written.identities()) == len(direct.identities())


def test_real_tud_sequence(shared_data):
    folder = shared_data / "mot" / "TUD-Campus"
    source = JDESource.from_mot_sequence(folder)
    assert len(source.frames) == 71 and len(source.identities()) == 8
    assert source.num_boxes == 359


def test_real_mot17_edge_boxes_pass_overlap_but_not_inside(shared_data):
    folder = shared_data / "mot" / "MOT17-trainhalf" / "MOT17-04"
    with pytest.raises(ReidsortError, match="no frame images"):  # text only: rows were fine
        JDESource.from_mot_sequence(folder)
    with pytest.raises(ReidsortError, match=r"gt\.txt:\d+: normalised cx cy w h must lie"):
        JDESource.from_mot_sequence(folder, bounds="inside")


# ---------------------------------------------------------------------------- identities
def test_mix_offsets_keep_sources_apart(tree, tmp_path, synthetic):
    data_dir, _ = synthetic
    other = write_tree(tmp_path / "other", {"X": [["0 1 0.5 0.5 0.2 0.4", "0 3 0.3 0.5 0.2 0.4",
                                                  "0 -1 0.7 0.5 0.2 0.2"]], "Y": [["0 2 0.5 0.5 0.2 0.4"]]})
    a = JDESource.from_labels_with_ids(tree)
    b = JDESource.from_labels_with_ids(other)
    c = JDESource.from_synthetic(data_dir, **TINY_SYNTH)
    dataset = JDEDataset([a, b, c], INPUT, augment=False, max_objects=16)
    n_c = len(c.identities())
    assert dataset.num_ids == 2 + 3 + n_c
    assert dataset.identities.offsets == (0, 2, 5)
    # tree: raw 5 -> 0, 9 -> 1, -1 stays; other: 1 -> 2, 2 -> 3, 3 -> 4
    assert [ids.tolist() for ids in dataset.ids[:3]] == [[0, 1], [], [-1, 0]]
    assert [ids.tolist() for ids in dataset.ids[3:5]] == [[2, 4, -1], [3]]
    synth_ids = np.concatenate(dataset.ids[5:])
    assert set(synth_ids.tolist()) == set(range(5, 5 + n_c))
    # the targets carry the global ids (and -1 for none and for padding rows)
    _, targets = dataset[3]
    assert targets.ids[:3].tolist() == [2, 4, -1] and targets.mask.sum() == 3
    assert (targets.ids[3:] == -1).all()


def test_identity_map_unknown_ids_become_minus_one():
    mapping = IdentityMap(("a", "b"), (np.array([3, 7]), np.array([1])), (0, 2))
    assert mapping.apply("a", np.array([7, 3, -1, 4])).tolist() == [1, 0, -1, -1]
    assert mapping.apply("b", np.array([1, 7])).tolist() == [2, -1]
    assert mapping.apply("unseen", np.array([1])).tolist() == [-1]


# ---------------------------------------------------------------------------- samples
def test_sample_shapes_and_letterboxed_boxes(tree):
    dataset = JDEDataset([JDESource.from_labels_with_ids(tree)], INPUT, augment=False,
                         max_objects=8, size_mode="ltrb")
    sample = dataset.raw_sample(0)
    # 48x64 frame -> 64x96 input: scale min(64/48, 96/64) = 4/3, resized to 85x64, pad_x 5
    scale, pad_x = sample.transform.scale, sample.transform.pad_x
    assert (round(scale, 6), pad_x, sample.transform.pad_y) == (round(64 / 48, 6), 5.0, 0.0)
    box = np.array([0.5 - 0.125, 0.5 - 0.25, 0.5 + 0.125, 0.5 + 0.25]) * [64, 48, 64, 48]
    np.testing.assert_allclose(sample.boxes[0], box * scale + [pad_x, 0, pad_x, 0], atol=1e-9)
    image, targets = dataset[0]
    assert image.shape == (3, *INPUT) and image.dtype == torch.float32
    assert targets.heatmap.shape == (1, 16, 24) and targets.size.shape == (8, 4)
    assert targets.mask.dtype == torch.bool and targets.mask.sum() == 2
    # padding: 127.5 grey normalised with the ImageNet mean/std
    expected = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(image[:, 10, 0], expected)


def test_flip_keeps_ids_and_mirrors_boxes(tree):
    source = JDESource.from_labels_with_ids(tree)
    plain = JDEDataset([source], INPUT, augment=False).raw_sample(0)
    flipped = JDEDataset([source], INPUT, augment=FLIP_ONLY).raw_sample(0)
    assert flipped.flipped and not plain.flipped
    assert flipped.ids.tolist() == plain.ids.tolist() == [0, 1]
    width = INPUT[1]
    np.testing.assert_allclose(flipped.boxes[:, [0, 2]], width - plain.boxes[:, [2, 0]])
    np.testing.assert_allclose(flipped.boxes[:, [1, 3]], plain.boxes[:, [1, 3]])
    np.testing.assert_array_equal(flipped.image, plain.image[:, ::-1])


def test_clip_boxes_is_mot20s_rule(tmp_path):
    # a person cut by the left edge: cx 0.02, w 0.1 -> x1 < 0 (MOT17 keeps such boxes amodal)
    root = write_tree(tmp_path / "edge", {"S": [["0 1 0.02 0.5 0.1 0.5", "0 2 0.5 0.5 0.2 0.5"]]})
    source = JDESource.from_labels_with_ids(root)
    amodal = JDEDataset([source], INPUT, augment=False).raw_sample(0)
    clipped = JDEDataset([source], INPUT, augment=False, clip_boxes=True).raw_sample(0)
    assert amodal.boxes[0, 0] < amodal.transform.pad_x  # extends into the padding
    assert clipped.boxes[0, 0] == clipped.transform.pad_x  # at the frame's edge
    np.testing.assert_allclose(clipped.boxes[1], amodal.boxes[1])
    many = JDEDataset([source], INPUT, augment=True, clip_boxes=True)
    for epoch in range(6):
        many.set_epoch(epoch)
        boxes = many.raw_sample(0).boxes
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= INPUT[1]).all()
        assert (boxes[:, [1, 3]] <= INPUT[0]).all()


def test_augmentation_is_seeded_by_seed_epoch_and_index(tree):
    source = JDESource.from_labels_with_ids(tree)
    a = JDEDataset([source], INPUT, augment=True, seed=3)
    b = JDEDataset([source], INPUT, augment=True, seed=3)
    first = a.raw_sample(0)
    a.raw_sample(2)  # other samples drawn in between change nothing
    again = a.raw_sample(0)
    for sample in (again, b.raw_sample(0)):
        np.testing.assert_array_equal(sample.image, first.image)
        np.testing.assert_array_equal(sample.boxes, first.boxes)
    a.set_epoch(1)
    assert not np.array_equal(a.raw_sample(0).image, first.image)
    c = JDEDataset([source], INPUT, augment=True, seed=4)
    assert not np.array_equal(c.raw_sample(0).image, first.image)


def test_workers_give_the_same_batches(tree):
    dataset = JDEDataset([JDESource.from_labels_with_ids(tree)], INPUT, augment=True,
                         max_objects=8)

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = EpochShuffleSampler(dataset, num_replicas=1, rank=0, seed=0)
        sampler.set_epoch(2)
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=sampler,
                                             num_workers=workers, collate_fn=collate_jde)
        return [images for images, _ in loader]

    in_process, in_worker = batches(0), batches(1)
    assert dataset.epoch == 2
    for x, y in zip(in_process, in_worker, strict=True):
        torch.testing.assert_close(x, y)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("row", "message"), [
    ("0 1 0.5 0.5 0.2", "expected 6 values"),
    ("0 1 0.5 abc 0.2 0.2", "not a number"),
    ("0 -2 0.5 0.5 0.2 0.2", "id out of range"),
    ("0 1.5 0.5 0.5 0.2 0.2", "id out of range"),
    ("0 1 320 240 40 80", "outside the image"),
    ("0 1 0.5 0.5 0 0.2", "width and height must be > 0"),
    ("0 1 0.5 nan 0.2 0.2", "not finite"),
    ("-1 1 0.5 0.5 0.2 0.2", "class must be an integer"),
])
def test_bad_label_lines_name_file_and_line(tmp_path, row, message):
    root = write_tree(tmp_path / "bad", {"S": [["0 1 0.5 0.5 0.2 0.2", "", row]]})
    with pytest.raises(ReidsortError, match=message) as error:
        JDESource.from_labels_with_ids(root)
    assert str(error.value).startswith(f"{root / 'labels_with_ids/S/img1/000001.txt'}:3: ")


def test_bounds_tolerance_and_inside_mode(tmp_path):
    root = write_tree(tmp_path / "edge", {"S": [["0 1 0.5 1.0005 0.2 0.2", "0 2 0.5 0.99 0.2 0.3"]]})
    JDESource.from_labels_with_ids(root, bounds="inside")  # 5e-4 beyond: within the tolerance
    cut = write_tree(tmp_path / "cut", {"S": [["0 1 0.5 1.04 0.2 0.2"]]})
    assert len(JDESource.from_labels_with_ids(cut).frames) == 1  # overlaps the image: fine
    with pytest.raises(ReidsortError, match=r"000001\.txt:1: normalised cx cy w h must lie"):
        JDESource.from_labels_with_ids(cut, bounds="inside")


def test_missing_label_file_names_the_list_line(tree):
    (tree / "labels_with_ids/SEQA/img1/000002.txt").unlink()
    with pytest.raises(ReidsortError, match=r"mot\.train:2: label file not found for .*000002"):
        JDESource.from_labels_with_ids(tree)


def test_missing_image_and_bad_list_entries(tree):
    (tree / "images/SEQB/img1/000001.jpg").unlink()
    with pytest.raises(ReidsortError, match=r"mot\.train:3: image not found"):
        JDESource.from_labels_with_ids(tree)
    (tree / "mot.train").write_text("frames/a.jpg\n")
    with pytest.raises(ReidsortError, match=r"mot\.train:1: frames/a\.jpg: no 'images' folder"):
        JDESource.from_labels_with_ids(tree)
    with pytest.raises(ReidsortError, match="image list not found"):
        JDESource.from_labels_with_ids(tree, "missing.train")


def test_empty_sources(tmp_path):
    root = write_tree(tmp_path / "empty", {})
    with pytest.raises(ReidsortError, match=r"mot\.train: no frames in JDE source 'empty'"):
        JDESource.from_labels_with_ids(root)
    seq = tmp_path / "text_only"
    (seq / "gt").mkdir(parents=True)
    (seq / "gt" / "gt.txt").write_text("1,1,10,10,20,40,1,1,1\n")
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=text_only\nimDir=img1\nframeRate=10\n"
                                     "seqLength=1\nimWidth=64\nimHeight=48\nimExt=.jpg\n")
    with pytest.raises(ReidsortError, match="no frame images"):
        JDESource.from_mot_sequence(seq)
    (seq / "gt" / "gt.txt").write_text("1,1,10,10,20,40,1,1,1\n1,-3,10,10,20,40,1,1,1\n")
    with pytest.raises(ReidsortError, match=r"gt\.txt:2: id out of range"):
        JDESource.from_mot_sequence(seq)
    with pytest.raises(ReidsortError, match="no sources"):
        JDEDataset([], INPUT)


def test_class_beyond_num_classes(tmp_path):
    root = write_tree(tmp_path / "cls", {"S": [["0 1 0.5 0.5 0.2 0.2", "1 2 0.5 0.5 0.2 0.2"]]})
    source = JDESource.from_labels_with_ids(root)
    with pytest.raises(ReidsortError, match=r"000001\.txt:2: class 1 but num_classes=1"):
        JDEDataset([source], INPUT)
    assert JDEDataset([source], INPUT, num_classes=2).raw_sample(0).classes.tolist() == [0, 1]


# ---------------------------------------------------------------------------- DataModule
def test_split_by_sequence_never_shares_frames(tree):
    dm = JDEDataModule([str(tree)], val_sequences=["SEQB"], input_size=INPUT, batch_size=2,
                       num_workers=0, augment=False)
    dm.setup()
    assert [f.sequence for f in dm.train_set.frames] == ["SEQA", "SEQA"]
    assert [f.sequence for f in dm.val_set.frames] == ["SEQB"]
    assert dm.num_ids == 2  # raw 5, 9 of SEQA; SEQB's 5 is the same person (same source)
    assert dm.val_set.ids[0].tolist() == [-1, 0]
    with pytest.raises(ReidsortError, match=r"val_sequences \['SEQC'\] match no sequence"):
        JDEDataModule([str(tree)], val_sequences=["SEQC"], input_size=INPUT).setup()
    with pytest.raises(ReidsortError, match="both a training and a validation frame"):
        JDEDataModule([str(tree)], val_sources=[{"type": "labels_with_ids", "root": str(tree),
                                                 "name": "again"}], input_size=INPUT).setup()
    with pytest.raises(ReidsortError, match="multiples of 32"):
        JDEDataModule([str(tree)], input_size=(60, 96))


def test_sampler_hands_the_epoch_to_the_dataset(tree):
    dataset = JDEDataset([JDESource.from_labels_with_ids(tree)], INPUT)
    sampler = EpochShuffleSampler(dataset, num_replicas=2, rank=1, seed=0)
    sampler.set_epoch(5)
    assert dataset.epoch == 5 and len(list(sampler)) == 2


class ShapeChecker(L.LightningModule):
    """A trivial model that asserts the batch layout the JDE heads and losses consume."""

    def __init__(self, num_ids: int, max_objects: int) -> None:
        super().__init__()
        self.layer = nn.Conv2d(3, 1, 1)
        self.num_ids, self.max_objects = num_ids, max_objects
        self.seen: list[str] = []

    def _check(self, batch, stage: str) -> torch.Tensor:
        images, targets = batch
        b = images.shape[0]
        h, w = INPUT
        assert images.shape == (b, 3, h, w) and images.dtype == torch.float32
        assert targets.heatmap.shape == (b, 1, h // 4, w // 4)
        assert targets.size.shape == (b, self.max_objects, 2)
        assert targets.offset.shape == (b, self.max_objects, 2)
        assert targets.index.shape == targets.ids.shape == targets.mask.shape == (
            b, self.max_objects)
        assert targets.boxes.shape == (b, self.max_objects, 4)
        assert targets.mask.dtype == torch.bool and targets.mask.any()
        assert (targets.index[targets.mask] < (h // 4) * (w // 4)).all()
        assert int(targets.ids.max()) < self.num_ids and int(targets.ids.min()) >= -1
        self.seen.append(stage)
        heat = self.layer(images)[:, :, ::4, ::4]
        return (heat - targets.heatmap).abs().mean()

    def training_step(self, batch, batch_idx):
        return self._check(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._check(batch, "val")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_datamodule_in_a_lightning_trainer(tree, synthetic, tmp_path):
    data_dir, _ = synthetic
    dm = JDEDataModule(
        sources=[{"type": "synthetic", **TINY_SYNTH}, str(tree)],
        val_sequences=["SEQB"], input_size=INPUT, batch_size=2, num_workers=0,
        val_sources=[{"type": "synthetic", **TINY_SYNTH, "seed": 1, "name": "SYNTH-VAL"}],
        max_objects=16, data_dir=str(data_dir), seed=1)
    dm.prepare_data()
    dm.setup("fit")
    model = ShapeChecker(dm.num_ids, 16)
    trainer = L.Trainer(accelerator="cpu", devices=1, fast_dev_run=2, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    assert model.seen.count("train") == 2 and model.seen.count("val") == 2
    assert len(dm.val_set) == 1 + TINY_SYNTH["num_frames"]
    val_names = dm.summary()["val_sequences"]
    assert val_names[0] == "SEQB" and val_names[1].startswith("SYNTH-VAL-")
    assert dm.num_ids == len(dm.train_set.sources[0].identities()) + 2
    assert dm.summary()["identity_offsets"] == {
        dm.train_set.sources[0].name: 0, "tree": len(dm.train_set.sources[0].identities())}
