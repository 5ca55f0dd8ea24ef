"""``task=eval``: Re-ID evaluation of a checkpoint, an ONNX model or saved features, with a report.

``python main.py task=eval ckpt_path=<.ckpt|.pt|.onnx|.npz> [data=<config>] ...`` embeds the
query and gallery images, scores them under the Market-1501 protocol (or without cameras),
optionally with flip test-time augmentation and k-reciprocal re-ranking, and writes
``summary.md``, CSV tables and PNG plots to the run directory. Returns ``eval/*`` metrics.
A checkpoint is evaluated on the data it was trained on unless ``data=`` says otherwise
(:mod:`reidsort.evaluation.eval_data`); the console names the data, split and sizes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from reidsort.data.datasets import ImageRecord
from reidsort.evaluation import reid_plots
from reidsort.evaluation.eval_data import (
    choose_eval_data,
    describe_split,
    differences_from_training,
)
from reidsort.evaluation.reid_data import load_eval_split
from reidsort.evaluation.reid_features import (
    CHECKPOINT,
    FEATURES,
    TORCHSCRIPT_MODEL,
    checkpoint_embedder,
    load_saved_features,
    onnx_embedder,
    source_kind,
    torchscript_embedder,
)
from reidsort.evaluation.reid_report import EvalTables, write_summary, write_tables
from reidsort.reid.checkpoints import load_checkpoint
from reidsort.reid.metrics import (
    DistanceMetric,
    RetrievalResult,
    evaluate_retrieval,
    evaluate_retrieval_from_distmat,
)
from reidsort.reid.reranking import k_reciprocal_rerank
from reidsort.reid.training_data import read_training_data
from reidsort.utils.errors import ReidsortError
from reidsort.utils.io import atomic_output

log = logging.getLogger(__name__)

PROTOCOLS = ("market1501", "no_camera")
#: true-match pairs drawn in the distance plot at most
MAX_POSITIVE_PAIRS = 50_000


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _check_features(query: np.ndarray, gallery: np.ndarray, source: str) -> None:
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ReidsortError(f"{source}: query and gallery features differ in dimension "
                            f"({query.shape} vs {gallery.shape})")
    for role, rows in (("query", query), ("gallery", gallery)):
        if len(rows) == 0:
            raise ReidsortError(f"{source}: no {role} features to evaluate")
        bad = int((~np.isfinite(rows).all(axis=1)).sum())
        if bad:
            raise ReidsortError(f"{source}: {bad} of {len(rows)} {role} feature vectors contain "
                                "NaN or infinite values")


def _embed(cfg: DictConfig, source: Path, kind: str) -> tuple[np.ndarray, np.ndarray,
                                                               list[ImageRecord],
                                                               list[ImageRecord],
                                                               str, str, dict[str, int],
                                                               list[str]]:
    """Features and records of query and gallery, descriptions, counts and console notes."""
    task = cfg.task
    if kind == FEATURES:
        saved = load_saved_features(source)
        return (saved.query_features, saved.gallery_features, saved.query, saved.gallery,
                f"saved features {source}", f"features file {source}", {}, [])
    checkpoint = load_checkpoint(source) if kind == CHECKPOINT else None
    trained = read_training_data(checkpoint, source) if checkpoint is not None else None
    chosen = choose_eval_data(cfg, trained, source, has_record_kind=kind == CHECKPOINT)
    # the model first: a wrong file fails before the data is read and scanned
    batch_size, workers = int(task.batch_size), int(task.num_workers)
    if kind == CHECKPOINT:
        embedder = checkpoint_embedder(source, task.get("image_size"), chosen.config.image_size,
                                       str(task.device), task.get("eval_feature"), batch_size,
                                       workers, checkpoint=checkpoint)
    elif kind == TORCHSCRIPT_MODEL:
        embedder = torchscript_embedder(source, str(task.device), batch_size, workers)
    else:
        embedder = onnx_embedder(source, batch_size, workers, task.get("onnx_threads"))
    split = load_eval_split(chosen.config, str(task.folder_identities),
                            int(cfg.get("seed") or 0), split=str(task.get("split", "test")))
    notes = [f"data     {describe_split(split)}", f"         from {chosen.origin}"]
    for warning in differences_from_training(split, trained, source):
        log.warning(warning)
        notes.append(f"warning  {warning}")
    log.info("evaluating %s", describe_split(split))
    log.info("embedding %d query and %d gallery images with %s", len(split.query),
             len(split.gallery), embedder.description)
    flip = bool(task.flip)
    query = embedder.embed_records(split.query, flip)
    gallery = embedder.embed_records(split.gallery, flip)
    counts = {"files_rejected_by_the_data_scan": split.skipped_files,
              "unreadable_images_skipped": query.skipped + gallery.skipped}
    return (query.features, gallery.features,
            [r for r, keep in zip(split.query, query.kept) if keep],
            [r for r, keep in zip(split.gallery, gallery.kept) if keep],
            embedder.description, split.source, counts, notes)


def _pair_distances(query: np.ndarray, gallery: np.ndarray, rows: np.ndarray,
                    columns: np.ndarray, metric: DistanceMetric) -> np.ndarray:
    left = query[rows].astype(np.float64)
    right = gallery[columns].astype(np.float64)
    if metric is DistanceMetric.COSINE:
        left /= np.linalg.norm(left, axis=1, keepdims=True)
        right /= np.linalg.norm(right, axis=1, keepdims=True)
        return 1.0 - np.einsum("nd,nd->n", left, right)
    return np.linalg.norm(left - right, axis=1)


def _distance_samples(tables: EvalTables, lookup: Any, negatives: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances of true-match pairs (as scored) and of random different-identity pairs."""
    q_pids = np.array([r.pid for r in tables.query])
    g_pids = np.array([r.pid for r in tables.gallery])
    q_cams = np.array([r.camid for r in tables.query])
    g_cams = np.array([r.camid for r in tables.gallery])
    order = np.argsort(g_pids, kind="stable")
    low = np.searchsorted(g_pids[order], q_pids, side="left")
    high = np.searchsorted(g_pids[order], q_pids, side="right")
    rows = np.repeat(np.arange(len(q_pids)), high - low)
    columns = order[np.concatenate([np.arange(a, b) for a, b in zip(low, high)])] \
        if rows.size else np.empty(0, dtype=np.int64)
    if tables.camera_exclusion:
        keep = g_cams[columns] != q_cams[rows]
        rows, columns = rows[keep], columns[keep]
    rng = np.random.default_rng(seed)
    if rows.size > MAX_POSITIVE_PAIRS:
        pick = rng.choice(rows.size, MAX_POSITIVE_PAIRS, replace=False)
        rows, columns = rows[pick], columns[pick]
    num_pairs = len(q_pids) * len(g_pids)
    flat = np.arange(num_pairs) if num_pairs <= negatives else \
        np.unique(rng.integers(0, num_pairs, negatives))  # distinct pairs
    neg_rows, neg_columns = np.divmod(flat, len(g_pids))
    different = g_pids[neg_columns] != q_pids[neg_rows]
    return lookup(rows, columns), lookup(neg_rows[different], neg_columns[different])


