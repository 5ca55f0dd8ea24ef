"""The training-curves figure: panels, and the colour-histogram baseline as a reference line."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from reidsort.reid.callbacks import BASELINE_LABEL, CURVE_PANELS, draw_training_curves

HISTORY = {"train/loss_epoch": [(0, 6.9), (1, 5.6)], "train/acc": [(0, 0.02), (1, 0.08)],
           "val/mAP": [(0, 0.25), (1, 0.31)], "val/rank1": [(0, 0.30), (1, 0.38)]}


def _panel(fig, title: str):
    return next(ax for ax in fig.axes if ax.get_title() == title)


def test_a_known_baseline_is_a_horizontal_line_with_a_legend_entry():
    fig = draw_training_curves(HISTORY, baseline_map=0.42)
    try:
        validation = _panel(fig, "validation")
        lines = {line.get_label(): line for line in validation.lines}
        assert set(lines) == {"mAP", "rank1", BASELINE_LABEL}
        ys = lines[BASELINE_LABEL].get_ydata()
        assert list(ys) == pytest.approx([0.42, 0.42])  # constant: horizontal
        legend = [text.get_text() for text in validation.get_legend().get_texts()]
        assert BASELINE_LABEL in legend
        # only the validation panel, where mAP is drawn, gets it
        others = [ax for ax in fig.axes if ax is not validation]
        assert len(others) == len(CURVE_PANELS) - 1
        assert all(BASELINE_LABEL not in [line.get_label() for line in ax.lines] for ax in others)
    finally:
        plt.close(fig)


def test_without_a_baseline_no_reference_line():
    fig = draw_training_curves(HISTORY)
    try:
        assert [line.get_label() for line in _panel(fig, "validation").lines] == ["mAP", "rank1"]
    finally:
        plt.close(fig)
