"""Re-ID backbones: published architectures, the forward contract, and weight loading."""

from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from reidsort.reid.backbones import (
    BACKBONE_NAMES,
    DEEPSORT_INPUT_HW,
    build_backbone,
    deepsort_cnn,
    load_backbone_weights,
    osnet_x0_5,
    osnet_x0_25,
    osnet_x1_0,
    resnet18,
)

REID_INPUT_HW = (256, 128)

# Parameter counts without classifier: torchreid 0.2.5's OSNets with their 512-d fc layer, and the
# DeepSORT CNN as stated in Wojke et al., ICIP 2017 ("In total, the network has 2,800,864
# parameters").
OSNET_PARAMETER_COUNTS = {
    "osnet_x1_0": 2_169_508,
    "osnet_x0_75": 1_285_754,
    "osnet_x0_5": 630_034,
    "osnet_x0_25": 201_864,
}
WOJKE_PARAMETER_COUNT = 2_800_864

EXPECTED_FEATURE_DIMS = {
    "osnet_x1_0": 512,
    "osnet_x0_75": 512,
    "osnet_x0_5": 512,
    "osnet_x0_25": 512,
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnext50_32x4d": 2048,
    "deepsort_cnn": 128,
    "resnet50_ibn_a": 2048,
    "mobilenet_v2": 1280,
    "mobilenet_v3_large": 960,
    "efficientnet_b0": 1280,
    "convnext_tiny": 768,
}


