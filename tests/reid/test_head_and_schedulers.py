
import pytest
import torch

from reidsort.reid.head import BNNeckHead
from reidsort.reid.schedulers import WarmupCosineLR, WarmupMultiStepLR


def test_bnneck_frozen_bias_and_biasless_classifier():
    head = BNNeckHead(in_features=8, num_classes=5)
    assert head.classifier.bias is None
    assert not head.bn.bias.requires_grad
    x = torch.randn(6, 8)
    out = head(x)
    assert out.logits.shape == (6, 5)
    out.logits.sum().backward()
    assert head.bn.bias.grad is None and head.bn.weight.grad is not None
    head.eval()
    out = head(x)
    assert out.logits is None
    assert torch.equal(out.feature, x)


def test_bnneck_rejects_zero_classes():
    with pytest.raises(ValueError, match="num_classes"):
        BNNeckHead(4, 0)


def _lrs(scheduler_cls, steps, **kwargs):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = scheduler_cls(opt, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_multistep_values():
    lrs = _lrs(WarmupMultiStepLR, 60, steps_per_epoch=2, milestones=[10, 20], gamma=0.1,
               warmup_epochs=5, warmup_start_factor=0.1)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[5] == pytest.approx(0.1 + 0.9 * 2.5 / 5)  # step 5 = epoch 2.5
    assert lrs[10] == pytest.approx(1.0)  # epoch 5: warmup done
    assert lrs[19] == pytest.approx(1.0)
    assert lrs[20] == pytest.approx(0.1)  # epoch 10
    assert lrs[40] == pytest.approx(0.01)  # epoch 20


def test_warmup_cosine_ends_at_lrf():
    lrs = _lrs(WarmupCosineLR, 41, steps_per_epoch=4, max_epochs=10, lrf=0.05,
               warmup_epochs=1, warmup_start_factor=0.01)
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[4] == pytest.approx(1.0)  # end of warmup
    middle = 4 + (40 - 4) // 2  # epoch 5.5, halfway through the cosine
    assert lrs[middle] == pytest.approx(0.05 + 0.95 * 0.5, abs=1e-6)
    assert lrs[40] == pytest.approx(0.05)
    assert all(a >= b - 1e-12 for a, b in zip(lrs[4:], lrs[5:]))  # monotone after warmup


def test_multistep_rejects_unsorted_milestones():
    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="increasing"):
        WarmupMultiStepLR(torch.optim.SGD([param], lr=1.0), steps_per_epoch=1,
                          milestones=[5, 3])


def test_cosine_rejects_bad_epochs():
    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="max_epochs"):
        WarmupCosineLR(torch.optim.SGD([param], lr=1.0), steps_per_epoch=1, max_epochs=0)
