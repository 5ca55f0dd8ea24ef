"""Camera-motion compensation: the estimators (images and GMC files), the warp of DeepSORT's
xyah state and covariance against explicit 8x8 algebra, and the tracker's ``warp=`` argument."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reidsort.tracking import DeepSortTracker, KalmanFilterXYAH
from reidsort.tracking.cmc import (
    CameraMotionMethod,
    EccCameraMotion,
    FileCameraMotion,
    NoCameraMotion,
    OrbCameraMotion,
    SparseFlowCameraMotion,
    background_mask,
    build_camera_motion,
    compose_warps,
    identity_warp,
    read_gmc_file,
)
from reidsort.tracking.kalman_filter import blocks_to_covariance, covariance_to_blocks, warp_xyah

MOT17_ROTATION_DEGREES = 1.616  # largest frame-to-frame rotation in MOT17-trainhalf gmc.txt


# -- helpers -------------------------------------------------------------------------------------
def similarity(
    scale: float = 1.0, degrees: float = 0.0, tx: float = 0.0, ty: float = 0.0, centre=(0.0, 0.0)
) -> np.ndarray:
    """``[A | t]`` rotating by ``degrees`` and scaling about ``centre``, then translating."""
    theta = np.radians(degrees)
    linear = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.asarray(centre, dtype=np.float64)
    return np.column_stack([linear, centre - linear @ centre + [tx, ty]])


def explicit_warp(means: np.ndarray, covariances: np.ndarray, warp: np.ndarray):
    """The warp as an 8x8 linear map M of (x, y, a, h, vx, vy, va, vh): M m + t, M P M^T."""
    linear, translation = warp[:, :2], warp[:, 2]
    scale = np.sqrt(abs(np.linalg.det(linear)))
    matrix = np.eye(8)
    matrix[0:2, 0:2] = linear
    matrix[4:6, 4:6] = linear
    matrix[3, 3] = matrix[7, 7] = scale
    new_means = means @ matrix.T
    new_means[:, 0:2] += translation
    return new_means, matrix @ covariances @ matrix.T


def kalman_states(count: int = 6, seed: int = 0):
    """Realistic states: initiated, predicted and corrected a few times (isotropic x/y)."""
    rng = np.random.default_rng(seed)
    kf = KalmanFilterXYAH()
    start = np.column_stack(
        [rng.uniform(0, 600, (count, 2)), rng.uniform(0.3, 0.6, count), rng.uniform(40, 300, count)]
    )
    means, blocks = kf.initiate(start)
    for step in range(4):
        means, blocks = kf.predict(means, blocks)
        measured = start + step * np.array([3.0, -2.0, 0.0, 0.5]) + rng.normal(0, 1, start.shape)
        measured[:, 2] = start[:, 2]
        means, blocks = kf.update(means, blocks, measured)
    means[:, 4:8] += rng.normal(0, 2, (count, 4)) * [1, 1, 0.001, 0.2]  # some velocity
    return means, blocks


def textured(height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """A smooth random grey texture (trackable corners everywhere), BGR uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 2.0)
    grey = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def moved(image: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """``image`` as seen after the camera motion ``warp`` (pixel x -> warp x)."""
    import cv2

    height, width = image.shape[:2]
    return cv2.warpAffine(
        image, warp, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def with_person(image: np.ndarray, xyxy, seed: int) -> np.ndarray:
    """A box of its own texture pasted in (a foreground object moving on its own)."""
    out = image.copy()
    x1, y1, x2, y2 = xyxy
    out[y1:y2, x1:x2] = textured(y2 - y1, x2 - x1, seed)
    return out


# -- warping the xyah state ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "warp",
    [
        similarity(tx=12.5, ty=-7.0),
        similarity(scale=1.035, tx=-3.0, ty=2.0),
        similarity(scale=0.978, centre=(320, 240)),
    ],
)
def test_translation_and_scale_are_exact(warp):
    means, blocks = kalman_states()
    new_means, new_blocks = warp_xyah(means, blocks, warp)
    expected_means, expected_cov = explicit_warp(means, blocks_to_covariance(blocks), warp)
    np.testing.assert_allclose(new_means, expected_means, rtol=1e-13, atol=1e-9)
    np.testing.assert_allclose(
        blocks_to_covariance(new_blocks), expected_cov, rtol=1e-13, atol=1e-12
    )
    # the result still has the decoupled block form, and the inputs are untouched
    covariance_to_blocks(expected_cov)
    assert not np.shares_memory(new_means, means) and not np.shares_memory(new_blocks, blocks)


@pytest.mark.parametrize("degrees", [0.4, -MOT17_ROTATION_DEGREES, 5.0])
def test_rotation_of_the_filter_s_isotropic_covariance_is_exact(degrees):
    means, blocks = kalman_states(seed=1)
    # the DeepSORT filter never makes x and y variances differ
    np.testing.assert_array_equal(blocks[:, :, 0], blocks[:, :, 1])
    warp = similarity(1.01, degrees, 4.0, -2.0, centre=(320, 240))
    new_means, new_blocks = warp_xyah(means, blocks, warp)
    expected_means, expected_cov = explicit_warp(means, blocks_to_covariance(blocks), warp)
    np.testing.assert_allclose(new_means, expected_means, rtol=1e-13, atol=1e-9)
    np.testing.assert_allclose(
        blocks_to_covariance(new_blocks), expected_cov, rtol=1e-12, atol=1e-9
    )


def test_rotation_of_anisotropic_blocks_drops_only_the_bounded_off_diagonal():
    means, blocks = kalman_states(seed=2)
    blocks[:, :, 0] *= 3.0  # x variances differ from y: not this filter, but the general case
    theta = np.radians(MOT17_ROTATION_DEGREES)
    warp = similarity(1.0, MOT17_ROTATION_DEGREES, 5.0, 1.0)
    _, new_blocks = warp_xyah(means, blocks, warp)
    _, expected = explicit_warp(means, blocks_to_covariance(blocks), warp)
    got = blocks_to_covariance(new_blocks)
    diagonal = np.arange(8)
    np.testing.assert_allclose(
        got[:, diagonal, diagonal], expected[:, diagonal, diagonal], rtol=1e-12
    )
    gap = expected - got
    # the only dropped entries: x-y couplings within and across position/velocity
    dropped = np.cos(theta) * np.sin(theta) * (blocks[:, :, 0] - blocks[:, :, 1])  # (T, 3)
    for row, (i, j) in enumerate([(0, 1), (0, 5), (4, 5)]):
        np.testing.assert_allclose(gap[:, i, j], dropped[:, row], rtol=1e-9)
    relative = np.abs(dropped) / np.abs(blocks[:, :, 0] - blocks[:, :, 1])
    assert relative.max() <= 0.0282  # cos * sin of 1.6 degrees: the module docstring's 2.8%
    mask = np.ones((8, 8), dtype=bool)
    for i, j in [(0, 1), (0, 5), (4, 5), (1, 0), (5, 0), (5, 4), (1, 4), (4, 1)]:
        mask[i, j] = False
    np.testing.assert_allclose(gap[:, mask], 0.0, atol=1e-9)


@pytest.mark.parametrize("bad", [np.eye(3), np.eye(2), [[1, 0, np.nan], [0, 1, 0]]])
def test_bad_warps_are_one_line_errors(bad):
    means, blocks = kalman_states(2)
    with pytest.raises(ValueError, match=r"warp must be a finite \(2, 3\)"):
        warp_xyah(means, blocks, np.asarray(bad, dtype=float))


# -- the tracker's warp= ---------------------------------------------------------------------
def _panning_stream(frames: int = 8, pan: float = 25.0):
    """One person standing still in a world that the camera pans across: in the image the box
    moves ``pan`` px per frame to the left."""
    for k in range(frames):
        x = 400.0 - pan * k
        yield np.array([[x, 100.0, x + 40.0, 200.0, 0.9, 0.0]]), similarity(tx=-pan)


def test_warp_keeps_a_panned_track_that_breaks_without_it():
    plain, compensated = DeepSortTracker(), DeepSortTracker()
    plain_ids, compensated_ids = set(), set()
    for dets, warp in _panning_stream():
        plain_ids.update(plain.update(dets)[:, 4].tolist())
        out = compensated.update(dets, warp=warp)
        compensated_ids.update(out[:, 4].tolist())
        assert len(out) <= 1
    # 25 px on a 40 px box: IoU 0.23 < 0.3, every frame starts a new tentative track
    assert plain_ids == set() and plain.track_ids.max() == 8
    assert compensated_ids == {1.0} and compensated.track_ids.tolist() == [1]


def test_warp_none_and_identity_change_nothing():
    rng = np.random.default_rng(5)
    trackers = [DeepSortTracker(), DeepSortTracker(), DeepSortTracker()]
    for frame in range(30):
        base = np.array(
            [
                [100.0 + 3 * frame, 50, 140 + 3 * frame, 150, 0.9, 0],
                [300.0, 80 + 2 * frame, 350, 200 + 2 * frame, 0.8, 0],
            ]
        )
        dets = base + np.concatenate([rng.normal(0, 1.5, (2, 4)), np.zeros((2, 2))], axis=1)
        embeddings = rng.standard_normal((2, 8)).astype(np.float32)
        outs = [
            trackers[0].update(dets, embeddings),
            trackers[1].update(dets, embeddings, warp=None),
            trackers[2].update(dets, embeddings, warp=identity_warp()),
        ]
        np.testing.assert_array_equal(outs[0], outs[1])
        np.testing.assert_array_equal(outs[0], outs[2])


def test_warp_moves_every_predicted_track_before_association():
    tracker = DeepSortTracker(n_init=1)
    tracker.update(np.array([[10.0, 20, 50, 120, 0.9, 0], [200, 40, 260, 200, 0.9, 0]]))
    tracker.update(np.array([[14.0, 22, 54, 122, 0.9, 0], [205, 40, 265, 200, 0.9, 0]]))
    tracker.predict()
    predicted = tracker._tracks.means.copy(), tracker._tracks.covariances.copy()
    warp = similarity(1.02, 0.5, 30.0, -10.0, centre=(320, 240))
    tracker.update(np.zeros((0, 6)), warp=warp)  # nothing to match: the tracks keep the warp
    expected = warp_xyah(*predicted, warp)
    np.testing.assert_allclose(tracker._tracks.means, expected[0], rtol=1e-15)
    np.testing.assert_allclose(tracker._tracks.covariances, expected[1], rtol=1e-15)


def test_a_bad_warp_leaves_the_tracker_untouched():
    tracker = DeepSortTracker()
    tracker.update(np.array([[10.0, 20, 50, 120, 0.9, 0]]))
    before = tracker._tracks.means.copy(), tracker.frame_count
    with pytest.raises(ValueError, match="warp must be"):
        tracker.update(np.array([[10.0, 20, 50, 120, 0.9, 0]]), warp=np.eye(3))
    np.testing.assert_array_equal(tracker._tracks.means, before[0])
    assert tracker.frame_count == before[1]


@st.composite
def warped_streams(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(draw(st.integers(1, 10))):
        count = int(rng.integers(0, 6))
        tl = rng.uniform(-50, 600, (count, 2))
        wh = rng.uniform(1, 150, (count, 2))
        dets = np.column_stack([tl, tl + wh, rng.uniform(0, 1, count), np.zeros(count)])
        warp = similarity(
            draw(st.floats(0.8, 1.25)),
            draw(st.floats(-10, 10)),
            draw(st.floats(-80, 80)),
            draw(st.floats(-80, 80)),
            (320, 240),
        )
        frames.append((dets, warp))
    return frames


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(warped_streams())
def test_random_warps_keep_the_tracker_s_invariants(stream):
    tracker = DeepSortTracker(n_init=1, min_confidence=0.0)
    for dets, warp in stream:
        out = tracker.update(dets, warp=warp)
        assert np.isfinite(out[:, :5]).all()
        assert len(np.unique(out[:, 4])) == len(out)
        assert np.isfinite(tracker._tracks.means).all()
        assert (tracker._tracks.covariances[:, 0] > 0).all()  # variances stay positive


# -- image estimators ----------------------------------------------------------------------------
IMAGE_ESTIMATORS = [SparseFlowCameraMotion, OrbCameraMotion, EccCameraMotion]


@pytest.mark.parametrize("estimator_class", IMAGE_ESTIMATORS)
@pytest.mark.parametrize("downscale", [1, 2])
def test_image_estimators_recover_a_known_camera_motion(estimator_class, downscale):
    pytest.importorskip("cv2")
    background = textured(seed=1)
    # Euclidean ECC has no scale: give it a rotation + translation only
    scale = 1.0 if estimator_class is EccCameraMotion else 1.01
    warp = similarity(scale, 0.6, 5.0, -3.0, centre=(160, 120))
    person_before, person_after = (40, 60, 90, 200), (230, 50, 280, 190)  # moves on its own
    first = with_person(background, person_before, 7)
    second = with_person(moved(background, warp), person_after, 7)
    estimator = estimator_class(downscale=downscale)
    np.testing.assert_array_equal(
        estimator.estimate(first, 1, np.array([person_before])), identity_warp()
    )
    got = estimator.estimate(second, 2, np.array([person_after], dtype=float))
    assert estimator.failures == 0 and got.dtype == np.float64 and got.shape == (2, 3)
    np.testing.assert_allclose(got[:, :2], warp[:, :2], atol=2e-3)
    # where it matters, in the image: a point's predicted position within half a pixel
    points = np.array([[20.0, 20.0, 1], [300, 220, 1], [160, 120, 1]])
    np.testing.assert_allclose(points @ got.T, points @ warp.T, atol=0.5)


@pytest.mark.parametrize("estimator_class", IMAGE_ESTIMATORS)
def test_a_featureless_frame_gives_the_identity_and_is_counted_once(estimator_class, caplog):
    pytest.importorskip("cv2")
    estimator = estimator_class()
    flat = np.full((120, 160, 3), 128, np.uint8)
    for frame in range(1, 4):
        np.testing.assert_array_equal(estimator.estimate(flat, frame, None), identity_warp())
    assert estimator.failures == 2 and estimator.frames == 3  # the first frame is no failure
    with caplog.at_level("WARNING"):
        message = estimator.report("SEQ")
    assert message is not None and "2 of 3 frames" in message and "frames 2, 3" in message
    assert message.startswith(f"SEQ: cmc={estimator.method.value}")
    assert [r.getMessage() for r in caplog.records] == [message]
    estimator.reset()
    assert estimator.failures == 0 and estimator.report() is None
    # after reset the next frame is a first frame again
    np.testing.assert_array_equal(estimator.estimate(textured(), 1, None), identity_warp())
    assert estimator.failures == 0


@pytest.mark.parametrize("estimator_class", IMAGE_ESTIMATORS)
def test_boxes_cover_the_person_so_only_the_background_counts(estimator_class):
    """A person filling half of a still camera's view walks 45 px to the right: with the box
    masked, the estimate is the (zero) background motion; the feature methods without the
    mask follow the person instead."""
    pytest.importorskip("cv2")
    background = textured(360, 480, seed=4)
    boxes = np.array([(90, 30, 330, 345), (135, 30, 375, 345)])
    frames = [with_person(background, box, 9) for box in boxes]
    corners = np.array([[0.0, 0, 1], [480, 360, 1], [240, 180, 1]])

    def error(mask_boxes: bool) -> float:
        estimator = estimator_class(mask_boxes=mask_boxes)
        for frame, box in zip(frames, boxes):
            warp = estimator.estimate(frame, 1, box[None].astype(float))
        assert estimator.failures == 0
        return float(np.abs(corners @ warp.T - corners[:, :2]).max())

    assert error(True) < 0.3
    if estimator_class is not EccCameraMotion:  # ECC's correlation resists it on its own here
        assert error(False) > 20


def test_background_mask_hides_border_and_boxes():
    mask = background_mask(
        (100, 200), np.array([[20.0, 10, 41, 31, 0.9], [np.nan, 0, 1, 1, 1]]), scale_xy=(2.0, 2.0)
    )
    assert mask.dtype == np.uint8 and mask.shape == (100, 200)
    assert mask[0].max() == 0 and mask[:, -1].max() == 0 and mask[1, 10] == 0  # 2% border
    assert (mask[5:16, 10:21] == 0).all()  # box / 2, rounded outwards
    assert mask[16, 21] == 255 and mask[4, 9] == 255 and mask[50, 100] == 255
    assert (background_mask((10, 10), None, border_fraction=0.0) == 255).all()


def test_constructor_errors_are_one_line():
    with pytest.raises(ValueError, match="downscale must be an integer >= 1"):
        SparseFlowCameraMotion(downscale=0)
    with pytest.raises(ValueError, match="max_iterations"):
        EccCameraMotion(max_iterations=0)
    with pytest.raises(ValueError, match="ratio must be"):
        OrbCameraMotion(ratio=1.5)
    with pytest.raises(ValueError, match="cmc method must be one of none, ecc, sparse_flow"):
        build_camera_motion("lidar")
    with pytest.raises(ValueError, match="needs the frame|has none"):
        SparseFlowCameraMotion().estimate(None, 1, None)


def test_factory_and_none():
    assert isinstance(build_camera_motion(None), NoCameraMotion)
    estimator = build_camera_motion("sparse_flow", downscale=3)
    assert isinstance(estimator, SparseFlowCameraMotion) and estimator.downscale == 3
    none = build_camera_motion(CameraMotionMethod.NONE)
    assert none.is_identity and not none.needs_images
    np.testing.assert_array_equal(none.estimate(None, 7, None), np.eye(2, 3))


def test_the_module_imports_and_reads_files_without_opencv(tmp_path):
    path = tmp_path / "gmc.txt"
    path.write_text("0\t1 0 0 0 1 0\n1\t1 0 2.5 0 1 -1\n")
    code = (
        "import sys; sys.modules['cv2'] = None\n"
        "from reidsort.tracking.cmc import build_camera_motion\n"
        f"e = build_camera_motion('file', path={str(path)!r})\n"
        "e.estimate(None, 1); print(e.estimate(None, 2)[:, 2].tolist())\n"
        "assert 'cv2' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[2.5, -1.0]"


# -- GMC files -----------------------------------------------------------------------------------
def _gmc(tmp_path, warps: list[np.ndarray], name: str = "gmc.txt"):
    lines = [f"{k}\t" + "\t".join(f"{v:.6f}" for v in w.ravel()) for k, w in enumerate(warps)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_file_frames_are_looked_up_by_number_and_gaps_compose(tmp_path):
    warps = [identity_warp()] + [similarity(1.0 + 0.01 * k, 0.1 * k, k, -k) for k in range(1, 6)]
    estimator = FileCameraMotion(_gmc(tmp_path, warps))
    assert not estimator.needs_images and estimator.num_frames == 6
    np.testing.assert_array_equal(estimator.estimate(None, 2), identity_warp())  # run's first
    np.testing.assert_allclose(estimator.estimate(None, 3), warps[2], atol=1e-6)  # line 2
    # frames 4 and 5 skipped: 3 -> 6 is warp 6 after warp 5 after warp 4 (lines 3, 4, 5)
    expected = compose_warps(warps[5], compose_warps(warps[4], warps[3]))
    np.testing.assert_allclose(estimator.estimate(None, 6), expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"has camera motion for frames 1-6 .* frame 7"):
        estimator.estimate(None, 7)
    estimator.reset()
    np.testing.assert_array_equal(estimator.estimate(None, 5), identity_warp())


def test_compose_warps_is_applying_one_after_the_other():
    first, second = similarity(1.1, 3.0, 4.0, 5.0), similarity(0.9, -1.0, -2.0, 7.0)
    point = np.array([10.0, 20.0, 1.0])
    np.testing.assert_allclose(
        compose_warps(second, first) @ point, second @ np.append(first @ point, 1.0)
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("0\t1 0 0 0 1 0\n1\t1 0 0 0 1\n", r"line 2: 6 values instead of 7"),
        ("0\t1 0 0 0 1 0\n2\t1 0 0 0 1 0\n", r"line 2: it starts with 2, expected 1"),
        ("0\t1 0 0 0 1 x\n", r"line 1: a value is not a number"),
        ("0\t1 0 nan 0 1 0\n", r"line 1: a value is not finite"),
        ("\n\n", r"is empty"),
    ],
)
def test_malformed_files_are_one_line_errors_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad_gmc.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        read_gmc_file(path)
    assert "bad_gmc.txt" in str(error.value) and "\n" not in str(error.value)


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.txt not found"):
        FileCameraMotion(tmp_path / "nope.txt")


def test_reads_the_shared_mot17_gmc_file(shared_data):
    path = shared_data / "mot" / "MOT17-trainhalf" / "MOT17-05" / "gmc.txt"
    warps = read_gmc_file(path)
    assert warps.shape == (418, 2, 3)
    np.testing.assert_array_equal(warps[0], identity_warp())
    np.testing.assert_allclose(
        warps[1], [[1.004654, -0.003387, 2.570496], [0.003387, 1.004654, -2.006500]]
    )
    # every warp is a similarity, what warp_xyah handles exactly
    np.testing.assert_array_equal(warps[:, 0, 0], warps[:, 1, 1])
    np.testing.assert_array_equal(warps[:, 0, 1], -warps[:, 1, 0])
