"""Tiny FairMOT networks, checkpoints in the ``task=jde`` format and their ONNX exports, for the
checkpoint, export and detector tests (CPU, a second or two each)."""

from __future__ import annotations

from pathlib import Path

import torch

from reidsort.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from reidsort.jde.checkpoint import JDEModelInfo
from reidsort.jde.model import JDENet

#: small network input (multiples of 32): maps of 16 x 24
TINY_INPUT_HW = (64, 96)
TINY_NET = {"backbone": "resnet18", "num_classes": 1, "embedding_dim": 16, "head_channels": 16,
            "size_mode": "wh"}


def tiny_net(seed: int = 0, heat_bias: float | None = None,
             size_bias: tuple[float, ...] | None = None, **overrides) -> JDENet:
    """A random-weight JDENet in eval mode. ``heat_bias`` (and ``size_bias``) replace the
    heatmap (size) head's last layer by a constant: every cell gets that logit (that size, in
    output-map units), so the decoded detections are known."""
    torch.manual_seed(seed)
    net = JDENet(**{**TINY_NET, **overrides}).eval()
    with torch.no_grad():
        for head, bias in ((net.heatmap, heat_bias), (net.size, size_bias)):
            if bias is not None:
                head[-1].weight.zero_()
                head[-1].bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return net


def tiny_info(net: JDENet, input_hw=TINY_INPUT_HW) -> JDEModelInfo:
    return JDEModelInfo(input_hw=tuple(input_hw), mean=IMAGENET_MEAN, std=IMAGENET_STD, stride=4,
                        size_mode=net.size_mode, embedding_dim=net.embedding_dim,
                        num_classes=net.num_classes, backbone=net.backbone_name)


def checkpoint_dict(net: JDENet, input_hw=TINY_INPUT_HW, weights_only: bool = False) -> dict:
    """What Lightning writes for a JDELitModule (``self.net`` = ``net``): the network under
    ``net.``, training-only parameters beside it, plain hyper-parameters."""
    import lightning

    state = {f"net.{k}": v.clone() for k, v in net.state_dict().items()}
    state["loss.uncertainty.s_det"] = torch.tensor(-1.85)  # not part of the network
    state["loss.identity.classifier.weight"] = torch.zeros(10, net.embedding_dim)
    net_kwargs = {"backbone": net.backbone_name, "num_classes": net.num_classes,
                  "embedding_dim": net.embedding_dim, "head_channels": TINY_NET["head_channels"],
                  "size_mode": net.size_mode}
    checkpoint = {
        "epoch": 3, "global_step": 120, "pytorch-lightning_version": lightning.__version__,
        "state_dict": state,
        "hyper_parameters": {"net": net_kwargs, "input_hw": list(input_hw), "num_ids": 10,
                             "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                             "stride": 4, "amodal": True, "lr": 1e-4},
    }
    if not weights_only:
        checkpoint.update({"loops": {}, "callbacks": {}, "optimizer_states": [{}],
                           "lr_schedulers": []})
    return checkpoint


def write_jde_checkpoint(net: JDENet, path: Path, input_hw=TINY_INPUT_HW,
                         weights_only: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint_dict(net, input_hw, weights_only), path)
    return path


def export_tiny_onnx(net: JDENet, path: Path, input_hw=TINY_INPUT_HW) -> Path:
    """The net exported with the fast legacy exporter, verified."""
    from reidsort.jde.export import export_jde_onnx

    return export_jde_onnx((net, tiny_info(net, input_hw)), path, exporter="legacy",
                           simplify=False).path