def _write_plots(tables: EvalTables, query_features: np.ndarray, gallery_features: np.ndarray,
                 lookup: Any, distance_label: str, out_dir: Path, task: DictConfig,
                 seed: int) -> list[Path]:
    result = tables.result
    ap_by_query = np.zeros(len(tables.query))
    ap_by_query[result.valid_query] = result.average_precision
    positive, negative = _distance_samples(tables, lookup, int(task.negative_pairs), seed)
    paths = [
        reid_plots.plot_cmc(result.cmc, out_dir / "cmc.png"),
        reid_plots.plot_ap_histogram(result.average_precision, out_dir / "ap_histogram.png"),
        reid_plots.plot_distance_distributions(positive, negative, distance_label,
                                               out_dir / "distance_distributions.png"),
        reid_plots.plot_per_identity(tables.per_identity(), out_dir / "per_identity_ap.png"),
        reid_plots.plot_pca(query_features, gallery_features,
                            np.array([r.pid for r in tables.query]),
                            np.array([r.pid for r in tables.gallery]),
                            out_dir / "pca_embeddings.png", seed),
    ]
    if result.top_k_indices is not None:
        chosen = reid_plots.choose_grid_queries(ap_by_query, result.valid_query,
                                                int(task.grid_queries))
        paths.append(reid_plots.plot_retrieval_grid(
            tables.query, tables.gallery, result.top_k_indices, chosen, ap_by_query,
            out_dir / "retrieval_grid.png"))
    return paths


def _save_features(path: Path, query_features: np.ndarray, gallery_features: np.ndarray,
                   query: list[ImageRecord], gallery: list[ImageRecord]) -> Path:
    arrays: dict[str, np.ndarray] = {"query_features": query_features,
                                     "gallery_features": gallery_features}
    for role, records in (("query", query), ("gallery", gallery)):
        arrays[f"{role}_pids"] = np.array([r.pid for r in records], dtype=np.int64)
        arrays[f"{role}_camids"] = np.array([r.camid for r in records], dtype=np.int64)
        arrays[f"{role}_paths"] = np.array([r.path for r in records], dtype=str)
    with atomic_output(path) as tmp:
        np.savez(tmp, **arrays)
    return path


