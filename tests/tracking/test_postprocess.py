"""Offline post-processing of result rows: linear gap interpolation and StrongSORT's GSI."""

from __future__ import annotations

import numpy as np
import pytest

from reidsort.tracking.postprocess import (
    Postprocessor,
    drop_short_tracks,
    gaussian_smooth,
    gp_length_scale,
    interpolate_linear,
)


def rows_of(track_id: int, frames, x0: float = 10.0, vx: float = 2.0) -> np.ndarray:
    frames = np.asarray(frames, dtype=float)
    return np.column_stack([frames, np.full(len(frames), track_id), x0 + vx * frames,
                            50.0 + 0.5 * frames, np.full(len(frames), 20.0),
                            np.full(len(frames), 40.0), np.linspace(0.5, 0.9, len(frames))])


def test_a_gap_is_filled_with_the_linear_blend_of_its_two_boxes():
    rows = rows_of(3, [1, 2, 5, 6])
    out = interpolate_linear(rows, max_gap=2)
    assert out[:, 0].tolist() == [1, 2, 3, 4, 5, 6] and set(out[:, 1]) == {3}
    np.testing.assert_allclose(out[2:4, 2], [10 + 2 * 3, 10 + 2 * 4])  # x on the line
    np.testing.assert_allclose(out[2:4, 3], [51.5, 52.0])
    before, after = rows[1, 6], rows[2, 6]
    np.testing.assert_allclose(out[2:4, 6], [before + (after - before) / 3,
                                             before + 2 * (after - before) / 3])


def test_only_gaps_of_at_most_max_gap_missing_frames_are_filled():
    rows = rows_of(1, [1, 4, 9])  # gaps of 2 and 4 missing frames
    assert interpolate_linear(rows, max_gap=1)[:, 0].tolist() == [1, 4, 9]
    assert interpolate_linear(rows, max_gap=2)[:, 0].tolist() == [1, 2, 3, 4, 9]
    assert interpolate_linear(rows, max_gap=4)[:, 0].tolist() == list(range(1, 10))
    # the references' interval 20 (next - prev < 20): 18 missing frames filled, 19 not
    assert len(interpolate_linear(rows_of(1, [1, 20]), max_gap=18)) == 20
    assert len(interpolate_linear(rows_of(1, [1, 21]), max_gap=18)) == 2


def test_interpolation_never_joins_two_tracks_and_keeps_every_input_row():
    rows = np.concatenate([rows_of(1, [1, 2]), rows_of(2, [4, 5]), rows_of(1, [7])])
    out = interpolate_linear(rows[::-1], max_gap=10)
    assert out[out[:, 1] == 1][:, 0].tolist() == list(range(1, 8))
    assert out[out[:, 1] == 2][:, 0].tolist() == [4, 5]
    for row in rows:  # originals untouched
        assert (np.abs(out - row).max(axis=1) < 1e-12).any()


def test_two_boxes_of_one_track_in_one_frame_are_an_error():
    rows = np.concatenate([rows_of(1, [1, 2]), rows_of(1, [2])])
    with pytest.raises(ValueError, match="track 1 has two boxes in frame 2"):
        interpolate_linear(rows)


def test_short_tracks_are_dropped_before_interpolation():
    rows = np.concatenate([rows_of(1, [1, 3]), rows_of(2, [1, 2, 3])])
    assert set(drop_short_tracks(rows, 3)[:, 1]) == {2}
    out = Postprocessor("linear", max_gap=5, min_length=3)(rows)
    assert set(out[:, 1]) == {2} and len(out) == 3
    assert len(Postprocessor("linear", max_gap=5, min_length=0)(rows)) == 6


def test_gsi_is_the_posterior_mean_of_scikit_learns_gaussian_process():
    """StrongSORT's GaussianSmooth, written with scikit-learn as the reference does."""
    gp = pytest.importorskip("sklearn.gaussian_process")
    kernels = pytest.importorskip("sklearn.gaussian_process.kernels")
    rng = np.random.default_rng(0)
    rows = np.concatenate([rows_of(1, np.arange(1, 60)), rows_of(2, np.arange(30, 45))])
    rows[:, 2:6] += rng.normal(0, 2.0, size=(len(rows), 4))
    ours = gaussian_smooth(rows, tau=10)
    for track_id in (1, 2):
        track = rows[rows[:, 1] == track_id]
        length = np.clip(10 * np.log(10**3 / len(track)), 1 / 10, 10**2)
        assert gp_length_scale(len(track), 10) == pytest.approx(length)
        regressor = gp.GaussianProcessRegressor(kernels.RBF(length, "fixed"))
        for column in range(2, 6):
            regressor.fit(track[:, :1], track[:, column])
            expected = regressor.predict(track[:, :1])
            # K + 1e-10 I has a condition number near 1e10: two float64 solves agree to
            # ~1e-6 relative; results are written with 2 decimals
            np.testing.assert_allclose(ours[ours[:, 1] == track_id][:, column], expected,
                                       rtol=0, atol=1e-3)


def test_gsi_fills_gaps_and_brings_noisy_boxes_closer_to_the_true_path():
    rng = np.random.default_rng(1)
    frames = np.r_[1:40, 45:80]
    truth = rows_of(7, np.arange(1, 80))
    noisy = rows_of(7, frames)
    noisy[:, 2:4] += rng.normal(0, 3.0, size=(len(noisy), 2))
    out = Postprocessor("gsi", max_gap=18)(noisy)
    assert out[:, 0].tolist() == list(range(1, 80)) and np.isfinite(out).all()
    noisy_error = np.abs(noisy[:, 2] - truth[frames - 1, 2]).mean()
    smoothed_error = np.abs(out[frames - 1, 2] - truth[frames - 1, 2]).mean()
    assert smoothed_error < 0.6 * noisy_error
    np.testing.assert_array_equal(out[frames - 1, 6], noisy[:, 6])  # scores kept


def test_none_returns_the_rows_and_bad_options_name_the_value():
    rows = rows_of(1, [1, 5])
    np.testing.assert_array_equal(Postprocessor("none")(rows), rows)
    assert Postprocessor("gsi")(np.zeros((0, 7))).shape == (0, 7)
    with pytest.raises(ValueError, match="postprocess.method='spline'"):
        Postprocessor("spline")
    with pytest.raises(ValueError, match="postprocess.max_gap=-1"):
        Postprocessor("linear", max_gap=-1)