@pytest.fixture(autouse=True, scope="module")
def single_threaded_torch():
    """Run these tiny batches on one intra-op thread (restored afterwards).

    Threads gain nothing at batch 2, and on a busy 2-core machine OpenMP's spin-waiting makes
    multi-threaded CPU inference many times slower than single-threaded.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN non-default statistics and affine values, so loading them is observable."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                size = module.num_features
                module.running_mean.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                if module.weight is not None:
                    module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)
    return model


def images(hw: tuple[int, int], batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, *hw, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def features(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return model.eval()(batch)


# ---------------------------------------------------------------- architecture


@pytest.mark.parametrize("name", sorted(OSNET_PARAMETER_COUNTS))
def test_osnet_has_the_published_parameter_count(name: str) -> None:
    assert parameter_count(build_backbone(name)) == OSNET_PARAMETER_COUNTS[name]


def test_original_deepsort_cnn_has_the_published_parameter_count() -> None:
    assert parameter_count(deepsort_cnn()) == WOJKE_PARAMETER_COUNT


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_forward_returns_pooled_features_of_feature_dim(name: str) -> None:
    hw = DEEPSORT_INPUT_HW if name == "deepsort_cnn" else REID_INPUT_HW
    model = build_backbone(name)
    output = features(model, images(hw))
    assert model.feature_dim == EXPECTED_FEATURE_DIMS[name]
    assert output.shape == (2, EXPECTED_FEATURE_DIMS[name])
    assert torch.isfinite(output).all()
    # two different crops must not collapse to one feature (relative: randomly initialised
    # MobileNets in eval mode output features of norm ~1e-8)
    unit = output / output.norm(dim=1, keepdim=True).clamp_min(1e-30)
    assert not torch.allclose(unit[0], unit[1], atol=1e-4)


def test_zqpei_deepsort_variant_gives_512_d_features_at_128x64() -> None:
    model = deepsort_cnn(variant="zqpei")
    assert model.feature_dim == 512
    assert features(model, images(DEEPSORT_INPUT_HW)).shape == (2, 512)


def test_original_deepsort_cnn_rejects_other_input_sizes() -> None:
    with pytest.raises(ValueError, match=r"128x64.*got 256x128"):
        features(deepsort_cnn(), images(REID_INPUT_HW))


def test_osnet_ibn_uses_instance_norm_in_the_early_layers_only() -> None:
    plain, ibn = osnet_x1_0(), osnet_x1_0(ibn=True)
    instance_norms = [n for n, m in ibn.named_modules() if isinstance(m, nn.InstanceNorm2d)]
    # the stem and the residual output of both conv2 blocks (Pan et al. 2018; torchreid IBN)
    assert instance_norms == ["conv1.bn", "conv2.0.IN", "conv2.1.IN"]
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in plain.modules())
    # affine IN after each conv2 block adds weight + bias for 256 channels, twice
    assert parameter_count(ibn) - parameter_count(plain) == 2 * 2 * 256
    assert features(ibn, images(REID_INPUT_HW)).shape == (2, 512)


@pytest.mark.parametrize(("last_stride", "map_hw"), [(1, (16, 8)), (2, (8, 4))])
def test_resnet_last_stride_sets_the_final_map_size(
    last_stride: int, map_hw: tuple[int, int]
) -> None:
    model = resnet18(last_stride=last_stride).eval()
    seen: list[torch.Size] = []
    model.layer4.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    batch = images(REID_INPUT_HW)
    with torch.no_grad():
        model(batch)
        accessor_map = model.feature_map(batch)
    assert seen[0][-2:] == map_hw
    assert accessor_map.shape == (2, 512, *map_hw)


def test_resnet_stripes_pool_horizontal_bands_separately() -> None:
    model = resnet18(stripes=4).eval()
    assert model.feature_dim == 4 * 512
    batch = images((64, 32))
    with torch.no_grad():
        feature_map = model.feature_map(batch)  # [2, 512, 4, 2] at 64x32 with last stride 1
        features = model(batch)
    assert features.shape == (2, 4 * 512)
    # band b of the output = the mean over map row b: top of the body first
    bands = features.view(2, 512, 4)
    torch.testing.assert_close(bands, feature_map.mean(dim=3))
    # the stripes add no parameters: a stripes=1 state dict loads into a stripes=4 model
    model.load_state_dict(resnet18().state_dict())


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("osnet_x2_0", {}, r"unknown backbone 'osnet_x2_0'; valid: osnet_x1_0, .*deepsort_cnn"),
        ("resnet50", {"last_stride": 3}, r"last_stride must be 1 or 2, got 3"),
        ("resnet18", {"stripes": 0}, r"stripes must be >= 1, got 0"),
        ("deepsort_cnn", {"variant": "tf"}, r"unknown deepsort_cnn variant 'tf'; valid: 'wojke'"),
    ],
)
def test_bad_build_arguments_raise_value_error(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_backbone(name, **kwargs)


# ---------------------------------------------------------------- torchreid equivalence


def _torchreid_osnet_module():
    pytest.importorskip("torchreid")
    try:  # the PyPI package "torchreid" 0.2.5 nests the library under torchreid.reid
        from torchreid.reid.models import osnet
    except ImportError:  # KaiyangZhou/deep-person-reid installed from source
        from torchreid.models import osnet
    return osnet


@pytest.mark.parametrize(
    ("torchreid_name", "ours", "ibn"),
    [("osnet_x1_0", "osnet_x1_0", False), ("osnet_x0_25", "osnet_x0_25", False),
     ("osnet_ibn_x1_0", "osnet_x1_0", True)],
)
def test_torchreid_osnet_weights_load_and_give_the_same_features(
    tmp_path: Path, torchreid_name: str, ours: str, ibn: bool
) -> None:
    reference = getattr(_torchreid_osnet_module(), torchreid_name)(
        num_classes=11, pretrained=False
    )
    randomize_batchnorm(reference).eval()
    ours_model = build_backbone(ours, ibn=ibn)
    reference_keys = {k for k in reference.state_dict() if not k.startswith("classifier.")}
    assert set(ours_model.state_dict()) == reference_keys

    path = tmp_path / f"{torchreid_name}.pth"
    # torchreid's own checkpoint format: DataParallel prefix, classifier included
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}, "epoch": 60},
        path,
    )
    load_backbone_weights(ours_model, path)
    batch = images(REID_INPUT_HW)
    torch.testing.assert_close(features(ours_model, batch), features(reference, batch),
                               atol=1e-5, rtol=0)


# ---------------------------------------------------------------- weight files


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("osnet_x0_25", {"ibn": True}), ("resnet18", {}), ("deepsort_cnn", {}),
     ("deepsort_cnn", {"variant": "zqpei"})],
)
def test_state_dict_round_trip_reproduces_features(tmp_path: Path, name: str, kwargs: dict) -> None:
    hw = DEEPSORT_INPUT_HW if name == "deepsort_cnn" else REID_INPUT_HW
    torch.manual_seed(1)
    trained = randomize_batchnorm(build_backbone(name, **kwargs))
    path = tmp_path / "backbone.pth"
    torch.save(trained.state_dict(), path)
    torch.manual_seed(2)
    fresh = build_backbone(name, **kwargs)
    batch = images(hw)
    assert not torch.allclose(features(fresh, batch), features(trained, batch))
    loaded = build_backbone(name, weights=str(path), **kwargs)
    torch.testing.assert_close(features(loaded, batch), features(trained, batch), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("prefix", "other_keys"),
    [
        ("model.backbone.", ("model.head.bn.weight", "model.head.classifier.weight")),  # Lightning
        ("backbone.", ("head.bn.weight", "head.classifier.weight")),
        ("module.", ("module.classifier.weight",)),  # DataParallel (torchreid)
        ("backbone._orig_mod.", ("head.bn.weight",)),  # torch.compile'd backbone
    ],
)
def test_prefixed_checkpoint_keys_load(
    tmp_path: Path, prefix: str, other_keys: tuple[str, ...]
) -> None:
    trained = randomize_batchnorm(osnet_x0_25(), seed=3)
    state = {f"{prefix}{k}": v for k, v in trained.state_dict().items()}
    state.update({key: torch.ones(512) for key in other_keys})
    checkpoint = {
        "state_dict": state,
        "epoch": 12,
        "global_step": 3400,
        "hyper_parameters": {"lr": 3.5e-4, "image_size": [256, 128]},
    }
    path = tmp_path / "epoch=12.ckpt"
    torch.save(checkpoint, path)
    loaded = load_backbone_weights(osnet_x0_25(), path)
    batch = images(REID_INPUT_HW)
    torch.testing.assert_close(features(loaded, batch), features(trained, batch), atol=0, rtol=0)


def test_zqpei_ckpt_t7_layout_loads_into_the_zqpei_variant(tmp_path: Path) -> None:
    source = randomize_batchnorm(deepsort_cnn(variant="zqpei"), seed=4)
    net_dict = dict(source.state_dict())
    # names of deep_sort_pytorch's model.py, and its classifier head (751 Market-1501 ids)
    for key in ("conv.0.weight", "conv.0.bias", "conv.1.running_var", "layer1.1.conv2.weight",
                "layer2.0.downsample.0.weight", "layer4.1.bn2.bias"):
        assert key in net_dict
    net_dict.update({
        "classifier.0.weight": torch.zeros(256, 512), "classifier.0.bias": torch.zeros(256),
        "classifier.1.weight": torch.ones(256), "classifier.1.bias": torch.zeros(256),
        "classifier.1.running_mean": torch.zeros(256), "classifier.1.running_var": torch.ones(256),
        "classifier.4.weight": torch.zeros(751, 256), "classifier.4.bias": torch.zeros(751),
    })
    path = tmp_path / "ckpt.t7"
    # deep_sort_pytorch's train.py stores the accuracy next to the weights; as a NumPy scalar
    # it is not a tensor, which the plain-data fallback of the loader has to accept
    torch.save({"net_dict": net_dict, "acc": np.float64(87.5), "epoch": 39}, path)
    loaded = deepsort_cnn(weights=path, variant="zqpei")
    batch = images(DEEPSORT_INPUT_HW)
    torch.testing.assert_close(features(loaded, batch), features(source, batch), atol=0, rtol=0)


def test_torchvision_imagenet_state_dict_loads_without_its_fc(tmp_path: Path) -> None:
    imagenet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    loaded = resnet18(weights=path)
    assert torch.equal(loaded.conv1.weight, imagenet.conv1.weight)
    assert torch.equal(loaded.layer4[1].bn2.running_var, imagenet.layer4[1].bn2.running_var)


def test_old_files_without_num_batches_tracked_load(tmp_path: Path) -> None:
    source = randomize_batchnorm(osnet_x0_25(), seed=5)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "pre-0.4.1.pth"
    torch.save(state, path)
    loaded = osnet_x0_25(weights=path)
    assert torch.equal(loaded.conv5.bn.running_mean, source.conv5.bn.running_mean)


def test_shape_mismatch_error_names_the_file_and_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "x0_25.pth"
    torch.save(osnet_x0_25().state_dict(), path)
    with pytest.raises(ValueError) as caught:
        load_backbone_weights(osnet_x0_5(), path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and "OSNet" in message
    assert "conv1.conv.weight: file [16, 3, 7, 7] vs model [32, 3, 7, 7]" in message
    narrow, wide = osnet_x0_25().state_dict(), osnet_x0_5().state_dict()
    count = sum(narrow[key].shape != wide[key].shape for key in wide)
    assert f"{count} shape-mismatched" in message
    assert "more)" in message  # long lists are cut


def test_missing_and_unexpected_keys_are_listed(tmp_path: Path) -> None:
    state = dict(osnet_x0_25().state_dict())
    del state["conv5.conv.weight"]
    state["neck.bn.weight"] = torch.ones(512)
    state["classifier.weight"] = torch.zeros(10, 512)  # a head: dropped silently
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as caught:
        osnet_x0_25(weights=path)
    message = str(caught.value)
    assert "1 missing (conv5.conv.weight)" in message
    assert "1 unexpected (neck.bn.weight)" in message
    assert "shape-mismatched" not in message and "classifier" not in message


def test_weights_of_another_architecture_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet18\.pth: weights do not fit OSNet: \d+ missing"):
        osnet_x0_25(weights=path)


def test_missing_file_raises_file_not_found_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "osnet.pth"
    with pytest.raises(FileNotFoundError, match=r"weights file not found: .*nowhere.*osnet\.pth"):
        build_backbone("osnet_x0_25", weights=path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", r"\(EOFError\)"), (b"not a checkpoint" * 8, r"\(.+\)"),
     (b"PK\x03\x04 truncated zip", r"\(.+\)")],
)
def test_corrupt_file_raises_value_error_naming_it(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    expected = rf"broken\.pth: not a readable PyTorch weights file {reason}"
    with pytest.raises(ValueError, match=expected):
        load_backbone_weights(osnet_x0_25(), path)


def test_file_without_tensors_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "acc": 0.5}, path)
    with pytest.raises(ValueError, match=r"meta\.pth: no tensors found .*epoch, acc"):
        load_backbone_weights(osnet_x0_25(), path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match=r"meta\.pth: expected a state dict .* got Tensor"):
        load_backbone_weights(osnet_x0_25(), path)


def test_arbitrary_pickled_objects_need_allow_pickle(tmp_path: Path) -> None:
    source = osnet_x0_25()
    path = tmp_path / "with-object.pth"
    torch.save({"state_dict": source.state_dict(), "ratio": fractions.Fraction(1, 3)}, path)
    with pytest.raises(ValueError, match=r"with-object\.pth: .*fractions\.Fraction.*allow_pickle"):
        load_backbone_weights(osnet_x0_25(), path)
    loaded = load_backbone_weights(osnet_x0_25(), path, allow_pickle=True)
    assert torch.equal(loaded.fc[0].weight, source.fc[0].weight)


def test_wojke_dropout_is_configurable_and_validated() -> None:
    model = deepsort_cnn(dropout=0.0)
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.0}
    with pytest.raises(ValueError, match="dropout"):
        deepsort_cnn(dropout=1.0)
