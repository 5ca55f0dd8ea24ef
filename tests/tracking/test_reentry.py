"""Re-entry gallery: a person who leaves (track deleted) and comes back gets the old id.

Hand-made streams: each person is a box that walks and one fixed unit embedding; a person is
absent for longer than the tracker's deletion delay, then comes back somewhere else (no motion
link), so only appearance can give the old id back.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reidsort.tracking.botsort import BotSortTracker
from reidsort.tracking.reentry import NO_CLAIM, ReentryGallery
from reidsort.tracking.tracker import DeepSortTracker, OutputColumn

ID = int(OutputColumn.TRACK_ID)
DIM = 16
FRAME_RATE = 10.0
MAX_AGE = 5  # DeepSORT: deleted on the 6th consecutive miss
TRACK_BUFFER = 15  # BoT-SORT at 10 fps: max_time_lost = int(10 / 30 * 15) = 5 frames


def unit(k: int, dim: int = DIM) -> np.ndarray:
    e = np.zeros(dim)
    e[k] = 1.0
    return e


def angle(degrees: float) -> np.ndarray:
    """A unit vector in the first two dimensions: cosine distances are 1 - cos(difference)."""
    e = np.zeros(DIM)
    e[0], e[1] = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return e


def box(x: float, y: float = 100.0, score: float = 0.9) -> list[float]:
    return [x, y, x + 40.0, y + 100.0, score, 0.0]


def deepsort(**kwargs) -> DeepSortTracker:
    kwargs = {"max_age": MAX_AGE, "min_confidence": 0.0, "frame_rate": FRAME_RATE, **kwargs}
    return DeepSortTracker(**kwargs)


def strongsort(**kwargs):
    from reidsort.tracking.strongsort import StrongSortTracker

    kwargs = {"max_age": MAX_AGE, "min_confidence": 0.0, "frame_rate": FRAME_RATE, **kwargs}
    return StrongSortTracker(**kwargs)


def deepocsort(**kwargs):
    from reidsort.tracking.deepocsort import DeepOcSortTracker

    kwargs = {"max_age": MAX_AGE, "frame_rate": FRAME_RATE, **kwargs}
    return DeepOcSortTracker(**kwargs)


def botsort(**kwargs) -> BotSortTracker:
    kwargs = {"track_buffer": TRACK_BUFFER, "frame_rate": FRAME_RATE, **kwargs}
    return BotSortTracker(**kwargs)


def run(tracker, frames):
    """frames: list of [(x, embedding), ...]; returns per frame {track id: x of its detection}."""
    out = []
    for people in frames:
        dets = np.array([box(x) for x, _ in people], dtype=float).reshape(-1, 6)
        embeddings = np.array([e for _, e in people], dtype=float).reshape(len(people), DIM)
        rows = tracker.update(dets, embeddings)
        out.append({int(r[ID]): float(dets[int(r[7]), 0]) for r in rows if r[7] >= 0})
    return out


def walk(x0: float, frames: int, embedding: np.ndarray, step: float = 3.0):
    return [[(x0 + step * t, embedding)] for t in range(frames)]


def leave_and_return(first=None, second=None, away: int = 12, seen: int = 10):
    """One person (``first``, default ``unit(0)``) seen ``seen`` frames at the left, gone
    ``away`` frames, then ``seen`` frames at the far right (``second``: the embedding of whoever
    comes in then, default the same person)."""
    first = unit(0) if first is None else first
    second = first if second is None else second
    return walk(20.0, seen, first) + [[] for _ in range(away)] + walk(500.0, seen, second)


def ids_at_end(out) -> set[int]:
    return set(out[-1])


# -- the gallery on its own --------------------------------------------------------------------
def test_gallery_claims_matching_feature_and_removes_it():
    gallery = ReentryGallery(max_frames=10, max_dist=0.1)
    gallery.remember([7, 9], np.stack([unit(0), unit(1)]), frame=5)
    assert sorted(gallery.ids.tolist()) == [7, 9]
    claimed = gallery.claim(np.stack([unit(1) + 0.05 * unit(2), unit(3)]), frame=8)
    assert claimed.tolist() == [9, NO_CLAIM]
    assert 9 not in gallery and 7 in gallery
    # claimed once: the same feature again gets nothing
    assert gallery.claim(unit(1)[None], frame=9).tolist() == [NO_CLAIM]


def test_gallery_one_assignment_not_first_come_first_served():
    # q1 is nearest to A but also close to B; q2 is close to A only. Greedy in row order gives
    # q1 -> A and leaves q2 without an id; the assignment gives q1 -> B and q2 -> A.
    gallery = ReentryGallery(max_frames=10, max_dist=0.1)
    gallery.remember([1, 2], np.stack([angle(0), angle(30)]), frame=1)
    distances = 1 - np.cos(np.radians([12 - 0, 30 - 12, 15, 45]))
    assert distances[0] < distances[1] < 0.1 and distances[2] < 0.1 < distances[3]
    assert gallery.claim(np.stack([angle(12), angle(-15)]), frame=2).tolist() == [2, 1]


def test_gallery_expiry_boundary_and_reset():
    gallery = ReentryGallery(max_frames=4, max_dist=0.1)
    gallery.remember([3], unit(0)[None], frame=10)
    assert gallery.claim(unit(5)[None], frame=14).tolist() == [NO_CLAIM]  # other person
    assert gallery.claim(unit(0)[None], frame=14).tolist() == [3]  # last frame of the window
    gallery.remember([4], unit(0)[None], frame=10)
    assert gallery.claim(unit(0)[None], frame=15).tolist() == [NO_CLAIM]  # expired
    assert len(gallery) == 0
    gallery.remember([5], unit(0)[None], frame=20)
    gallery.reset()
    assert len(gallery) == 0 and gallery.claim(unit(0)[None], frame=21).tolist() == [NO_CLAIM]


def test_gallery_refuses_live_ids_other_classes_and_unusable_features():
    gallery = ReentryGallery(max_frames=10, max_dist=0.1, class_aware=True)
    gallery.remember([1, 2, 3], np.stack([unit(0), unit(1), np.zeros(DIM)]), 1, class_ids=[0, 1, 0])
    assert sorted(gallery.ids.tolist()) == [1, 2]  # the zero feature is not remembered
    assert gallery.claim(unit(0)[None], 2, live_ids=[1], class_ids=[0]).tolist() == [NO_CLAIM]
    assert gallery.claim(unit(1)[None], 2, class_ids=[0]).tolist() == [NO_CLAIM]  # class 1 entry
    assert gallery.claim(np.full((1, DIM), np.nan), 2, class_ids=[0]).tolist() == [NO_CLAIM]
    assert gallery.claim(unit(1)[None], 2, class_ids=[1]).tolist() == [2]


def test_disabled_gallery_and_seconds_to_frames():
    off = ReentryGallery.from_seconds(None, 25.0)
    off.remember([1], unit(0)[None], 1)
    assert not off.enabled and len(off) == 0
    assert off.claim(unit(0)[None], 2).tolist() == [NO_CLAIM]
    assert ReentryGallery.from_seconds(2.0, 25.0).max_frames == 50
    assert ReentryGallery.from_seconds(1.5, 14.0).max_frames == 21
    assert ReentryGallery.from_seconds(0, 30.0).max_frames == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"reentry_seconds": -1.0}, {"reentry_max_dist": 2.5}, {"reentry_max_dist": float("nan")}],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="reentry"):
        deepsort(**kwargs)
    with pytest.raises(ValueError, match="reentry"):
        botsort(**kwargs)


def test_deepsort_frame_rate_knob():
    assert DeepSortTracker().frame_rate == DeepSortTracker(frame_rate=None).frame_rate == 30.0
    assert deepsort(reentry_seconds=1.5, frame_rate=14).reentry.max_frames == 21
    with pytest.raises(ValueError, match="frame_rate"):
        DeepSortTracker(frame_rate=0)


# -- DeepSORT ----------------------------------------------------------------------------------
def test_deepsort_person_returns_gets_old_id_only_with_gallery():
    frames = leave_and_return()
    off = run(deepsort(), frames)
    on = run(deepsort(reentry_seconds=2.0), frames)
    assert set(off[5]) == set(on[5]) == {1}
    assert ids_at_end(off) == {2}  # the reference behaviour: a new id
    assert ids_at_end(on) == {1}  # the gallery gives the old one back
    # confirmed (hence reported) from its third hit on, with the old id at once
    assert [sorted(f) for f in on[-10:]] == [[], []] + [[1]] * 8


def test_deepsort_different_person_gets_new_id():
    out = run(deepsort(reentry_seconds=2.0), leave_and_return(unit(0), unit(1)))
    assert ids_at_end(out) == {2}


def test_deepsort_gallery_expires_after_reentry_seconds():
    # Deleted on its 6th miss (frame 16); the newcomer is confirmed on frame 10 + away + 3.
    tracker = deepsort(reentry_seconds=1.0)  # 10 frames
    deleted_at = None
    for t, people in enumerate(leave_and_return(away=12), start=1):
        dets = np.array([box(x) for x, _ in people]).reshape(-1, 6)
        tracker.update(dets, np.array([e for _, e in people]).reshape(len(people), DIM))
        if 1 in tracker.last_deleted_track_ids:
            deleted_at = t
    assert deleted_at == 10 + MAX_AGE + 1
    confirmed_at = 10 + 12 + 3
    assert confirmed_at - deleted_at <= 10
    assert 1 in tracker.track_ids  # inside the window: claimed
    # away long enough that confirmation comes 11 frames after deletion: a new id
    late = leave_and_return(away=12 + (10 - (confirmed_at - deleted_at)) + 1)
    assert ids_at_end(run(deepsort(reentry_seconds=1.0), late)) == {2}
    assert ids_at_end(run(deepsort(reentry_seconds=1.1), late)) == {1}


def test_deepsort_two_returning_people_in_swapped_order():
    a, b = unit(0), unit(1)
    before = [[(20.0 + 3 * t, a), (300.0 + 3 * t, b)] for t in range(10)]
    # back on the other sides, in the other detection order
    after = [[(100.0 + 3 * t, b), (450.0 + 3 * t, a)] for t in range(10)]
    frames = before + [[] for _ in range(12)] + after
    out = run(deepsort(reentry_seconds=2.0), frames)
    assert set(out[5]) == {1, 2}
    id_of_a = next(i for i, x in out[5].items() if x < 200)
    id_of_b = 3 - id_of_a
    assert out[-1] == {id_of_b: 100.0 + 27, id_of_a: 450.0 + 27}
    assert ids_at_end(run(deepsort(), frames)) == {3, 4}


def test_deepsort_reset_clears_gallery():
    tracker = deepsort(reentry_seconds=2.0)
    run(tracker, leave_and_return()[:22])  # gone: in the gallery now
    assert len(tracker.reentry) == 1
    tracker.reset()
    assert len(tracker.reentry) == 0
    assert ids_at_end(run(tracker, walk(500.0, 5, unit(0)))) == {1}  # a fresh id 1, not a claim
    assert len(tracker.reentry) == 0


def test_deepsort_without_embeddings_never_claims():
    tracker = deepsort(reentry_seconds=2.0)
    for people in leave_and_return():
        tracker.update(np.array([box(x) for x, _ in people]).reshape(-1, 6), None)
    assert len(tracker.reentry) == 0 and tracker.track_ids.tolist() == [2]


def test_deepsort_per_class_gallery():
    tracker = deepsort(reentry_seconds=2.0, per_class=True)
    for t, people in enumerate(leave_and_return()):
        dets = np.array([box(x) for x, _ in people]).reshape(-1, 6)
        dets[:, 5] = 0.0 if t < 10 else 1.0  # comes back as another class
        tracker.update(dets, np.array([e for _, e in people]).reshape(len(people), DIM))
    assert tracker.track_ids.tolist() == [2]


def test_deepsort_gallery_off_is_bit_identical():
    rng = np.random.default_rng(3)
    frames = leave_and_return() + [
        [(float(x), unit(int(k))) for x, k in zip(rng.uniform(0, 600, 3), rng.integers(0, 4, 3))]
        for _ in range(15)
    ]
    trackers = [deepsort(), deepsort(reentry_seconds=0), deepsort(reentry_seconds=None)]
    outputs = []
    for tracker in trackers:
        rows = []
        for people in frames:
            dets = np.array([box(x) for x, _ in people]).reshape(-1, 6)
            emb = np.array([e for _, e in people]).reshape(len(people), DIM)
            rows.append(tracker.update(dets, emb))
        outputs.append(np.concatenate(rows))
    assert all(np.array_equal(outputs[0], o, equal_nan=True) for o in outputs[1:])


# -- BoT-SORT ----------------------------------------------------------------------------------
def test_botsort_person_returns_gets_old_id_only_with_gallery():
    frames = leave_and_return(away=10)
    off = run(botsort(), frames)
    on = run(botsort(reentry_seconds=2.0), frames)
    assert ids_at_end(off) == {2}
    assert ids_at_end(on) == {1}
    # with the gallery a newcomer is reported from its activation (2nd hit), already as 1
    assert [sorted(f) for f in on[-10:]] == [[]] + [[1]] * 9
    assert [sorted(f) for f in off[-10:]] == [[2]] * 10  # bs reports the birth frame too


def test_botsort_different_person_and_expiry():
    assert ids_at_end(run(botsort(reentry_seconds=2.0), leave_and_return(unit(0), unit(1)))) == {2}
    # lost after frame 10, removed (out of the lost list) 5 + 2 frames later; back 30 frames
    # later: outside a 1 s window, inside a 4 s one
    frames = leave_and_return(away=30)
    assert ids_at_end(run(botsort(reentry_seconds=1.0), frames)) == {2}
    assert ids_at_end(run(botsort(reentry_seconds=4.0), frames)) == {1}


def test_botsort_two_returning_people_in_swapped_order_and_reset():
    a, b = unit(0), unit(1)
    before = [[(20.0 + 3 * t, a), (300.0 + 3 * t, b)] for t in range(10)]
    after = [[(100.0 + 3 * t, b), (450.0 + 3 * t, a)] for t in range(10)]
    tracker = botsort(reentry_seconds=2.0)
    out = run(tracker, before + [[] for _ in range(12)] + after)
    assert set(out[5]) == {1, 2}
    id_of_a = next(i for i, x in out[5].items() if x < 200)
    assert out[-1] == {3 - id_of_a: 100.0 + 27, id_of_a: 450.0 + 27}
    tracker.reset()
    assert len(tracker.reentry) == 0 and tracker.track_ids.tolist() == []


# -- property: never two live tracks with one id, ids only come back through the gallery ----
@st.composite
def streams(draw):
    people = draw(st.integers(1, 4))
    length = draw(st.integers(5, 45))
    # each person: present or absent in stretches, jumping to a new place after each absence
    presence = [
        draw(st.lists(st.booleans(), min_size=length, max_size=length)) for _ in range(people)
    ]
    gap_fill = draw(st.integers(0, 12))
    places = draw(st.lists(st.floats(0, 560), min_size=people * 4, max_size=people * 4))
    shared = draw(st.booleans())  # two people with the same look: ambiguity for the gallery
    frames = []
    for t in range(length):
        row = []
        for p in range(people):
            if presence[p][t] or (t % (gap_fill + 1) == 0 and gap_fill > 8):
                stretch = sum(1 for s in range(1, t + 1) if presence[p][s] != presence[p][s - 1])
                x = places[(p * 4 + stretch) % len(places)] + 2.0 * t
                look = unit(0 if shared and p < 2 else p)
                row.append((x, look))
        frames.append(row)
    return frames


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=streams(),
       which=st.sampled_from(["deepsort", "botsort", "strongsort", "deepocsort"]))
def test_never_two_live_tracks_with_one_id(frames, which):
    make = {"deepsort": deepsort, "botsort": botsort, "strongsort": strongsort,
            "deepocsort": deepocsort}[which]
    extra = {"deepsort": {"n_init": 2}, "strongsort": {"n_init": 2}}.get(which, {})
    tracker = make(reentry_seconds=1.5, **extra)
    reference = make(**extra)
    ever_seen: set[int] = set()
    gone: set[int] = set()
    reference_seen: set[int] = set()
    for people in frames:
        dets = np.array([box(x) for x, _ in people], dtype=float).reshape(-1, 6)
        emb = np.array([e for _, e in people], dtype=float).reshape(len(people), DIM)
        claimable = set(tracker.reentry.ids.tolist())
        rows = tracker.update(dets, emb)
        reference.update(dets, emb)
        reference_live = set(reference.track_ids.tolist())
        # the reference (gallery off) never brings an id back: live ids are old-and-still-live
        # or brand new (larger than every id seen before)
        newcomers = reference_live - reference_seen
        assert not reference_seen or min(newcomers, default=10**9) > max(reference_seen)
        reference_seen |= reference_live
        live = tracker.track_ids.tolist()
        assert len(live) == len(set(live))
        reported = rows[:, ID].astype(int).tolist()
        assert len(reported) == len(set(reported))
        assert not set(tracker.reentry.ids.tolist()) & set(live)
        # an id that was gone comes back only by a claim from the gallery
        back = set(live) & gone
        assert back <= claimable
        gone = (gone | (ever_seen - set(live))) - set(live)
        ever_seen |= set(live)
        assert not np.isnan(rows[:, :5]).any()


# -- the synthetic renderer can script people who leave and come back -------------------------
def test_synthetic_walkers_return_after_a_gap():
    from reidsort.data.synthetic.mot import (
        RETURN_GAP_SECONDS_RANGE,
        SyntheticMotParams,
        plan_walkers,
    )

    plain = SyntheticMotParams(num_frames=400)
    scripted = SyntheticMotParams(num_frames=400, returning_people=3)
    assert SyntheticMotParams(num_frames=400, returning_people=0).key() == plain.key()
    assert scripted.key() != plain.key() and "returning_people" not in plain.as_dict()
    first, walkers = plan_walkers(plain), plan_walkers(scripted)
    assert len(walkers) == len(first) + 3
    for a, b in zip(first, walkers):  # first appearances unchanged
        assert a.identity == b.identity and np.array_equal(a.centre_x, b.centre_x)
    for back in walkers[len(first) :]:
        gone = next(w for w in first if w.identity == back.identity)
        gap = back.frames[0] - gone.frames[-1]
        assert gap >= RETURN_GAP_SECONDS_RANGE[0] * plain.frame_rate
        assert back.facing != gone.facing and back.appearance == gone.appearance


# -- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["deepsort", "botsort", "strongsort", "deepocsort"])
def test_yaml_gallery_off_by_default_and_source_frame_rate(name):
    from pathlib import Path
    from types import SimpleNamespace

    omegaconf = pytest.importorskip("omegaconf")
    from reidsort.tasks.track import build_tracker

    conf = Path(__file__).resolve().parents[2] / "conf" / "tracker" / f"{name}.yaml"
    cfg = omegaconf.OmegaConf.load(conf)
    assert cfg.reentry_seconds is None and cfg.frame_rate is None
    source = SimpleNamespace(info=SimpleNamespace(frame_rate=25.0))
    assert not build_tracker(cfg, source).reentry.enabled
    cfg.reentry_seconds = 2.0
    tracker = build_tracker(cfg, source)  # frame_rate null -> the source's 25 fps
    assert tracker.reentry.max_frames == 50 and tracker.reentry.max_dist == cfg.reentry_max_dist


# -- StrongSORT (EMA feature per track) ----------------------------------------------------------
def test_strongsort_person_returns_gets_old_id_only_with_gallery():
    frames = leave_and_return()
    assert ids_at_end(run(strongsort(), frames)) == {2}
    assert ids_at_end(run(strongsort(reentry_seconds=2.0), frames)) == {1}
    assert ids_at_end(run(strongsort(reentry_seconds=2.0), leave_and_return(unit(0), unit(1)))) \
        == {2}


def test_strongsort_two_returning_people_in_swapped_order_and_reset():
    a, b = unit(0), unit(1)
    before = [[(20.0 + 3 * t, a), (300.0 + 3 * t, b)] for t in range(10)]
    after = [[(100.0 + 3 * t, b), (450.0 + 3 * t, a)] for t in range(10)]
    tracker = strongsort(reentry_seconds=2.0)
    out = run(tracker, before + [[] for _ in range(12)] + after)
    id_of_a = next(i for i, x in out[5].items() if x < 200)
    assert out[-1] == {3 - id_of_a: 100.0 + 27, id_of_a: 450.0 + 27}
    tracker.reset()
    assert len(tracker.reentry) == 0


# -- Deep OC-SORT (first report = confirmation) ----------------------------------------------------
def test_deepocsort_person_returns_gets_old_id_only_with_gallery():
    frames = leave_and_return()
    assert ids_at_end(run(deepocsort(), frames)) == {2}
    tracker = deepocsort(reentry_seconds=2.0)
    out = run(tracker, frames)
    assert ids_at_end(out) == {1}
    assert all(set(f) <= {1} for f in out)  # never shown under a fresh id
    assert ids_at_end(run(deepocsort(reentry_seconds=2.0), leave_and_return(unit(0), unit(1)))) \
        == {2}
    tracker.reset()
    assert len(tracker.reentry) == 0
