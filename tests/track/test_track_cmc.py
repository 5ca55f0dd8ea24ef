"""``task=track`` with camera-motion compensation: the ``cmc`` config group, per-source
estimators, frame-number alignment of GMC files, decoding for image methods, and real runs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import compose_config
from track_samples import synthetic_overrides, write_mot_folder

from reidsort.tasks.track import build, camera_motion, cmc_label, track
from reidsort.tracking import DeepSortTracker
from reidsort.tracking.cmc import (
    CameraMotionMethod,
    FileCameraMotion,
    NoCameraMotion,
    compose_warps,
    identity_warp,
)
from reidsort.utils.errors import ReidsortError
from reidsort.video.sources import MotSequenceSource

METHODS = [m.value for m in CameraMotionMethod]


def _config(tmp_path, *overrides):
    return compose_config(
        ["task=track", "task.progress=false", *overrides], tmp_path / "run", tmp_path / "data"
    )


def _gmc_text(warps: list[np.ndarray]) -> str:
    return "".join(
        f"{k}\t" + "\t".join(f"{v:.6f}" for v in w.ravel()) + "\n" for k, w in enumerate(warps)
    )


def _shift(dx: float, dy: float = 0.0) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


@pytest.fixture
def recorded_warps(monkeypatch):
    """(tracker frame, warp or None) of every DeepSortTracker.update call."""
    calls: list[tuple[int, np.ndarray | None]] = []
    original = DeepSortTracker.update

    def update(self, dets, embeddings=None, **kwargs):
        calls.append((self.frame_count + 1, kwargs.get("warp")))
        return original(self, dets, embeddings, **kwargs)

    monkeypatch.setattr(DeepSortTracker, "update", update)
    return calls


def test_cmc_group_defaults_to_none_and_every_option_composes(tmp_path):
    cfg = _config(tmp_path)
    assert cfg.cmc._target_.endswith("NoCameraMotion") and cmc_label(cfg) == "none"
    for method in METHODS:
        cfg = _config(tmp_path, f"cmc={method}")
        assert cmc_label(cfg) == method
        if method != "file":
            estimator = build(cfg.cmc)
            assert estimator.method.value == method
    cfg = _config(tmp_path, "cmc=ecc", "cmc.downscale=4", "cmc.max_iterations=50")
    estimator = build(cfg.cmc)
    assert estimator.downscale == 4 and estimator.max_iterations == 50
    assert _config(tmp_path, "cmc=file").cmc.path == "gmc.txt"


def test_file_path_is_resolved_per_source(tmp_path):
    root = write_mot_folder(tmp_path / "SEQ-01", ["1,-1,1,1,5,5,0.9"], length=3, name="SEQ-01")
    (root / "gmc.txt").write_text(_gmc_text([identity_warp()] * 3))
    source = MotSequenceSource(root)
    estimator = camera_motion(_config(tmp_path, "cmc=file"), source)
    assert isinstance(estimator, FileCameraMotion) and estimator.path == root / "gmc.txt"
    (tmp_path / "GMC-SEQ-01.txt").write_text(_gmc_text([identity_warp()] * 3))
    cfg = _config(tmp_path, "cmc=file", f"cmc.path='{tmp_path}/GMC-{{name}}.txt'")
    assert camera_motion(cfg, source).path == tmp_path / "GMC-SEQ-01.txt"
    assert isinstance(camera_motion(_config(tmp_path), source), NoCameraMotion)


def test_file_warps_follow_frame_numbers_and_reach_the_tracker(tmp_path, recorded_warps):
    """Frame f gets line f-1; with max_frames the run stops without shifting anything."""
    length = 8
    warps = [identity_warp()] + [_shift(k, -0.5 * k) for k in range(1, length)]
    rows = [f"{f},-1,{100 + 3 * f},50,30,60,0.9" for f in range(1, length + 1)]
    root = write_mot_folder(tmp_path / "HAND-01", rows, length=length, width=400, height=300)
    (root / "gmc.txt").write_text(_gmc_text(warps))
    track(_config(tmp_path, f"source={root}", "embedder=none", "cmc=file", "task.max_frames=5"))
    assert [frame for frame, _ in recorded_warps] == [1, 2, 3, 4, 5]
    for frame, warp in recorded_warps:
        np.testing.assert_allclose(warp, warps[frame - 1], atol=1e-6)


def test_cmc_none_passes_no_warp(tmp_path, recorded_warps):
    root = write_mot_folder(tmp_path / "HAND-01", ["1,-1,1,1,5,5,0.9"], length=2)
    track(_config(tmp_path, f"source={root}", "embedder=none"))
    assert [warp for _, warp in recorded_warps] == [None, None]


def test_an_unreadable_frame_keeps_the_file_aligned(tmp_path, recorded_warps):
    """Frame 3's image is broken and skipped: frame 4 gets the motion 2 -> 4 (lines 2 and 3)."""
    length = 5
    root = write_mot_folder(
        tmp_path / "IMG-01",
        [f"{f},-1,20,20,20,30,0.9" for f in range(1, length + 1)],
        length=length,
        name="IMG-01",
        width=80,
        height=60,
    )
    (root / "img1").mkdir()
    for frame in range(1, length + 1):
        path = root / "img1" / f"{frame:06d}.jpg"
        if frame == 3:
            path.write_bytes(b"not a jpeg")
        else:
            cv2.imwrite(str(path), np.full((60, 80, 3), 40 * frame, np.uint8))
    warps = [identity_warp()] + [_shift(k) for k in range(1, length)]
    (root / "gmc.txt").write_text(_gmc_text(warps))
    # the histogram embedder needs pixels: the frames are decoded and frame 3 is skipped
    track(
        _config(
            tmp_path,
            f"source={root}",
            "embedder=histogram",
            "cmc=file",
            "task.video=false",
            "task.evaluate=false",
        )
    )
    assert len(recorded_warps) == 4
    np.testing.assert_allclose(recorded_warps[0][1], identity_warp())
    np.testing.assert_allclose(recorded_warps[1][1], warps[1], atol=1e-6)
    np.testing.assert_allclose(recorded_warps[2][1], compose_warps(warps[3], warps[2]), atol=1e-6)
    np.testing.assert_allclose(recorded_warps[3][1], warps[4], atol=1e-6)


