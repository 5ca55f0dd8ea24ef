"""``task=eval`` with re-ranking: the console shows every score with and without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import REPO_ROOT

from reidsort.reid.metrics import evaluate_retrieval, evaluate_retrieval_from_distmat
from reidsort.reid.reranking import k_reciprocal_rerank


def _clustered_features(path: Path) -> dict[str, np.ndarray]:
    """8 identities, 2 query and 4 gallery images each, noisy enough that ranking is imperfect."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(8, 16))
    query_pids, gallery_pids = np.repeat(np.arange(8), 2), np.repeat(np.arange(8), 4)
    arrays = {
        "query_features": (centers[query_pids] + 1.2 * rng.normal(size=(16, 16))).astype("f4"),
        "gallery_features": (centers[gallery_pids] + 1.2 * rng.normal(size=(32, 16))).astype("f4"),
        "query_pids": query_pids, "gallery_pids": gallery_pids,
        "query_camids": np.zeros(16, np.int64), "gallery_camids": np.ones(32, np.int64)}
    np.savez(path, **arrays)
    return arrays


def _console_scores(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("reidsort eval"))
    return {line.split()[0]: line.split()[1:] for line in lines[start:]
            if line.split() and line.split()[0] in ("mAP", "mINP", "rank1", "rank5")}


def test_reranked_scores_stand_next_to_the_plain_ones(tmp_path: Path) -> None:
    arrays = _clustered_features(tmp_path / "features.npz")
    command = [sys.executable, str(REPO_ROOT / "main.py"), "task=eval",
               f"ckpt_path={tmp_path / 'features.npz'}", "task.plots=false",
               "task.rerank.enabled=true", "task.rerank.k1=6", "task.rerank.k2=2",
               f"hydra.run.dir={tmp_path / 'run'}", f"paths.data_dir={tmp_path / 'data'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "re-ranked  without re-ranking" in done.stdout
    ids = (arrays["query_pids"], arrays["gallery_pids"], arrays["query_camids"],
           arrays["gallery_camids"])
    plain = evaluate_retrieval(torch.from_numpy(arrays["query_features"]),
                               torch.from_numpy(arrays["gallery_features"]), *ids)
    reranked = evaluate_retrieval_from_distmat(
        k_reciprocal_rerank(arrays["query_features"], arrays["gallery_features"], k1=6, k2=2,
                            lambda_value=0.3, metric="cosine"),
        *ids)
    assert plain.mAP != reranked.mAP  # the two columns tell different things
    scores = _console_scores(done.stdout)
    assert scores["mAP"] == [f"{reranked.mAP:.4f}", f"{plain.mAP:.4f}"]
    assert scores["mINP"] == [f"{reranked.mINP:.4f}", f"{plain.mINP:.4f}"]
    assert scores["rank1"] == [f"{reranked.rank(1):.4f}", f"{plain.rank(1):.4f}"]
