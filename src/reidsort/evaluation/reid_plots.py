"""The pictures of the ``task=eval`` report (matplotlib, Agg backend, atomic PNG writes).

``cmc.png``, ``ap_histogram.png``, ``distance_distributions.png``, ``per_identity_ap.png``,
``pca_embeddings.png`` (2-D PCA of the embeddings, coloured by identity) and
``retrieval_grid.png`` (queries with their top-k gallery images, framed green when the image
shows the query's identity and red when not).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reidsort.data.datasets import ImageRecord
from reidsort.data.image_io import read_image_rgb
from reidsort.utils.io import atomic_output

DPI = 110
CORRECT_RGB = (40, 170, 60)
WRONG_RGB = (215, 40, 40)
QUERY_RGB = (70, 110, 220)
#: thumbnail size in the retrieval grid (height, width): the Re-ID aspect ratio
CELL_HW = (128, 64)
FRAME_PX = 4
#: identities drawn bar by bar; beyond it the worst and best halves are shown
MAX_IDENTITY_BARS = 60
#: identities coloured in the PCA scatter (the queried ones with the most images)
MAX_PCA_IDENTITIES = 20
MAX_PCA_POINTS = 4000


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_cmc(cmc: np.ndarray, path: Path, marked: Sequence[int] = (1, 5, 10, 20)) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ranks = np.arange(1, cmc.size + 1)
    ax.plot(ranks, cmc, marker="o", markersize=3, color="tab:blue")
    for k in marked:
        if k <= cmc.size:
            ax.annotate(f"R{k} {cmc[k - 1]:.3f}", (k, cmc[k - 1]), textcoords="offset points",
                        xytext=(4, -12), fontsize=8)
    ax.set(xlabel="rank k", ylabel="share of queries matched within top k",
           title="CMC curve", ylim=(0, 1.02), xlim=(0.5, cmc.size + 0.5))
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_ap_histogram(average_precision: np.ndarray, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(average_precision, bins=np.linspace(0, 1, 21), color="tab:blue", edgecolor="white")
    mean = float(average_precision.mean())
    ax.axvline(mean, color="black", linestyle="--", label=f"mAP {mean:.3f}")
    ax.set(xlabel="average precision of a query", ylabel="queries",
           title=f"Per-query AP ({average_precision.size} queries)", xlim=(0, 1))
    ax.legend()
    return _save(fig, path)


def plot_distance_distributions(positive: np.ndarray, negative: np.ndarray, label: str,
                                path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    values = np.concatenate([positive, negative])
    # fewer bins for few pairs, so a small evaluation does not draw a comb
    count = int(np.clip(2 * np.sqrt(max(min(positive.size, negative.size), 1)), 10, 50))
    bins = np.linspace(values.min(), values.max(), count + 1) if values.size else count
    ax.hist(negative, bins=bins, density=True, alpha=0.55, color="tab:red",
            label=f"different identity ({negative.size} pairs)")
    ax.hist(positive, bins=bins, density=True, alpha=0.55, color="tab:green",
            label=f"same identity ({positive.size} pairs)")
    ax.set(xlabel=label, ylabel="density",
           title="Query-gallery distances: true matches vs others")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_per_identity(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Bars of per-identity mean AP, sorted (rows come worst first)."""
    plt = _pyplot()
    shown = list(rows)
    title = f"Mean AP per query identity ({len(rows)} identities)"
    if len(shown) > MAX_IDENTITY_BARS:
        half = MAX_IDENTITY_BARS // 2
        shown = shown[:half] + shown[-half:]
        title += f": worst {half} and best {half}"
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(shown) + 1.5), 4))
    values = [row["mean_ap"] for row in shown]
    colors = plt.get_cmap("RdYlGn")(np.asarray(values))
    ax.bar(np.arange(len(shown)), values, color=colors)
    ax.set_xticks(np.arange(len(shown)))
    ax.set_xticklabels([str(row["pid"]) for row in shown], rotation=90, fontsize=6)
    ax.set(xlabel="identity (pid)", ylabel="mean AP", ylim=(0, 1.02), title=title)
    if len(rows) > MAX_IDENTITY_BARS:
        ax.axvline(MAX_IDENTITY_BARS // 2 - 0.5, color="grey", linestyle=":")
    return _save(fig, path)


def pca_2d(features: np.ndarray) -> np.ndarray:
    """Project rows onto their two principal axes (eigen-decomposition of the covariance)."""
    centred = features.astype(np.float64) - features.mean(axis=0, keepdims=True)
    covariance = centred.T @ centred / max(len(centred) - 1, 1)
    _, vectors = np.linalg.eigh(covariance)
    return centred @ vectors[:, ::-1][:, :2]


def plot_pca(query_features: np.ndarray, gallery_features: np.ndarray,
             query_pids: np.ndarray, gallery_pids: np.ndarray, path: Path,
             seed: int = 0) -> Path:
    plt = _pyplot()
    pids = np.concatenate([query_pids, gallery_pids])
    is_query = np.concatenate([np.ones(len(query_pids), bool), np.zeros(len(gallery_pids), bool)])
    features = np.concatenate([query_features, gallery_features])
    # identities that are queried (never the Market-1501 distractors), most images first
    values, counts = np.unique(pids[np.isin(pids, query_pids)], return_counts=True)
    chosen = values[np.argsort(-counts, kind="stable")[:MAX_PCA_IDENTITIES]]
    mask = np.isin(pids, chosen)
    index = np.flatnonzero(mask)
    if index.size > MAX_PCA_POINTS:
        index = np.sort(np.random.default_rng(seed).choice(index, MAX_PCA_POINTS, replace=False))
    points = pca_2d(features[index]) if index.size >= 2 else np.zeros((index.size, 2))
    fig, ax = plt.subplots(figsize=(6.5, 5))
    cmap = plt.get_cmap("tab20")
    for colour_index, pid in enumerate(chosen):
        for role, marker, size in ((False, "o", 14), (True, "*", 70)):
            sel = (pids[index] == pid) & (is_query[index] == role)
            if sel.any():
                ax.scatter(points[sel, 0], points[sel, 1], s=size, marker=marker,
                           color=cmap(colour_index % 20), edgecolors="black" if role else "none",
                           linewidths=0.4, label=str(pid) if not role else None)
    ax.set(xlabel="principal axis 1", ylabel="principal axis 2",
           title=f"Embeddings, 2-D PCA ({len(chosen)} identities; stars = queries)")
    if len(chosen) <= MAX_PCA_IDENTITIES:
        ax.legend(title="pid", fontsize=6, title_fontsize=7, ncol=2, loc="center left",
                  bbox_to_anchor=(1.01, 0.5), markerscale=1.2)
    return _save(fig, path)


def _thumbnail(path: str, border_rgb: tuple[int, int, int]) -> np.ndarray:
    height, width = CELL_HW
    image = read_image_rgb(path) if path else None
    if image is None:  # unknown or unreadable file: a grey tile keeps the grid aligned
        image = np.full((height, width, 3), 128, dtype=np.uint8)
    inner = cv2.resize(image, (width - 2 * FRAME_PX, height - 2 * FRAME_PX),
                       interpolation=cv2.INTER_AREA)
    tile = np.empty((height, width, 3), dtype=np.uint8)
    tile[:] = border_rgb
    tile[FRAME_PX:-FRAME_PX, FRAME_PX:-FRAME_PX] = inner
    return tile


def choose_grid_queries(average_precision_by_query: np.ndarray, valid: np.ndarray,
                        count: int) -> np.ndarray:
    """Queries spread over the AP range (worst to best), so failures and successes both show."""
    candidates = np.flatnonzero(valid)
    if candidates.size <= count:
        return candidates
    order = candidates[np.argsort(average_precision_by_query[candidates], kind="stable")]
    return order[np.linspace(0, order.size - 1, count).round().astype(int)]


def plot_retrieval_grid(query: Sequence[ImageRecord], gallery: Sequence[ImageRecord],
                        top_k_indices: np.ndarray, chosen: np.ndarray,
                        average_precision_by_query: np.ndarray, path: Path) -> Path:
    plt = _pyplot()
    k = top_k_indices.shape[1]
    rows = []
    for q in chosen:
        tiles = [_thumbnail(query[q].path, QUERY_RGB),
                 np.full((CELL_HW[0], CELL_HW[1] // 4, 3), 255, dtype=np.uint8)]
        for g in top_k_indices[q]:
            if g < 0:
                tiles.append(np.full((*CELL_HW, 3), 255, dtype=np.uint8))
                continue
            correct = gallery[g].pid == query[q].pid
            tiles.append(_thumbnail(gallery[g].path, CORRECT_RGB if correct else WRONG_RGB))
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0) if rows else np.full((*CELL_HW, 3), 255, np.uint8)
    fig_height = 0.9 + 1.25 * max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * (k + 1.25), fig_height))
    ax.imshow(grid)
    ax.set_xticks([CELL_HW[1] / 2] + [CELL_HW[1] * 1.25 + CELL_HW[1] * (i + 0.5)
                                      for i in range(k)])
    ax.set_xticklabels(["query"] + [str(i + 1) for i in range(k)], fontsize=7)
    ax.set_yticks([CELL_HW[0] * (i + 0.5) for i in range(len(rows))])
    ax.set_yticklabels([f"pid {query[q].pid}\nAP {average_precision_by_query[q]:.2f}"
                        for q in chosen], fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Top-k retrievals (blue = query, green = same identity, red = other)",
                 fontsize=9)
    return _save(fig, path)