def test_image_methods_on_a_sequence_without_images_are_one_line_errors(tmp_path):
    root = write_mot_folder(tmp_path / "HAND-01", ["1,-1,1,1,5,5,0.9"], length=2)
    with pytest.raises(ReidsortError, match=r"HAND-01 .* has no images, but cmc=sparse_flow"):
        track(_config(tmp_path, f"source={root}", "embedder=none", "cmc=sparse_flow"))
    with pytest.raises(FileNotFoundError, match=r"HAND-01/gmc.txt not found"):
        track(_config(tmp_path, f"source={root}", "embedder=none", "cmc=file"))
    assert not list((tmp_path / "run").rglob("HAND-01.txt"))


def test_synthetic_sequence_with_sparse_flow_decodes_even_with_cached_detections(tmp_path, caplog):
    """The built-in sequence (static camera) tracked with cmc=sparse_flow twice: the second run
    takes the detections from the cache and must still decode frames for the estimator."""
    overrides = [
        *synthetic_overrides(tmp_path / "data"),
        "embedder=none",
        "task.compare_without_embedder=false",
        "task.video=false",
    ]
    plain = track(compose_config(["task=track", *overrides], tmp_path / "plain"))
    runs = []
    for run in ("first", "cached"):
        with caplog.at_level("WARNING"):
            runs.append(
                track(compose_config(["task=track", *overrides, "cmc=sparse_flow"], tmp_path / run))
            )
        timing = (tmp_path / run / "TINY" / "timing.txt").read_text()
        cmc_line = next(line for line in timing.splitlines() if line.startswith("cmc"))
        assert float(cmc_line.split()[1]) > 0
    assert not [r for r in caplog.records if "could not estimate" in r.getMessage()]
    assert runs[0]["track/frames"] == runs[1]["track/frames"] == plain["track/frames"] == 24
    # a still camera: compensation must not hurt (its estimates are ~identity)
    for metrics in runs:
        assert metrics["mot/HOTA"] == pytest.approx(plain["mot/HOTA"], abs=0.02)
    assert runs[0]["mot/HOTA"] == runs[1]["mot/HOTA"]


def test_mot17_sequence_with_its_gmc_file(shared_data, tmp_path):
    sequence = shared_data / "mot" / "MOT17-trainhalf" / "MOT17-05"
    common = [
        f"source={sequence}",
        "embedder=none",
        "task.video=false",
        "task.max_frames=60",
        "task.evaluation.split=full",
    ]
    plain = track(_config(tmp_path / "none", *common))
    compensated = track(_config(tmp_path / "file", *common, "cmc=file"))
    assert compensated["track/frames"] == plain["track/frames"] == 60
    for metrics in (plain, compensated):
        assert 0.05 < metrics["mot/HOTA"] < 1.0  # the uncut rest of the sequence: misses
    # the camera walks forward in MOT17-05: the warps change the tracks
    assert compensated["mot/HOTA"] != plain["mot/HOTA"]
