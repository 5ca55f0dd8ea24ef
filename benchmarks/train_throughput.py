"""Training throughput (images/s): reidsort's Lightning path vs a bare PyTorch loop.

Both run the same step (forward, CE + batch-hard triplet through the BNNeck, backward, Adam step)
on the same pre-made batches, so the difference is Lightning's and reidsort's overhead. Rounds
alternate between the two paths to share the machine's noise.

    python benchmarks/train_throughput.py --models osnet_x1_0 resnet50 --steps 6 --rounds 2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import lightning as L
import torch

from reidsort.reid.head import HeadOutput
from reidsort.reid.module import ReIDModule

LOSS = {"_target_": "reidsort.reid.objective.ReIDObjective", "ce_weight": 1.0,
        "label_smoothing": 0.1, "triplet_weight": 1.0, "triplet_margin": 0.3}
OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 3.5e-4,
             "weight_decay": 5e-4}


def make_module(model: str, num_classes: int) -> ReIDModule:
    return ReIDModule(num_classes=num_classes,
                      model={"backbone": {"_target_": f"reidsort.reid.backbones.{model}"}},
                      loss=LOSS, optimizer=OPTIMIZER, scheduler=None)


def make_batches(count: int, batch: int, height: int, width: int, p: int) -> list:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(p).repeat_interleave(batch // p)
    return [(torch.randn(batch, 3, height, width, generator=generator), labels)
            for _ in range(count)]


def bare_loop(model: str, batches: list, warmup: int, num_classes: int) -> float:
    torch.manual_seed(0)
    module = make_module(model, num_classes).train()
    optimizer = torch.optim.Adam(module.parameter_groups(), lr=3.5e-4)
    timed = 0.0
    for i, (images, labels) in enumerate(batches):
        start = time.perf_counter()
        out = module(images)
        head = HeadOutput(out.feature, out.bn_feature, out.logits)
        loss = module.objective(head, labels).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            timed += time.perf_counter() - start
    return (len(batches) - warmup) * batches[0][0].shape[0] / timed


class _StepTimer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.timed, self.images = warmup, 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.timed += time.perf_counter() - self.start
            self.images += batch[0].shape[0]


def lightning_loop(model: str, batches: list, warmup: int, num_classes: int) -> float:
    torch.manual_seed(0)
    module = make_module(model, num_classes)
    timer = _StepTimer(warmup)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[timer])
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(
        batches, batch_size=None, shuffle=False))
    return timer.images / timer.timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["osnet_x1_0", "resnet50"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--p", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=[256, 128])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    batches = make_batches(args.steps + args.warmup, args.batch, *args.size, args.p)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"machine: {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"lightning {L.__version__}")
    print(f"batch {args.batch} at {args.size[0]}x{args.size[1]}, {args.steps} timed steps "
          f"x {args.rounds} rounds (alternating)")
    print("| model | bare PyTorch img/s | reidsort Lightning img/s | Lightning / bare |")
    print("| --- | --- | --- | --- |")
    for model in args.models:
        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(bare_loop(model, batches, args.warmup, args.p))
            ours.append(lightning_loop(model, batches, args.warmup, args.p))
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"| {model} | {b:.1f} | {o:.1f} | {o / b:.3f} |", flush=True)


if __name__ == "__main__":
    main()
