"""Callbacks: a training-curves PNG rewritten after every epoch, a one-line epoch summary, and
checkpointing that keeps the best and the last epoch without storing one twice."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from reidsort.utils.io import atomic_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger("reidsort.train")

#: what the epoch line shows, in order: metric key -> label
EPOCH_LINE_METRICS: dict[str, str] = {
    "train/loss_epoch": "loss",
    "train/acc": "acc",
    "val/mAP": "val mAP",
    "val/rank1": "val R1",
}


class EpochSummary(L.Callback):
    """One log line per epoch (loss, validation metrics, learning rate, seconds), so a run
    whose output goes to a file or a pipe shows its progress (the progress bar does not)."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning runs the epoch's validation before this hook: val/* are this epoch's
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        for key, label in EPOCH_LINE_METRICS.items():
            value = trainer.callback_metrics.get(key)
            if value is not None and value.numel() == 1:
                parts.append(f"{label} {float(value):.4f}")
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.2e}")
        parts.append(f"{time.perf_counter() - self._started:.0f} s")
        log.info("  ".join(parts))


#: panels of the figure: title -> metric keys drawn in it
CURVE_PANELS: dict[str, tuple[str, ...]] = {
    "loss": ("train/loss_epoch", "train/ce", "train/triplet", "train/center"),
    "train accuracy": ("train/acc",),
    "validation": ("val/mAP", "val/rank1"),
}


#: panel that gets the colour-histogram baseline as a reference line, and that line's label
BASELINE_PANEL = "validation"
BASELINE_LABEL = "histogram mAP (baseline)"


def draw_training_curves(history: dict[str, list[tuple[int, float]]],
                         baseline_map: float | None = None) -> Figure:
    """One panel per :data:`CURVE_PANELS` entry with the recorded ``(epoch, value)`` series;
    ``baseline_map`` (the colour-histogram mAP on the validation split) is drawn as a dashed
    horizontal line in the validation panel, so the curve reads against what no learning gets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(5 * len(CURVE_PANELS), 3.6))
    for ax, (title, keys) in zip(axes, CURVE_PANELS.items()):
        for key in keys:
            points = history.get(key)
            if points:
                xs, ys = zip(*points)
                ax.plot([x + 1 for x in xs], ys, marker="o", ms=3,
                        label=key.split("/", 1)[1].removesuffix("_epoch"))
        if title == BASELINE_PANEL and baseline_map is not None:
            ax.axhline(baseline_map, color="grey", linestyle="--", linewidth=1,
                       label=BASELINE_LABEL)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


class TrainingCurves(L.Callback):
    """Record epoch metrics and redraw ``path`` (losses, train accuracy, val mAP / Rank-1, and
    the colour-histogram val mAP when ``task=train`` computed it: ``baseline_map``)."""

    def __init__(self, path: str, baseline_map: float | None = None) -> None:
        self.path = Path(path)
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.baseline_map = baseline_map

    def _record(self, trainer: L.Trainer, prefix: str) -> None:
        epoch = trainer.current_epoch
        for key, value in trainer.callback_metrics.items():
            if not key.startswith(prefix):
                continue
            number = float(value)
            if math.isfinite(number):
                series = self.history.setdefault(key, [])
                if series and series[-1][0] == epoch:
                    series[-1] = (epoch, number)
                else:
                    series.append((epoch, number))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "train/")
        self._draw(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end runs after the module's on_validation_epoch_end has logged val/*
        if trainer.sanity_checking:
            return
        self._record(trainer, "val/")
        self._draw(trainer)

    def _draw(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero or not self.history:
            return
        import matplotlib.pyplot as plt

        fig = draw_training_curves(self.history, baseline_map=self.baseline_map)
        with atomic_output(self.path) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)

    def state_dict(self) -> dict:
        return {"history": {k: [list(p) for p in v] for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = {k: [(int(e), float(v)) for e, v in pts]
                        for k, pts in state_dict.get("history", {}).items()}


class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` that never stores one epoch twice: when the epoch that
    just ended is also the best so far, ``last.ckpt`` becomes a (relative) link to its file
    instead of a second ~135 MB copy; otherwise ``last.ckpt`` is a file of its own, as usual.

    ``last.ckpt`` is refreshed after every validation, which Lightning 2.6 only does when a top-k
    checkpoint was saved in that step. (Its own ``save_last="link"`` links to the newest *saved*
    checkpoint even when the last epoch was not saved, so ``last.ckpt`` would no longer be the
    last epoch and a resumed run would restart from an older one.)

    ``save_weights_only_best=True`` writes the best epoch without optimizer, scheduler, callback
    and loop state (state dict + hyper-parameters + the training-data record: what
    ``task=eval``, ``task=export`` and ``init_from`` read; a third of a ResNet-18 + Adam
    checkpoint), while ``last.ckpt`` stays complete for ``resume=true``; it is then always a
    file of its own, since a link to the best would not be resumable.
    """

    def __init__(self, *args, save_weights_only_best: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.save_weights_only_best = bool(save_weights_only_best)
        self._saving_last = False

    # Lightning 2.6 refreshes last.ckpt only in steps where a top-k checkpoint was saved, so
    # after an epoch that is not among the best last.ckpt would still be an older epoch (and a
    # resumed run would go back in time): refresh it wherever this callback saves.
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        due = not self._should_skip_saving_checkpoint(trainer) and \
            self._should_save_on_train_epoch_end(trainer)
        super().on_train_epoch_end(trainer, pl_module)
        self._refresh_last(trainer, due)

    def on_validation_end(self, trainer, pl_module) -> None:
        due = not self._should_skip_saving_checkpoint(trainer) and \
            not self._should_save_on_train_epoch_end(trainer)
        super().on_validation_end(trainer, pl_module)
        self._refresh_last(trainer, due)

    def _refresh_last(self, trainer, due: bool) -> None:
        if due and self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        if not self.save_last:
            return
        best_saved_now = (
            bool(self._last_checkpoint_saved)
            and self._last_global_step_saved == trainer.global_step
            and self._last_checkpoint_saved == self.best_model_path
        )
        link = best_saved_now and not self.save_weights_only_best
        last_path = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        if not link and os.path.islink(last_path) and trainer.is_global_zero:
            # a link to a best checkpoint: writing through it would overwrite that checkpoint
            os.remove(last_path)
        mode, self.save_last = self.save_last, ("link" if link else True)
        self._saving_last = True
        try:
            super()._save_last_checkpoint(trainer, monitor_candidates)
        finally:
            self.save_last, self._saving_last = mode, False

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        if not (self.save_weights_only_best and not self._saving_last):
            super()._save_checkpoint(trainer, filepath)
            return
        # the best epoch: weights only (Lightning's own option applies to every file it saves)
        mode, self.save_weights_only = self.save_weights_only, True
        try:
            super()._save_checkpoint(trainer, filepath)
        finally:
            self.save_weights_only = mode
