"""JDENet: shapes for every backbone, head initialisation, backbone weights, a few training
steps, and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidsort.jde.dla import DLA34_IMAGENET_URL, DLA34_UNUSED_PROJECTIONS
from reidsort.jde.losses import JDELoss
from reidsort.jde.model import BACKBONES, HEATMAP_BIAS, JDENet, JDEOutput
from reidsort.jde.targets import build_targets
from reidsort.utils.errors import ReidsortError


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_maps_at_stride_4_and_every_parameter_is_trained(backbone):
    torch.manual_seed(0)
    model = JDENet(backbone, embedding_dim=16, head_channels=32, size_mode="ltrb")
    output = model(torch.randn(1, 3, 128, 224))
    assert isinstance(output, JDEOutput)
    assert [tuple(m.shape) for m in output] == [(1, 1, 32, 56), (1, 4, 32, 56), (1, 2, 32, 56),
                                                (1, 16, 32, 56)]
    # no parameter may be left out of the graph (DDP refuses unused parameters)
    sum(m.float().mean() for m in output).backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert not unused


def test_heads_start_from_fairmots_initialisation():
    model = JDENet("resnet18", num_classes=2)
    assert torch.all(model.heatmap[-1].bias == HEATMAP_BIAS) and model.heatmap[-1].bias.shape == (
        2,)
    for head in (model.size, model.offset, model.embedding):
        assert not head[0].bias.any() and not head[-1].bias.any()
    assert model.size[-1].out_channels == 2  # size_mode "wh"
    with torch.no_grad():  # the prior: about 10 % per cell
        prob = torch.sigmoid(model.eval()(torch.rand(1, 3, 64, 64)).heatmap)
    assert 0.02 < prob.mean().item() < 0.5


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backbone": "resnet50"}, "unknown JDE backbone 'resnet50'"),
    ({"size_mode": "xywh"}, "size_mode must be one of wh, ltrb"),
    ({"embedding_dim": 0}, "embedding_dim must be >= 1"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ReidsortError, match=message):
        JDENet(**kwargs)


def test_mobilenet_v2_loads_the_shared_imagenet_file(shared_data):
    path = shared_data / "models" / "mobilenetv2_imagenet.pt"
    if not path.is_file():
        pytest.skip(f"shared real data not found: {path}")
    model = JDENet("mobilenet_v2", weights=path)
    # the file is in another layout: every tensor, in order, fills the trunk
    reference = list(torch.load(path, map_location="cpu", weights_only=True).values())
    trunk = list(model.backbone.features.state_dict().values())
    assert len(reference) == len(trunk) == 312
    assert all(torch.equal(a, b) for a, b in zip(reference, trunk))


def test_imagenet_weights_offline_are_one_clear_error(torch_home):
    with pytest.raises(ValueError, match="not in the torch hub cache and could not be downloaded"):
        JDENet("resnet18", pretrained="imagenet")
    with pytest.raises(ValueError, match="dla34 knows imagenet"):
        JDENet("dla34", pretrained="IMAGENET1K_V2")


def test_dla34_reads_the_reference_imagenet_layout(torch_home):
    from reidsort.jde.dla import DLA

    torch.manual_seed(3)
    # the DLA authors' file: our tensors + the never-used projections + the classifier
    state = DLA().state_dict()
    for prefix, channels in zip(DLA34_UNUSED_PROJECTIONS, ((64, 128), (128, 256))):
        state[f"{prefix}0.weight"] = torch.randn(channels[1], channels[0], 1, 1)
        state[f"{prefix}1.weight"] = torch.ones(channels[1])
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512, 1, 1), torch.zeros(1000)
    cache = torch_home / "hub" / "checkpoints" / DLA34_IMAGENET_URL.rsplit("/", 1)[1]
    cache.parent.mkdir(parents=True)
    torch.save(state, cache)
    model = JDENet("dla34", pretrained="imagenet")
    loaded = model.backbone.body.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)


def _synthetic_sample(height=64, width=96):
    """One image with two bright people-shaped boxes and their targets as batched tensors."""
    boxes = np.array([[8, 8, 28, 56], [52, 16, 76, 60]], np.float32)
    image = torch.full((1, 3, height, width), -1.0)
    for x1, y1, x2, y2 in boxes.astype(int):
        image[0, :, y1:y2, x1:x2] = 1.5
    targets = build_targets(boxes, np.array([0, 1]), (height, width), max_objects=8)
    batch = {name: torch.from_numpy(value)[None] for name, value in vars(targets).items()}
    return image, batch


def test_a_few_steps_of_jdenet_and_jdeloss_lower_the_loss():
    torch.manual_seed(0)
    model = JDENet("resnet18", embedding_dim=16, head_channels=32)
    criterion = JDELoss(16, num_ids=3)
    image, batch = _synthetic_sample()
    optimiser = torch.optim.Adam([*model.parameters(), *criterion.parameters()], lr=1e-3)
    losses = []
    for _ in range(4):
        parts = criterion(model(image), batch)
        optimiser.zero_grad()
        parts.total.backward()
        optimiser.step()
        losses.append(parts.total.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses
    assert parts.heatmap.item() < losses[0]


def test_onnx_export_runs_in_onnxruntime_like_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = JDENet("resnet18", embedding_dim=16, head_channels=32).eval()
    path = tmp_path / "jde.onnx"
    names = list(JDEOutput._fields)
    torch.onnx.export(model, (torch.rand(1, 3, 64, 64),), str(path), dynamo=False,
                      opset_version=17, input_names=["images"], output_names=names,
                      dynamic_axes={key: {0: "batch", 2: "height", 3: "width"}
                                    for key in ["images", *names]})
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        expected = model(images)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(names, {"images": images.numpy()})
    for name, got, want in zip(names, outputs, expected):
        assert got.shape == tuple(want.shape), name
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4, err_msg=name)