def eval(cfg: DictConfig) -> dict[str, float]:
    started = time.perf_counter()
    task = cfg.task
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    if not cfg.get("ckpt_path"):
        raise ReidsortError("ckpt_path is not set: pass ckpt_path=<model .ckpt, TorchScript .pt, "
                            ".onnx or saved features .npz>")
    if str(task.protocol) not in PROTOCOLS:
        raise ReidsortError(f"task.protocol={task.protocol!r}: expected one of {PROTOCOLS}")
    metric = DistanceMetric(str(task.distance))
    source = Path(str(cfg.ckpt_path))
    kind = source_kind(source)
    if not source.is_file():
        raise ReidsortError(f"ckpt_path not found: {source}")
    seed = int(cfg.get("seed") or 0)
    out_dir = Path(cfg.paths.output_dir)

    (query_features, gallery_features, query, gallery, model, data_source,
     counts, data_notes) = _embed(cfg, source, kind)
    embedded = time.perf_counter()
    _check_features(query_features, gallery_features, model)
    camera_exclusion = str(task.protocol) == "market1501"
    if camera_exclusion and any(r.camid < 0 for r in (*query, *gallery)):
        raise ReidsortError(f"{data_source}: task.protocol=market1501 needs a camera id for "
                            "every image; this data has none (use task.protocol=no_camera)")
    q_pids = np.array([r.pid for r in query])
    g_pids = np.array([r.pid for r in gallery])
    camids = (np.array([r.camid for r in query]), np.array([r.camid for r in gallery])) \
        if camera_exclusion else (None, None)
    device = _device(str(task.device))
    common = {"max_rank": int(task.max_rank), "chunk_size": int(task.chunk_size),
              "top_k": int(task.top_k)}

    def score_plain() -> RetrievalResult:
        return evaluate_retrieval(torch.from_numpy(query_features).to(device),
                                  torch.from_numpy(gallery_features).to(device), q_pids, g_pids,
                                  *camids, metric=metric, **common)

    metrics: dict[str, float] = {}
    rerank = task.rerank
    if rerank.enabled:
        plain = score_plain()
        metrics.update({f"eval/{k}_plain": v for k, v in plain.summary((1, 5, 10, 20)).items()})
        distmat = k_reciprocal_rerank(query_features, gallery_features, k1=int(rerank.k1),
                                      k2=int(rerank.k2), lambda_value=float(rerank.lambda_value),
                                      metric=metric,
                                      max_result_bytes=float(rerank.max_memory_gb) * 1e9)
        result = evaluate_retrieval_from_distmat(distmat, q_pids, g_pids, *camids, **common)

        def lookup(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
            return distmat[rows, columns].astype(np.float64)

        distance_label = "re-ranked distance"
    else:
        result = score_plain()

        def lookup(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
            return _pair_distances(query_features, gallery_features, rows, columns, metric)

        distance_label = f"{metric.value} distance"
    scored = time.perf_counter()

    settings = {
        "protocol": task.protocol, "distance": metric.value, "flip TTA": bool(task.flip),
        "re-ranking": (f"k-reciprocal k1={rerank.k1} k2={rerank.k2} lambda={rerank.lambda_value}"
                       if rerank.enabled else "off"),
        "max rank": int(task.max_rank), "top-k lists": int(task.top_k), "device": str(device),
        "seed": seed,
    }
    if rerank.enabled:
        counts = {**counts, "mAP_without_re-ranking": round(metrics["eval/mAP_plain"], 4),
                  "rank1_without_re-ranking": round(metrics["eval/rank1_plain"], 4)}
    tables = EvalTables(result, query, gallery, camera_exclusion, settings, model, data_source,
                        counts, {"embedding": embedded - started, "scoring": scored - embedded})
    written = write_tables(tables, out_dir)
    if task.plots:
        written += _write_plots(tables, query_features, gallery_features, lookup,
                                distance_label, out_dir, task, seed)
    if task.save_features:
        written.append(_save_features(out_dir / "features.npz", query_features,
                                      gallery_features, query, gallery))
    summary = write_summary(tables, out_dir, ["summary.md", *(p.name for p in written)])

    metrics.update({f"eval/{k}": v for k, v in tables.metrics().items()})
    metrics.update({
        "eval/num_queries": float(len(query)), "eval/num_gallery": float(len(gallery)),
        "eval/num_valid_queries": float(result.num_valid_queries),
        "time/seconds": time.perf_counter() - started,
    })
    print(_console_summary(tables, summary, data_notes, metrics), flush=True)
    return metrics


def _console_summary(tables: EvalTables, summary: Path, data_notes: list[str],
                     metrics: dict[str, float]) -> str:
    # with re-ranking, the scores without it (eval/<name>_plain) stand beside the re-ranked ones
    plain = {key.removeprefix("eval/").removesuffix("_plain"): value
             for key, value in metrics.items() if key.endswith("_plain")}
    lines = ["", "=" * 64, f"reidsort eval  ({tables.model})", *data_notes, "-" * 64]
    if plain:
        lines.append(f"{'':<8} {'re-ranked':<10} without re-ranking")
    for name, value in tables.metrics().items():
        lines.append(f"{name:<8} {value:<10.4f} {plain[name]:.4f}" if name in plain
                     else f"{name:<8} {value:.4f}")
    lines += [(f"queries  {tables.result.num_valid_queries} scored of {len(tables.query)}, "
               f"gallery {len(tables.gallery)}"),
              f"report   {summary}", "=" * 64]
    return "\n".join(lines)


__all__ = ["eval"]
