"""load_jde_model: task=jde checkpoints (full, weights-only, OmegaConf hyper-parameters) load to
the same network; every other file is a one-line error saying what it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from jde_samples import TINY_INPUT_HW, checkpoint_dict, tiny_net, write_jde_checkpoint
from omegaconf import OmegaConf
from tiny_models import tiny_module, write_checkpoint

from reidsort.jde.checkpoint import JDEModelInfo, load_jde_model
from reidsort.utils.errors import ReidsortError

torch.set_num_threads(1)


@pytest.mark.parametrize("variant", ["full", "weights_only", "omegaconf_hparams"])
def test_round_trip_gives_the_saved_network_and_its_info(variant, tmp_path):
    net = tiny_net(seed=1, size_mode="ltrb", embedding_dim=8)
    checkpoint = checkpoint_dict(net, weights_only=variant == "weights_only")
    if variant == "omegaconf_hparams":  # a module that saved a DictConfig
        checkpoint["hyper_parameters"] = OmegaConf.create(checkpoint["hyper_parameters"])
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint, path)

    loaded, info = load_jde_model(path)
    assert not loaded.training
    assert info == JDEModelInfo(input_hw=TINY_INPUT_HW, mean=(0.485, 0.456, 0.406),
                                std=(0.229, 0.224, 0.225), stride=4, size_mode="ltrb",
                                embedding_dim=8, num_classes=1, backbone="resnet18")
    images = torch.randn(2, 3, *TINY_INPUT_HW)
    with torch.no_grad():
        expected, got = net(images), loaded(images)
    for name, a, b in zip(expected._fields, expected, got):
        assert torch.equal(a, b), name


def test_info_round_trips_through_onnx_metadata_props():
    info = JDEModelInfo((608, 1088), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 4, "ltrb", 64, 2,
                        "dla34")
    props = info.to_props(reidsort_version="9.9")
    assert props["kind"] == "fairmot" and props["input_hw"] == "[608, 1088]"
    assert JDEModelInfo.from_props(props) == info
    with pytest.raises(ReidsortError, match="not a reidsort FairMOT export"):
        JDEModelInfo.from_props({**props, "kind": "reid"}, "m.onnx")
    with pytest.raises(ReidsortError, match="lacks size_mode"):
        JDEModelInfo.from_props({k: v for k, v in props.items() if k != "size_mode"})
    with pytest.raises(ReidsortError, match="multiples of 32"):
        JDEModelInfo((600, 1088), info.mean, info.std, 4, "wh", 64, 1, "dla34")


def _edited(tmp_path, edit):
    checkpoint = checkpoint_dict(tiny_net())
    edit(checkpoint)
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    return path


def _drop_weight(c):
    del c["state_dict"]["net.heatmap.2.bias"]


def _bare_state(c):
    c.clear()
    c.update({f"net.{k}": v for k, v in tiny_net().state_dict().items()})


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["hyper_parameters"].pop("input_hw"), r"no hyper_parameters\['input_hw'\]"),
    (lambda c: c["hyper_parameters"].pop("net"), r"no hyper_parameters\['net'\]"),
    (lambda c: c["hyper_parameters"]["net"].update(dropout=0.1),
     "JDENet does not take: dropout"),
    (lambda c: c["hyper_parameters"].update(input_hw=[60, 96]), "multiples of 32"),
    (_drop_weight, r"weights do not fit its architecture: 1 missing \(heatmap.2.bias\)"),
    (lambda c: c["hyper_parameters"]["net"].update(embedding_dim=32), "shape-mismatched"),
    (_bare_state, "a bare state dict"),
    (lambda c: c.pop("state_dict"), r"no 'state_dict'"),
])
def test_bad_checkpoints_are_one_line_errors(edit, message, tmp_path):
    path = _edited(tmp_path, edit)
    with pytest.raises(ReidsortError, match=message) as caught:
        load_jde_model(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_reid_checkpoint_says_where_it_belongs(tmp_path):
    path = write_checkpoint(tiny_module("deepsort_cnn"), tmp_path / "reid" / "last.ckpt",
                            image_size=(128, 64))
    with pytest.raises(ReidsortError, match="is a Re-ID checkpoint .*embedder=torch"):
        load_jde_model(path)


def test_other_files_say_what_they_are(tmp_path):
    onnx_file = tmp_path / "fairmot.onnx"
    onnx_file.write_bytes(b"\x08\x07fake")
    with pytest.raises(ReidsortError, match="is an ONNX model.*detector=fairmot "
                                            f"detector.ckpt_path={onnx_file}"):
        load_jde_model(onnx_file)
    npz = tmp_path / "features.npz"
    np.savez(npz, a=np.zeros(2))
    with pytest.raises(ReidsortError, match="NumPy .npz archive"):
        load_jde_model(npz)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(ReidsortError, match="not a PyTorch checkpoint"):
        load_jde_model(text)
    with pytest.raises(ReidsortError, match="FairMOT checkpoint not found"):
        load_jde_model(tmp_path / "missing.ckpt")


def test_write_helper_matches_the_contract(tmp_path):
    # the format jde-train's JDELitModule writes: network under net., plain hyper-parameters
    path = write_jde_checkpoint(tiny_net(), tmp_path / "c.ckpt", weights_only=True)
    raw = torch.load(path, weights_only=True)
    assert {"state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch",
            "global_step"} <= set(raw)
    assert "optimizer_states" not in raw and all(
        k.startswith(("net.", "loss.")) for k in raw["state_dict"])


def test_checkpoints_a_lightning_trainer_writes_for_the_jde_module_load(tmp_path):
    # jde-train's JDELitModule, one real training step, the checkpoints Lightning itself writes
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader

    from reidsort.jde.data import _targets_to_tensors, collate_jde
    from reidsort.jde.module import JDELitModule
    from reidsort.jde.targets import build_targets

    boxes = np.array([[10, 8, 30, 56], [50, 4, 80, 60], [60, 30, 90, 62]], np.float32)
    targets = build_targets(boxes, np.array([0, 1, 2]), TINY_INPUT_HW, max_objects=8,
                            size_mode="ltrb")
    samples = [(torch.randn(3, *TINY_INPUT_HW), _targets_to_tensors(targets))] * 2
    module = JDELitModule(net={"backbone": "resnet18", "embedding_dim": 8, "head_channels": 8,
                               "size_mode": "ltrb"}, num_ids=3, input_hw=list(TINY_INPUT_HW))
    folder = tmp_path / "checkpoints"
    trainer = L.Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0,
                        callbacks=[ModelCheckpoint(dirpath=folder, save_last=True)])
    trainer.fit(module, DataLoader(samples, batch_size=2, collate_fn=collate_jde))
    trainer.save_checkpoint(folder / "weights.ckpt", weights_only=True)

    images = torch.randn(1, 3, *TINY_INPUT_HW)
    with torch.no_grad():
        expected = module.net.eval()(images)
    for name in ("last.ckpt", "weights.ckpt"):
        net, info = load_jde_model(folder / name)
        assert info.input_hw == TINY_INPUT_HW and info.size_mode == "ltrb"
        assert info.embedding_dim == 8 and info.backbone == "resnet18"
        with torch.no_grad():
            got = net(images)
        for a, b in zip(expected, got):
            torch.testing.assert_close(a, b)
