"""``task=eval`` end to end: checkpoint, ONNX and saved-feature sources, data sources, report
files, and one-line errors for bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import compose_config
from omegaconf import OmegaConf

from reidsort.evaluation.reid_data import load_eval_split
from reidsort.reid.metrics import evaluate_retrieval
from reidsort.tasks.eval import eval as run_eval
from reidsort.tasks.train import build_module
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import resolved_yaml

torch.set_num_threads(1)

#: tiny synthetic data (the TINY_TRAIN data settings) and a small, fast model
TINY_DATA = [
    "data.synthetic.num_identities=24",
    "data.synthetic.num_cameras=4",
    "data.synthetic.images_per_identity_camera=2",
    "data.num_workers=0",
    "data.eval_batch_size=32",
    "data.val_identities=4",
]
REPORT_FILES = ["summary.md", "summary.csv", "per_query_ap.csv", "per_identity_ap.csv",
                "cmc.csv", "top_k.csv", "cmc.png", "ap_histogram.png",
                "distance_distributions.png", "per_identity_ap.png", "pca_embeddings.png",
                "retrieval_grid.png"]


def _random_checkpoint(folder: Path, data_dir: Path) -> Path:
    """A randomly initialised model saved like task=train saves one (config.yaml beside it)."""
    cfg = compose_config(["model=deepsort_cnn", "data.image_size=[128,64]", *TINY_DATA],
                         folder / "train_run", data_dir)
    torch.manual_seed(0)
    module = build_module(cfg, num_classes=12)
    path = folder / "checkpoints" / "random.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)},
               path)
    (path.parent / "config.yaml").write_text(resolved_yaml(cfg))
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def checkpoint(tmp_path, synthetic_data_dir) -> Path:
    return _random_checkpoint(tmp_path / "model", synthetic_data_dir)


def test_checkpoint_eval_writes_the_report_and_saved_features_rescore_identically(
        checkpoint, make_config, tmp_path):
    cfg = make_config([*TINY_DATA, "task=eval", f"ckpt_path={checkpoint}", "task.top_k=5",
                       "task.save_features=true"])
    metrics = run_eval(cfg)
    out = Path(cfg.paths.output_dir)
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    for name in REPORT_FILES:
        if name.endswith(".png"):
            assert (out / name).stat().st_size > 8000, name  # a real picture, not a stub
    queries = _rows(out / "per_query_ap.csv")
    assert len(queries) == metrics["eval/num_queries"] > 0
    valid = [float(r["ap"]) for r in queries if r["valid"] == "True"]
    assert len(valid) == metrics["eval/num_valid_queries"]
    assert np.mean(valid) == pytest.approx(metrics["eval/mAP"], abs=1e-6)
    top = _rows(out / "top_k.csv")
    assert len(top) == 5 * len(queries)
    assert all((r["correct"] == "True") == (r["query_pid"] == r["gallery_pid"]) for r in top)
    cmc = _rows(out / "cmc.csv")
    assert len(cmc) == 50 and float(cmc[0]["accuracy"]) == pytest.approx(metrics["eval/rank1"])
    summary = (out / "summary.md").read_text()
    assert "| mAP |" in summary and "| query |" in summary and "deepsort_cnn" in summary
    assert 0.0 <= metrics["eval/mAP"] <= 1.0

    # the saved features re-score to the same numbers without any image or model
    saved = out / "features.npz"
    again = make_config(["task=eval", f"ckpt_path={saved}", "task.plots=false"])
    assert run_eval(again)["eval/mAP"] == pytest.approx(metrics["eval/mAP"], abs=1e-12)
    # options: re-ranking (and its plain baseline), Euclidean distance, no-camera protocol
    options = make_config(["task=eval", f"ckpt_path={saved}", "task.plots=false",
                           "task.rerank.enabled=true", "task.rerank.k1=6", "task.rerank.k2=2",
                           "task.distance=euclidean", "task.protocol=no_camera"])
    reranked = run_eval(options)
    assert 0.0 <= reranked["eval/mAP"] <= 1.0 and "eval/mAP_plain" in reranked


def test_onnx_model_scores_like_its_checkpoint(checkpoint, make_config):
    from reidsort.export.onnx import export_onnx

    onnx_path = export_onnx(checkpoint, checkpoint.with_suffix(".onnx"), exporter="legacy",
                            simplify=False)
    results = {}
    for source in (checkpoint, onnx_path):
        cfg = make_config([*TINY_DATA, "task=eval", f"ckpt_path={source}", "task.plots=false",
                           "task.flip=true"])
        results[source.suffix] = run_eval(cfg)
    assert results[".onnx"]["eval/mAP"] == pytest.approx(results[".ckpt"]["eval/mAP"], abs=2e-3)
    assert results[".onnx"]["eval/num_queries"] == results[".ckpt"]["eval/num_queries"]


def test_mini_market1501_sizes_and_an_oracle_embedding_scores_perfectly(shared_data, tmp_path):
    root = shared_data / "reid" / "mini_market1501"
    cfg = compose_config(["data=market1501", f"data.root={root}", "data.num_workers=0"],
                         tmp_path / "run", tmp_path / "data")
    split = load_eval_split(cfg.data)
    assert (len(split.query), len(split.gallery)) == (32, 32)
    assert len({r.pid for r in split.query}) == 16 and split.has_cameras
    q_pids = np.array([r.pid for r in split.query])
    g_pids = np.array([r.pid for r in split.gallery])
    identities = np.unique(np.concatenate([q_pids, g_pids]))
    oracle = np.eye(len(identities), dtype=np.float32)  # one direction per identity
    result = evaluate_retrieval(
        oracle[np.searchsorted(identities, q_pids)], oracle[np.searchsorted(identities, g_pids)],
        q_pids, g_pids, [r.camid for r in split.query], [r.camid for r in split.gallery])
    assert result.mAP == 1.0 and result.rank(1) == 1.0 and result.mINP == 1.0
    # two queries have their identity only in their own camera: skipped and counted
    assert result.num_valid_queries == 30


def _write_images(folder: Path, names: list[str], seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (16, 8, 3), dtype=np.uint8))


def _data_cfg(tmp_path: Path, overrides: list[str]):
    return compose_config(overrides, tmp_path / "run", tmp_path / "data").data


def test_folder_auto_split_is_identity_disjoint_and_seeded(tmp_path):
    root = tmp_path / "people"
    for person in range(10):
        _write_images(root / f"person{person:02d}",
                      [f"{person:04d}_c{cam}s1_00{i}_00.jpg" for cam in (1, 2) for i in range(2)],
                      seed=person)
    overrides = ["data=folder", f"data.root={root}", "data.val_identities=0.3", "seed=5",
                 "data.num_workers=0"]
    heldout = load_eval_split(_data_cfg(tmp_path, overrides))
    again = load_eval_split(_data_cfg(tmp_path, overrides))
    assert [r.path for r in heldout.query] == [r.path for r in again.query]  # seeded
    assert len({r.pid for r in heldout.query}) == 3 and heldout.has_cameras
    from reidsort.data.datamodule import ReIDDataModule

    training = ReIDDataModule(format="folder", root=str(root), val_identities=0.3, seed=5,
                              num_workers=0, p=2, k=2)
    _, final = training.load()
    train_pids = {r.pid for r in final.split.train}
    assert not train_pids & {r.pid for r in (*heldout.query, *heldout.gallery)}
    everyone = load_eval_split(_data_cfg(tmp_path, overrides), folder_identities="all")
    assert len({r.pid for r in everyone.query}) == 10


def test_query_gallery_folders_and_their_naming(tmp_path):
    _write_images(tmp_path / "q", ["0001_c1s1_000001_00.jpg", "0002_c1s1_000001_00.jpg"])
    _write_images(tmp_path / "g", ["0001_c2s1_000002_00.jpg", "0002_c3s1_000003_00.jpg",
                                   "-1_c2s1_000004_00.jpg", "0000_c2s1_000005_00.jpg"])
    split = load_eval_split(_data_cfg(tmp_path, [
        "data=query_gallery", f"data.query_root={tmp_path / 'q'}",
        f"data.gallery_root={tmp_path / 'g'}"]))
    assert len(split.query) == 2 and len(split.gallery) == 3  # junk (-1) dropped, 0 kept
    _write_images(tmp_path / "bad", ["person_a.jpg"])
    with pytest.raises(ReidsortError, match="does not follow Market-1501 naming"):
        load_eval_split(_data_cfg(tmp_path, [
            "data=query_gallery", f"data.query_root={tmp_path / 'bad'}",
            f"data.gallery_root={tmp_path / 'g'}"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReidsortError, match="no query images"):
        load_eval_split(_data_cfg(tmp_path, [
            "data=query_gallery", f"data.query_root={tmp_path / 'empty'}",
            f"data.gallery_root={tmp_path / 'g'}"]))


def _features_file(path: Path, query: np.ndarray, gallery: np.ndarray,
                   cameras: bool = True) -> Path:
    arrays = {"query_features": query, "gallery_features": gallery,
              "query_pids": np.arange(len(query)) % 3, "gallery_pids": np.arange(len(gallery)) % 3}
    if cameras:
        arrays.update(query_camids=np.zeros(len(query), int),
                      gallery_camids=np.ones(len(gallery), int))
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("query", "gallery", "cameras", "message"), [
    (np.ones((4, 8)), np.ones((6, 5)), True, "differ in dimension"),
    (np.full((4, 8), np.nan), np.ones((6, 8)), True, "4 of 4 query feature vectors contain NaN"),
    (np.ones((0, 8)), np.ones((6, 8)), True, "no query features"),
    (np.ones((4, 8)), np.ones((6, 8)), False, "needs a camera id for every image"),
])
def test_bad_features_fail_clearly_and_write_nothing(tmp_path, make_config, query, gallery,
                                                     cameras, message):
    path = _features_file(tmp_path / "f.npz", query.astype(np.float32),
                          gallery.astype(np.float32), cameras)
    cfg = make_config(["task=eval", f"ckpt_path={path}"])
    with pytest.raises(ReidsortError, match=message):
        run_eval(cfg)
    assert not (Path(cfg.paths.output_dir) / "summary.md").exists()


def test_bad_sources_fail_clearly(tmp_path, make_config):
    for source, message in ((tmp_path / "missing.ckpt", "not found"),
                            (tmp_path / "model.h5", "expected a Lightning checkpoint")):
        with pytest.raises(ReidsortError, match=message):
            run_eval(make_config(["task=eval", f"ckpt_path={source}"]))
    with pytest.raises(ReidsortError, match="ckpt_path is not set"):
        run_eval(make_config(["task=eval"]))
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ReidsortError, match="not a readable checkpoint"):
        run_eval(make_config([*TINY_DATA, "task=eval", f"ckpt_path={broken}"]))


def test_cli_reports_a_bad_input_in_one_line(tmp_path):
    from test_train import run_main

    path = _features_file(tmp_path / "nan.npz", np.full((2, 4), np.nan, np.float32),
                          np.ones((3, 4), np.float32))
    done = run_main(["task=eval", f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'run'}"],
                    tmp_path)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "NaN" in errors[0]
    assert OmegaConf.load(tmp_path / "run" / ".hydra" / "overrides.yaml")  # hydra ran; no report
    assert not (tmp_path / "run" / "summary.md").exists()
