"""AFLink: training pairs, the tiny CNN (torch vs NumPy vs ONNX), task=aflink through a real
Lightning Trainer, and ``postprocess=aflink`` on hand-made tracklets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config
from hydra.utils import instantiate

from reidsort.linking.data import (
    DIFFERENT,
    SAME,
    AFLinkDataModule,
    GroundTruthTrack,
    identity_negative,
    load_tracks,
    reference_pairs,
)
from reidsort.linking.export import check_exports, save_npz, torch_probabilities
from reidsort.linking.model import AFLinkNet
from reidsort.tracking.aflink import (
    AFLinkModelError,
    AFLinkNumpy,
    candidate_mask,
    fill_or_cut,
    link_tracklets,
    normalise_pair,
)
from reidsort.tracking.postprocess import Postprocessor

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = ["aflink.model.channels=[4,8]", "aflink.model.temporal_kernel=5"]


# ---------------------------------------------------------------- hand-made ground truth


def _walk(
    track_id: int,
    frames: range,
    x0: float,
    y0: float,
    vx: float = 3.0,
    cls: int = 1,
    consider: int = 1,
) -> list[list[float]]:
    return [
        [f, track_id, x0 + vx * (f - frames[0]), y0, 40, 100, consider, cls, 1.0] for f in frames
    ]


def _write_gt(folder: Path, rows: list[list[float]]) -> Path:
    (folder / "gt").mkdir(parents=True)
    np.savetxt(folder / "gt" / "gt.txt", np.array(rows), delimiter=",", fmt="%g")
    return folder


def _sequence(folder: Path, seed: int, people: int = 6) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(1, people + 1):
        start = int(rng.integers(1, 20))
        rows += _walk(
            person,
            range(start, start + int(rng.integers(40, 70))),
            float(rng.uniform(0, 600)),
            float(rng.uniform(0, 400)),
            float(rng.uniform(-4, 4)),
        )
    rows += _walk(90, range(1, 60), 10, 10, cls=7)  # a static person: not a pedestrian
    rows += _walk(91, range(1, 60), 10, 10, consider=0)  # ignored by the evaluation
    return _write_gt(folder, rows)


def test_load_tracks_keeps_considered_pedestrians_long_enough(tmp_path):
    rows = _walk(1, range(1, 41), 0, 0) + _walk(2, range(1, 20), 0, 0)  # 2: too short
    rows += _walk(3, range(1, 41), 0, 0, cls=7) + _walk(4, range(1, 41), 0, 0, consider=0)
    tracks = load_tracks(_write_gt(tmp_path / "seq", rows), min_length=30)
    assert [t.track_id for t in tracks] == [1]
    assert tracks[0].rows_fxy.shape == (40, 3)
    np.testing.assert_allclose(tracks[0].rows_fxy[:3], [[1, 0, 0], [2, 3, 0], [3, 6, 0]])


# ---------------------------------------------------------------- training pairs


def _track(n: int = 60) -> np.ndarray:
    frames = np.arange(1, n + 1, dtype=float)
    return np.column_stack([frames, 100 + 2 * frames, 50 + frames])


def test_validation_pairs_are_the_reference_cut_and_shifts():
    rows = _track(60)
    end, pairs = reference_pairs(rows, np.random.default_rng(0), train=False)
    assert end == 30 and [label for *_, label in pairs] == [SAME, DIFFERENT, DIFFERENT, DIFFERENT]
    (e, l, _), (l2, e2, _), (_, shifted_t, _), (_, shifted_s, _) = pairs
    np.testing.assert_array_equal(e[:, 0], np.arange(1, 31))
    np.testing.assert_array_equal(l[:, 0], np.arange(31, 61))
    np.testing.assert_array_equal(l2, l)  # the reversed pair
    np.testing.assert_array_equal(e2, e)
    np.testing.assert_array_equal(shifted_t[:, 0] - l[:, 0], 50)  # (-1) ** 30 = +1
    np.testing.assert_array_equal(shifted_t[:, 1:], l[:, 1:])
    np.testing.assert_array_equal(shifted_s[:, 1:] - l[:, 1:], 300)


def test_training_pairs_jitter_the_cut_and_shift_within_the_reference_ranges():
    rows = _track(80)
    rng = np.random.default_rng(1)
    for _ in range(200):
        _, pairs = reference_pairs(rows, rng, train=True)
        (e, l, _), _, (_, shifted_t, _), (_, shifted_s, _) = pairs
        assert len(e) >= 1 and len(l) >= 1
        # the later piece starts about 10 rows after the earlier one ends (N(5,3) - N(-5,3))
        assert -10 <= l[0, 0] - e[-1, 0] <= 30
        assert 30 <= abs(shifted_t[0, 0] - l[0, 0]) <= 100
        assert np.all(
            (np.abs(shifted_s[0, 1:] - l[0, 1:]) >= 100)
            & (np.abs(shifted_s[0, 1:] - l[0, 1:]) <= 500)
        )


def test_identity_negative_is_another_person_inside_the_gates():
    me = GroundTruthTrack("s", 1, _track(60))
    last = me.rows_fxy[29]
    near = GroundTruthTrack(
        "s",
        2,
        np.column_stack([np.arange(1, 101.0), np.full(100, last[1] + 40), np.full(100, last[2])]),
    )
    far = GroundTruthTrack(
        "s", 3, np.column_stack([np.arange(1, 101.0), np.full(100, 900.0), np.full(100, 900.0)])
    )
    late = GroundTruthTrack(
        "s", 4, np.column_stack([np.arange(61, 101.0), np.full(40, last[1]), np.full(40, last[2])])
    )
    rng = np.random.default_rng(0)
    for _ in range(50):
        earlier, later, label = identity_negative(me, 30, [me, near, far, late], rng)
        assert label == DIFFERENT
        np.testing.assert_array_equal(earlier, me.rows_fxy[:30])
        assert 0 <= later[0, 0] - earlier[-1, 0] < 30  # the inference gap window
        assert np.linalg.norm(later[0, 1:] - earlier[-1, 1:]) <= 75
        assert later[0, 1] == last[1] + 40  # always the near person
    assert identity_negative(me, 30, [me, far, late], rng) is None


def test_dataset_items_and_datamodule_split(tmp_path):
    train = [_sequence(tmp_path / "a", 0), _sequence(tmp_path / "b", 1)]
    dm = AFLinkDataModule(
        [str(p) for p in train],
        [str(_sequence(tmp_path / "c", 2))],
        batch_size=4,
        identity_negatives=True,
    )
    dm.setup("fit")
    assert dm.train_sequence_names == ["a", "b"] and dm.val_sequence_names == ["c"]
    assert len(dm.train_set) == 12 and len(dm.val_set) == 6  # the 7th and 8th id are left out
    former, latter, labels = next(iter(dm.train_dataloader()))
    assert former.shape[1:] == (1, 30, 3) and former.shape == latter.shape
    assert former.dtype == torch.float32 and float(former.abs().max()) <= 1.0 + 1e-6
    assert labels.tolist().count(SAME) == 4  # one positive per track
    assert 16 <= len(labels) <= 20  # 4 reference pairs + an identity negative where one exists
    first = dm.val_set[0]
    np.testing.assert_array_equal(first[0], dm.val_set[0][0])  # validation pairs are fixed
    with pytest.raises(ValueError, match="both in train_sequences and val_sequences"):
        AFLinkDataModule([str(train[0])], [str(train[0])]).setup()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        AFLinkDataModule([str(tmp_path / "nowhere")]).setup()


def test_normalisation_pads_with_zeros_and_scales_each_column_to_unit_range():
    former = np.array([[10.0, 100, 200], [11, 104, 202]])
    padded = fill_or_cut(former, 30, former=True)
    assert (padded[:28] == 0).all() and (padded[28:] == former).all()
    later = _track(40)[5:]
    assert (fill_or_cut(later, 30, former=False) == later[:30]).all()
    a, b = normalise_pair(former, later)
    assert a.shape == b.shape == (30, 3) and a.dtype == np.float32
    both = np.concatenate([a, b])
    np.testing.assert_allclose(both.min(axis=0), -1, atol=1e-4)  # the padding zeros
    np.testing.assert_allclose(both.max(axis=0), 1, atol=1e-4)


# ---------------------------------------------------------------- the network


def _random_net(channels=(8, 16), kernel=5, seed=0) -> AFLinkNet:
    torch.manual_seed(seed)
    net = AFLinkNet(list(channels), kernel)
    for module in net.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    with torch.no_grad():  # spread the near-constant output of a fresh network
        net.classifier.fc2.weight.mul_(50.0)
    return net.eval()


@pytest.mark.parametrize(("channels", "kernel"), [((8, 16), 5), ((32, 64, 128, 256), 7)])
def test_numpy_forward_equals_torch_forward(tmp_path, channels, kernel):
    net = _random_net(channels, kernel)
    path = save_npz(net, tmp_path / "m.npz")
    pairs = [
        normalise_pair(_track(50)[:20], _track(50)[25:]),
        normalise_pair(_track(12), _track(80)[40:]),
    ]
    former = np.stack([p[0] for p in pairs])[:, None]
    latter = np.stack([p[1] for p in pairs])[:, None]
    rng = np.random.default_rng(0)
    former = np.concatenate([former, rng.uniform(-1, 1, (30, 1, 30, 3)).astype(np.float32)])
    latter = np.concatenate([latter, rng.uniform(-1, 1, (30, 1, 30, 3)).astype(np.float32)])
    expected = torch_probabilities(net, torch.from_numpy(former), torch.from_numpy(latter))
    got = AFLinkNumpy(path)(former, latter)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert np.ptp(expected[:, 1]) > 1e-3  # the inputs matter: not a constant network


def test_export_check_fails_on_weights_of_another_network(tmp_path):
    stale = save_npz(_random_net(seed=1), tmp_path / "stale.npz")
    with pytest.raises(ValueError, match="NumPy export differs from torch"):
        check_exports(_random_net(seed=0), stale, None)


# ---------------------------------------------------------------- task=aflink


def test_task_trains_checkpoints_and_exports_with_a_tiny_config(tmp_path):
    from reidsort.tasks.aflink import aflink

    train = [_sequence(tmp_path / "data" / "a", 0), _sequence(tmp_path / "data" / "b", 1)]
    val = _sequence(tmp_path / "data" / "c", 2)
    cfg = compose_config(
        [
            "task=aflink",
            *TINY,
            f"aflink.data.train_sequences=[{train[0]},{train[1]}]",
            f"aflink.data.val_sequences=[{val}]",
            "aflink.data.batch_size=4",
            "task.max_epochs=2",
            "task.exporter=legacy",
            "~logger",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "run",
    )
    metrics = aflink(cfg)
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "aflink.onnx").is_file() and (run / "aflink.npz").is_file()
    for key in ("aflink/val_acc", "aflink/val_auc", "aflink/val_loss"):
        assert 0 <= metrics[key] < 10, key
    assert metrics["aflink/train_tracks"] == 12 and metrics["aflink/val_tracks"] == 6
    assert metrics["aflink/numpy_max_abs_diff"] < 1e-5
    assert metrics["aflink/onnx_max_abs_diff"] < 1e-5
    # the checkpoint holds the exported weights
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    with np.load(run / "aflink.npz") as npz:
        np.testing.assert_allclose(
            npz["classifier.fc2.bias"], state["net.classifier.fc2.bias"].numpy()
        )
    assert AFLinkNumpy(run / "aflink.npz").input_length == 30


# ---------------------------------------------------------------- linking tracker results


def _constant_model(path: Path, same: bool) -> Path:
    """A network whose p(same) is 0.993 (or 0.007) whatever the input: isolates the linking
    rules (gates, assignment, chains) from what a network learnt."""
    net = _random_net()
    with torch.no_grad():
        net.classifier.fc2.weight.zero_()
        net.classifier.fc2.bias.copy_(torch.tensor([0.0, 5.0] if same else [5.0, 0.0]))
    return save_npz(net, path)


def _rows(track_id: int, frames: range, x0: float, vx: float = 5.0, y: float = 200.0) -> np.ndarray:
    f = np.array(frames, dtype=float)
    return np.column_stack(
        [
            f,
            np.full_like(f, track_id),
            x0 + vx * (f - f[0]),
            np.full_like(f, y),
            np.full_like(f, 40),
            np.full_like(f, 100),
            np.full_like(f, 0.9),
        ]
    )


def _scene() -> np.ndarray:
    one = _rows(1, range(1, 41), 100)  # ends at frame 40, x = 295
    one_again = _rows(2, range(50, 91), 345)  # 10 frames later, 50 px on: the same walk
    far = _rows(3, range(50, 91), 1200)  # starts in the gap window, 900 px away
    overlapping = _rows(4, range(30, 71), 300, y=230)  # near, but starts before 1 ends
    return np.concatenate([one, one_again, far, overlapping])


def test_candidate_gates_gap_and_distance():
    first = np.array([0.0, 10, 40, 39, 9, 10])
    last = np.array([10.0, 20, 50, 45, 15, 30])
    xy_first = np.array([[0.0, 0], [75, 0], [0, 0], [0, 0], [0, 0], [75.1, 0]])
    xy_last = np.zeros((6, 2))
    mask = candidate_mask(first, last, xy_first, xy_last, 0, 30, 75)
    assert mask[0, 1]  # gap 0, distance 75: both bounds inclusive
    assert mask[0, 3] and not mask[0, 2]  # gap 29 in, gap 30 out
    assert not mask[0, 4]  # gap -1
    assert not mask[0, 5]  # 75.1 px
    assert not mask.diagonal().any()


def test_aflink_merges_the_fragments_of_one_walk_and_nothing_else(tmp_path):
    rows = _scene()
    post = Postprocessor("aflink", model_path=_constant_model(tmp_path / "same.npz", True))
    out = post(rows)
    assert len(out) == len(rows)  # ids change, no box added or removed
    ids = {int(i): out[out[:, 1] == i][:, 0] for i in np.unique(out[:, 1])}
    assert sorted(ids) == [1, 3, 4]
    np.testing.assert_array_equal(ids[1], np.r_[np.arange(1, 41), np.arange(50, 91)])
    assert [(a, b) for a, b, _ in post.last_links] == [(1.0, 2.0)]
    # boxes untouched
    np.testing.assert_array_equal(
        out[(out[:, 1] == 1) & (out[:, 0] >= 50)][:, 2:], rows[rows[:, 1] == 2][:, 2:]
    )


def test_aflink_follows_the_network(tmp_path):
    rows = _scene()
    post = Postprocessor("aflink", model_path=_constant_model(tmp_path / "diff.npz", False))
    out = post(rows)
    np.testing.assert_array_equal(np.sort(np.unique(out[:, 1])), [1, 2, 3, 4])


def test_aflink_chains_and_one_successor_per_tracklet(tmp_path):
    model = AFLinkNumpy(_constant_model(tmp_path / "same.npz", True))
    chain = np.concatenate(
        [_rows(7, range(1, 21), 0), _rows(5, range(25, 45), 120), _rows(9, range(44, 60), 220)]
    )  # 9 starts on 5's last frame (gap 0)
    out, result = link_tracklets(chain, model)
    assert np.unique(out[:, 1]).tolist() == [7]  # whole chain -> its first tracklet's id
    assert len(out) == len(chain) - 1  # frame 44 twice: the earlier tracklet's box is kept
    kept = out[out[:, 0] == 44]
    np.testing.assert_allclose(kept[:, 2], [120 + 5 * 19])
    # two tracklets start right after one ends: only one may continue it
    fork = np.concatenate(
        [
            _rows(1, range(1, 21), 0),
            _rows(2, range(25, 45), 120),
            _rows(3, range(25, 45), 130, y=210),
        ]
    )
    out, result = link_tracklets(fork, model)
    assert len(result.links) == 1 and len(np.unique(out[:, 1])) == 2
    frames_ids = out[:, :2]
    assert len(np.unique(frames_ids, axis=0)) == len(frames_ids)  # one box per id and frame


def test_aflink_gsi_links_then_fills_the_gap(tmp_path):
    rows = _scene()
    post = Postprocessor("aflink_gsi", model_path=_constant_model(tmp_path / "same.npz", True))
    out = post(rows)
    assert np.isin(np.arange(41, 50), out[out[:, 1] == 1][:, 0]).all()
    assert sorted(np.unique(out[:, 1]).tolist()) == [1, 3, 4]


def test_postprocess_aflink_config_builds_and_runs(tmp_path):
    model = _constant_model(tmp_path / "same.npz", True)
    cfg = compose_config(
        ["task=evaluate", "postprocess=aflink", f"postprocess.model_path={model}"], tmp_path / "run"
    )
    post = instantiate(cfg.postprocess)
    assert post.link_gates == {"min_gap": 0, "max_gap": 30, "max_distance": 75, "max_cost": 0.05}
    assert "aflink" in repr(post) and len(np.unique(post(_scene())[:, 1])) == 3


def test_bad_model_paths_give_one_line_errors_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match="model_path is required"):
        Postprocessor("aflink")
    with pytest.raises(ValueError, match="missing.npz: no such file"):
        Postprocessor("aflink", model_path=tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not a zip")
    with pytest.raises(AFLinkModelError, match="garbage.npz: not an AFLink .npz") as error:
        Postprocessor("aflink", model_path=garbage)(_scene())
    assert "\n" not in str(error.value)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(AFLinkModelError, match="other.npz"):
        AFLinkNumpy(other)


def test_tracking_side_stays_torch_free():
    code = (
        f"import sys; sys.path.insert(0, {str(SRC)!r})\n"
        "import reidsort.tracking.postprocess, reidsort.tracking.aflink\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'lightning', 'onnxruntime'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
