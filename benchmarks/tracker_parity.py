"""Accuracy parity: reidsort's ByteTrack / OC-SORT / BoT-SORT next to BoxMOT's same-named trackers.

Both implementations get the same detections frame by frame (every frame, empty ones included),
the same parameters (the original papers' MOT17 settings, mapped knob by knob below) and no
appearance (BoxMOT: ``use_embeddings=False``; ours: ``embeddings=None``). Their outputs are
written as MOTChallenge result files and scored by the project's TrackEval wrapper
(:func:`reidsort.evaluation.mot.evaluate_mot`, ``benchmark="auto"``: MOT17 rules - pedestrians,
distractor classes removed - for MOT17-trainhalf, whose gt has a class column; MOT15 rules for
the TUD gt, which has none), exactly as ``python main.py task=evaluate`` would.

Datasets (``../shared/data/mot`` or ``$REIDSORT_SHARED_DATA/mot``):

* ``mot17``: MOT17-trainhalf, 7 sequences, YOLOX-X detections with the full score range;
* ``tud``: TUD-Campus + TUD-Stadtmitte (Faster R-CNN detections, static camera).

Camera motion for BoT-SORT:

* ``cmc=file`` (MOT17-trainhalf): both trackers get BoT-SORT's pre-computed warps
  (``<seq>/gmc.txt``; line k is the 2x3 affine from frame k to k+1, read by
  ``reidsort.tracking.cmc.read_gmc_file``). Ours takes it as ``update(..., warp=W)``. BoxMOT's
  BotSort estimates the warp itself from the image inside ``update``
  (``self.cmc.apply(img, dets)``); there are no images here, so its ``cmc`` attribute is
  replaced by :class:`FileWarpCMC`, whose ``apply`` returns the file's warp for the frame being
  processed. What BoxMOT then does with the warp (its own ``STrack.multi_gmc``) is untouched,
  except in the extra run ``boxmot:original_gmc``, where it is BoT-SORT's own state update
  (:func:`original_botsort_gmc`): that isolates the one place where the two differ.
* ``cmc=none`` (both datasets): no camera-motion compensation in either (BoxMOT
  ``use_cmc=False``, ours ``warp=None``): the parity setting for TUD's static camera.
* ``cmc=ecc`` (TUD, which has images): each side with its own ECC estimator on the real frames
  (BoxMOT's ``cmc_method="ecc"`` defaults; ours ``reidsort.tracking.cmc.EccCameraMotion`` at the
  ``conf/cmc/ecc.yaml`` defaults) - what a user of either library gets, not a parity setting.

Elsewhere BoxMOT gets a preallocated black image of the sequence's size (only its shape is read
when CMC is off or replaced). BoxMOT track ids start at 0; they are written +1 (MOTChallenge ids
are >= 1; an id offset changes no metric). Besides the scores, the tables count the BoxMOT
result rows that ours reproduces exactly ("same rows": frame, id and box).

BoxMOT runs in its own virtual environment (it must not be installed into the project's):
``--boxmot-python`` (default ``$REIDSORT_BOXMOT_PYTHON`` or ``../venv-boxmot/bin/python``). Our
trackers whose module is missing are skipped with a note; so is BoxMOT when its interpreter is.

    python benchmarks/tracker_parity.py                               # everything
    python benchmarks/tracker_parity.py --trackers bytetrack --datasets tud
    python benchmarks/tracker_parity.py --markdown /tmp/parity.md --json /tmp/parity.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = Path(
    os.environ.get("REIDSORT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)
DEFAULT_BOXMOT_PYTHON = Path(
    os.environ.get("REIDSORT_BOXMOT_PYTHON", REPO_ROOT.parent / "venv-boxmot" / "bin" / "python")
)
IMPLEMENTATIONS = ("ours", "boxmot")
#: our tracker classes (module, class) and BoxMOT's same-named class
TRACKERS = {
    "bytetrack": ("reidsort.tracking.bytetrack", "ByteTrackTracker", "ByteTrack"),
    "ocsort": ("reidsort.tracking.ocsort", "OcSortTracker", "OcSort"),
    "botsort": ("reidsort.tracking.botsort", "BotSortTracker", "BotSort"),
}
METRIC_COLUMNS = ("HOTA", "IDF1", "MOTA", "IDSW")
#: a gap larger than this (HOTA points, ours - BoxMOT) must be explained (issue 16)
HOTA_TOLERANCE = 0.5


@dataclass(frozen=True)
class Dataset:
    key: str
    title: str
    folder: str  # under <data-root>/mot
    sequences: tuple[str, ...]
    #: BoT-SORT camera-motion variants: file (gmc.txt), none, ecc (each side's own estimator
    #: on the images)
    botsort_cmc: tuple[str, ...]


DATASETS = {
    "mot17": Dataset(
        "mot17",
        "MOT17-trainhalf",
        "MOT17-trainhalf",
        tuple(f"MOT17-{n:02d}" for n in (2, 4, 5, 9, 10, 11, 13)),
        botsort_cmc=("file", "none"),
    ),
    "tud": Dataset("tud", "TUD", "", ("TUD-Campus", "TUD-Stadtmitte"), botsort_cmc=("none", "ecc")),
}

# --------------------------------------------------------------------------------------------
# Parameters: one set per tracker, the original papers' MOT17 settings, and how each knob is
# spelled on each side. frame_rate is the sequence's seqinfo.ini frameRate on both sides.
# --------------------------------------------------------------------------------------------
#: ifzhang/ByteTrack (tools/track.py defaults, BYTETracker): high/low split 0.6/0.1, births at
#: >= 0.6 + 0.1, first association 1 - IoU*score <= 0.8, second (low boxes) 1 - IoU <= 0.5,
#: unconfirmed 1 - IoU*score <= 0.7, lost tracks kept 30 frames at 30 fps.
BYTETRACK = {
    "track_thresh": 0.6,
    "low_thresh": 0.1,
    "new_track_thresh": 0.7,
    "match_thresh": 0.8,
    "second_match_thresh": 0.5,
    "unconfirmed_match_thresh": 0.7,
    "track_buffer": 30,
    "fuse_score": True,
    "duplicate_iou_distance": 0.15,
    "output_unconfirmed": False,
}
#: noahcao/OC_SORT (MOT17 ablation: det_thresh 0.6, iou 0.3, max_age 30, min_hits 3,
#: delta_t 3, inertia 0.2, IoU association, no BYTE stage).
OCSORT = {
    "det_thresh": 0.6,
    "low_thresh": 0.1,
    "iou_threshold": 0.3,
    "max_age": 30,
    "min_hits": 3,
    "delta_t": 3,
    "inertia": 0.2,
    "use_byte": False,
    "asso_func": "iou",
    # the box reported for a matched track: its last observation (the original's choice)
    "output": "observation",
}
#: NirAharon/BoT-SORT (tools/track.py MOT17: high 0.6, low 0.1, new 0.7, buffer 30, match 0.8,
#: proximity 0.5, appearance 0.25, score fusion in the first and unconfirmed associations
#: because MOT17 is not MOT20; no Re-ID).
BOTSORT = {
    "track_high_thresh": 0.6,
    "track_low_thresh": 0.1,
    "new_track_thresh": 0.7,
    "track_buffer": 30,
    "match_thresh": 0.8,
    "second_match_thresh": 0.5,
    "unconfirmed_match_thresh": 0.7,
    "proximity_thresh": 0.5,
    "appearance_thresh": 0.25,
    "fuse_score": True,
    "duplicate_iou_distance": 0.15,
    # BoxMOT reports activated tracks only (as ByteTrack does); BoT-SORT's own code reports
    # every tracked track, a new one on its first frame too (our default, output_unconfirmed
    # true). Parity runs use BoxMOT's rule; --botsort-output-unconfirmed adds ours at default.
    "output_unconfirmed": False,
}
PARAMS = {"bytetrack": BYTETRACK, "ocsort": OCSORT, "botsort": BOTSORT}


def _require_fixed(tracker: str, p: dict, **fixed) -> None:
    for key, value in fixed.items():
        if p[key] != value:
            raise ValueError(f"BoxMOT's {tracker} has {key}={value} fixed in code, not {p[key]}")


#: BoxMOT's side of parameters that are not constructor kwargs there
BOXMOT_FIXED = {
    ("bytetrack", "low_thresh"): "min_conf",
    ("bytetrack", "new_track_thresh"): "det_thresh (attribute set after __init__)",
    ("bytetrack", "second_match_thresh"): "fixed 0.5 in code",
    ("bytetrack", "unconfirmed_match_thresh"): "fixed 0.7 in code",
    ("bytetrack", "fuse_score"): "fixed (always fused in both stages)",
    ("bytetrack", "duplicate_iou_distance"): "fixed 0.15 (remove_duplicate_stracks)",
    ("bytetrack", "output_unconfirmed"): "fixed (is_activated tracks only)",
    ("ocsort", "low_thresh"): "min_conf",
    ("ocsort", "output"): "fixed (last observation; KF state before a track's first update)",
    ("botsort", "fuse_score"): "fuse_first_associate (unconfirmed stage: always fused)",
    ("botsort", "duplicate_iou_distance"): "fixed 0.15 (remove_duplicate_stracks)",
    ("botsort", "output_unconfirmed"): "fixed (is_activated tracks only)",
}


def boxmot_kwargs(tracker: str, p: dict, frame_rate: int, cmc: str) -> tuple[dict, dict]:
    """BoxMOT 25 constructor kwargs and attributes to set after construction for ``p``."""
    if tracker == "bytetrack":
        kwargs = {
            "track_thresh": p["track_thresh"],  # split: conf > track_thresh is "high"
            "min_conf": p["low_thresh"],  # low boxes: min_conf < conf < track_thresh
            "match_thresh": p["match_thresh"],
            "track_buffer": p["track_buffer"],
            "frame_rate": frame_rate,
        }
        # BoxMOT hard-codes these; check the parameter set still agrees with it
        _require_fixed(
            tracker,
            p,
            second_match_thresh=0.5,
            unconfirmed_match_thresh=0.7,
            fuse_score=True,
            duplicate_iou_distance=0.15,
            output_unconfirmed=False,
        )
        # BoxMOT sets det_thresh = track_thresh (births at >= 0.6); the original births at
        # >= track_thresh + 0.1. It has no kwarg for it: the attribute is set after __init__.
        return kwargs, {"det_thresh": p["new_track_thresh"]}
    if tracker == "ocsort":
        _require_fixed(tracker, p, output="observation")
        return {
            "det_thresh": p["det_thresh"],
            "min_conf": p["low_thresh"],
            "iou_threshold": p["iou_threshold"],
            "max_age": p["max_age"],
            "min_hits": p["min_hits"],
            "delta_t": p["delta_t"],
            "inertia": p["inertia"],
            "use_byte": p["use_byte"],
            "asso_func": p["asso_func"],
        }, {}
    if tracker == "botsort":
        _require_fixed(tracker, p, duplicate_iou_distance=0.15, output_unconfirmed=False)
        return {
            "track_high_thresh": p["track_high_thresh"],
            "track_low_thresh": p["track_low_thresh"],
            "new_track_thresh": p["new_track_thresh"],
            "track_buffer": p["track_buffer"],
            "match_thresh": p["match_thresh"],
            "second_match_thresh": p["second_match_thresh"],
            "unconfirmed_match_thresh": p["unconfirmed_match_thresh"],
            "proximity_thresh": p["proximity_thresh"],
            "appearance_thresh": p["appearance_thresh"],
            "fuse_first_associate": p["fuse_score"],  # BoxMOT's default False differs
            "use_embeddings": False,
            # with cmc=file the estimator is replaced by FileWarpCMC after construction
            "use_cmc": cmc == "file",
            "cmc_method": "ecc",
            "frame_rate": frame_rate,
        }, {}
    raise KeyError(tracker)


#: our constructor kwarg for each parameter (None: not a knob of ours; its value is checked
#: against our default instead). Filled from conf/tracker/<name>.yaml.
OURS_NAMES = {
    "bytetrack": {
        "track_thresh": "track_thresh",
        "low_thresh": "low_thresh",
        "new_track_thresh": "new_track_thresh",
        "match_thresh": "match_thresh",
        "second_match_thresh": "second_match_thresh",
        "unconfirmed_match_thresh": "unconfirmed_match_thresh",
        "track_buffer": "track_buffer",
        "fuse_score": "fuse_score",
        "duplicate_iou_distance": "duplicate_iou_distance",
        "output_unconfirmed": "output_unconfirmed",
    },
    "ocsort": {
        "det_thresh": "det_thresh",
        "low_thresh": "low_thresh",
        "iou_threshold": "iou_threshold",
        "max_age": "max_age",
        "min_hits": "min_hits",
        "delta_t": "delta_t",
        "inertia": "inertia",
        "use_byte": "use_byte",
        "asso_func": "asso_func",
        "output": "output",
    },
    "botsort": {
        "track_high_thresh": "track_high_thresh",
        "track_low_thresh": "track_low_thresh",
        "new_track_thresh": "new_track_thresh",
        "track_buffer": "track_buffer",
        "match_thresh": "match_thresh",
        "second_match_thresh": "second_match_thresh",
        "unconfirmed_match_thresh": "unconfirmed_match_thresh",
        "proximity_thresh": "proximity_thresh",
        "appearance_thresh": "appearance_thresh",
        "fuse_score": "fuse_score",
        "duplicate_iou_distance": "duplicate_iou_distance",
        "output_unconfirmed": "output_unconfirmed",
    },
}


def ours_kwargs(tracker: str, cls, p: dict, frame_rate: int) -> dict:
    """Our constructor kwargs for ``p``; every name is checked against the signature."""
    signature = inspect.signature(cls.__init__).parameters
    kwargs = {}
    for key, value in p.items():
        name = OURS_NAMES[tracker][key]
        if name is None:
            continue
        if name not in signature:
            raise TypeError(
                f"{cls.__name__} has no kwarg {name!r} (for {key}); it has "
                f"{', '.join(n for n in signature if n != 'self')}"
            )
        kwargs[name] = value
    if "frame_rate" in signature:
        kwargs["frame_rate"] = frame_rate
    return kwargs


def mapping_table() -> str:
    """Markdown: each parameter, its value, our kwarg and BoxMOT's."""
    lines = [
        "| tracker | parameter | value | ours (kwarg) | BoxMOT 25 |",
        "|---|---|---:|---|---|",
    ]
    for tracker, p in PARAMS.items():
        for key, value in p.items():
            theirs = BOXMOT_FIXED.get((tracker, key), key)
            lines.append(
                f"| {tracker} | {key} | {value} | {OURS_NAMES[tracker][key] or '(fixed)'} | "
                f"{theirs} |"
            )
    lines.append(
        "| all | frame_rate | seqinfo frameRate | frame_rate | frame_rate (OcSort: none) |"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def _src_path() -> None:
    if str(REPO_ROOT / "src") not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / "src"))


def sequence_root(data_root: Path, dataset: Dataset) -> Path:
    return data_root / "mot" / dataset.folder if dataset.folder else data_root / "mot"


def read_gmc(path: Path, num_frames: int):
    """BoT-SORT's GMC file -> (num_frames, 2, 3) warps; index f-1 is the warp into frame f
    (the file's line f-1; line 0, frame 1, is the identity). Read by reidsort's own reader."""
    from reidsort.tracking.cmc import read_gmc_file

    warps = read_gmc_file(path)
    if len(warps) < num_frames:
        raise ValueError(f"{path} has {len(warps)} lines for {num_frames} frames")
    return warps[:num_frames]


@dataclass(frozen=True)
class Sequence:
    frames: list  # [(frame, dets (n, 6) [x1, y1, x2, y2, score, cls])], every frame
    info: object  # reidsort.tracking.mot_io.SequenceInfo
    warps: object  # (num_frames, 2, 3) from gmc.txt, or None
    folder: Path

    def image(self, frame: int):
        import cv2

        path = self.folder / self.info.image_dir / f"{frame:06d}{self.info.image_ext}"
        image = cv2.imread(str(path))
        if image is None:
            raise FileNotFoundError(f"cannot read {path}")
        return image


def load_sequence(data_root: Path, dataset: Dataset, name: str) -> Sequence:
    _src_path()
    from reidsort.tracking.mot_io import read_mot_detections, read_seqinfo

    folder = sequence_root(data_root, dataset) / name
    info = read_seqinfo(folder / "seqinfo.ini")
    detections = read_mot_detections(folder / "det" / "det.txt")
    frames = [(frame, dets) for frame, dets, _ in detections.iter_frames(last_frame=info.length)]
    warps = read_gmc(folder / "gmc.txt", info.length) if "file" in dataset.botsort_cmc else None
    return Sequence(frames, info, warps, folder)


# --------------------------------------------------------------------------------------------
# Workers: run one implementation over a list of jobs, write result files
# --------------------------------------------------------------------------------------------
class FileWarpCMC:
    """Stand-in for BoxMOT's CMC estimator: ``apply`` returns the warp set for this frame.

    BoxMOT's BotSort calls ``self.cmc.apply(img, dets)`` once per frame, after the Kalman
    prediction, and moves every track with the returned 2x3 matrix; the driver sets
    ``current`` to the gmc.txt warp of the frame before each ``update``.
    """

    def __init__(self):
        import numpy as np

        self.current = np.eye(2, 3)
        self.calls = 0

    def apply(self, img, dets=None):
        self.calls += 1
        return self.current.copy()

    def reset(self) -> None:
        self.calls = 0


def _quiet_boxmot() -> None:
    """BoxMOT logs every constructor's settings at INFO (a stdlib logger): warnings only."""
    import logging

    from boxmot.utils import logger

    logger.setLevel(logging.WARNING)


def original_botsort_gmc(stracks, H=None) -> None:
    """BoT-SORT's own camera-motion update of a track state (its ``STrack.multi_gmc``, as
    formulas): ``R = H[:, :2]`` acts on each pair of the xywh state, (x, y), (w, h), (vx, vy),
    (vw, vh); the translation ``H[:, 2]`` moves (x, y); the covariance becomes ``R8 P R8^T``.
    BoxMOT 25 instead warps the box corners, takes their enclosing box and propagates the
    covariance through a numerical Jacobian. The ``boxmot:original_gmc`` run swaps this in to
    show whether this is the only difference between the two BoT-SORTs with camera motion."""
    import numpy as np

    if not stracks or H is None:
        return
    rotation = np.asarray(H, dtype=np.float64)[:, :2]
    r8 = np.kron(np.eye(4), rotation)
    for track in stracks:
        if track.mean is None:
            continue
        mean = r8 @ track.mean
        mean[:2] += np.asarray(H, dtype=np.float64)[:, 2]
        track.mean, track.covariance = mean, r8 @ track.covariance @ r8.T


@contextlib.contextmanager
def boxmot_patched(patch: str | None):
    """BoxMOT with ``patch`` applied for the duration (class-level, so restored after)."""
    if patch is None:
        yield
        return
    if patch != "original_gmc":
        raise ValueError(f"unknown BoxMOT patch {patch!r}")
    from boxmot.trackers.box.botsort.track import STrack

    saved = STrack.__dict__["multi_gmc"]
    STrack.multi_gmc = staticmethod(original_botsort_gmc)
    try:
        yield
    finally:
        STrack.multi_gmc = saved


def make_boxmot(tracker: str, frame_rate: int, cmc: str):
    import boxmot

    cls = getattr(boxmot, TRACKERS[tracker][2])
    kwargs, attributes = boxmot_kwargs(tracker, PARAMS[tracker], frame_rate, cmc)
    instance = cls(**kwargs)
    for name, value in attributes.items():
        if not hasattr(instance, name):
            raise AttributeError(f"BoxMOT {cls.__name__} has no attribute {name!r}")
        setattr(instance, name, value)
    file_cmc = None
    if tracker == "botsort" and cmc == "file":
        file_cmc = FileWarpCMC()
        instance.cmc = file_cmc
    return instance, file_cmc


def load_ours(tracker: str):
    """Our tracker class, or None when its module is not there (yet)."""
    _src_path()
    module_name, class_name, _ = TRACKERS[tracker]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, class_name)


def make_ours(tracker: str, frame_rate: int, overrides: dict | None = None):
    cls = load_ours(tracker)
    return cls(**ours_kwargs(tracker, cls, {**PARAMS[tracker], **(overrides or {})}, frame_rate))


def run_sequence(impl: str, tracker: str, cmc: str, seq: Sequence, job: dict | None = None):
    """Result rows (M, 7) [frame, id, x, y, w, h, score] and seconds in ``update`` (with
    cmc=ecc, BoxMOT's includes its ECC, ours does not: ours gets the warp from outside)."""
    import numpy as np

    from reidsort.tracking.mot_io import tracker_output_to_mot_rows

    job = job or {}
    frames, info, warps = seq.frames, seq.info, seq.warps
    use_warps = warps is not None and cmc == "file"
    chunks, seconds = [], 0.0
    if impl == "boxmot":
        instance, file_cmc = make_boxmot(tracker, round(info.frame_rate), cmc)
        blank = np.zeros((info.height, info.width, 3), dtype=np.uint8)
        with boxmot_patched(job.get("boxmot_patch")):
            for frame, dets in frames:
                if file_cmc is not None:
                    file_cmc.current = warps[frame - 1] if use_warps else np.eye(2, 3)
                image = seq.image(frame) if cmc == "ecc" else blank
                start = time.perf_counter()
                out = instance.update(dets, image)
                seconds += time.perf_counter() - start
                out = np.asarray(out, dtype=np.float64).reshape(-1, 8).copy()
                out[:, 4] += 1  # BoxMOT ids start at 0
                chunks.append(tracker_output_to_mot_rows(frame, out))
        if file_cmc is not None and file_cmc.calls != len(frames):
            raise RuntimeError(f"BoxMOT called cmc.apply {file_cmc.calls}x in {len(frames)} frames")
    else:
        instance = make_ours(tracker, round(info.frame_rate), job.get("overrides"))
        estimator = None
        if cmc == "ecc":
            from reidsort.tracking.cmc import EccCameraMotion

            estimator = EccCameraMotion()  # conf/cmc/ecc.yaml defaults
        for frame, dets in frames:
            warp = warps[frame - 1] if use_warps else None
            if estimator is not None:
                warp = estimator.estimate(seq.image(frame), frame, dets[:, :4])
            start = time.perf_counter()
            out = instance.update(dets, None, warp=warp)
            seconds += time.perf_counter() - start
            chunks.append(tracker_output_to_mot_rows(frame, out))
    rows = np.concatenate(chunks) if chunks else np.zeros((0, 7))
    return rows, seconds


def worker(args) -> dict:
    """Run ``args.impl`` over every job; returns {job key: {seq: seconds}}."""
    _src_path()
    from reidsort.tracking.mot_io import write_mot_results

    if args.impl == "boxmot":
        _quiet_boxmot()
    jobs = json.loads(args.jobs)
    report = {}
    cache = {}
    for job in jobs:
        dataset = DATASETS[job["dataset"]]
        timings = {}
        for seq in dataset.sequences:
            if (dataset.key, seq) not in cache:
                cache[(dataset.key, seq)] = load_sequence(args.data_root, dataset, seq)
            rows, seconds = run_sequence(
                args.impl, job["tracker"], job["cmc"], cache[(dataset.key, seq)], job
            )
            write_mot_results(Path(job["out"]) / f"{seq}.txt", rows)
            timings[seq] = seconds
        report[job["key"]] = timings
        print(
            f"  [{args.impl}] {job['key']}: {sum(timings.values()):.2f} s",
            file=sys.stderr,
            flush=True,
        )
    return report


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------
def boxmot_interpreter(requested: Path | None) -> str | None:
    """An interpreter that can import boxmot: this one, or the benchmark venv's."""
    try:
        importlib.import_module("boxmot")
        return sys.executable
    except ImportError:
        pass
    path = requested or DEFAULT_BOXMOT_PYTHON
    return str(path) if Path(path).is_file() else None


def boxmot_version(python: str) -> str:
    code = "import importlib.metadata as m; print(m.version('boxmot'))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


@dataclass(frozen=True)
class Variant:
    """A run next to the parity run of a tracker: a non-parity setting of ours, or BoxMOT
    patched; ``impls`` run it (a side that does not is n/a in the tables)."""

    label: str
    impls: tuple[str, ...]
    ours_overrides: dict | None = None
    boxmot_patch: str | None = None
    cmc: tuple[str, ...] = ("file", "none", "ecc")


VARIANTS = {
    "botsort": (
        # BoT-SORT's own output rule, our default: every tracked track, a new one on its first
        # frame too (BoxMOT has activated tracks only; no BoxMOT run)
        Variant("ours:output_unconfirmed", ("ours",), ours_overrides={"output_unconfirmed": True}),
        # BoxMOT with BoT-SORT's own camera-motion state update (see original_botsort_gmc)
        Variant(
            "boxmot:original_gmc", ("ours", "boxmot"), boxmot_patch="original_gmc", cmc=("file",)
        ),
    ),
}


def jobs_for(trackers, datasets, out_root: Path, impl: str) -> list[dict]:
    jobs = []
    for dataset in datasets:
        for tracker in trackers:
            cmcs = dataset.botsort_cmc if tracker == "botsort" else ("none",)
            for cmc in cmcs:
                key = f"{dataset.key}/{tracker}" + (f"/cmc={cmc}" if tracker == "botsort" else "")
                runs = [(key, None, None)]
                runs += [
                    (f"{key}/{v.label}", v.ours_overrides, v.boxmot_patch)
                    for v in VARIANTS.get(tracker, ())
                    if impl in v.impls and cmc in v.cmc
                ]
                for run_key, overrides, patch in runs:
                    folder = run_key.replace("/", "_").replace("=", "-").replace(":", "-")
                    jobs.append(
                        {
                            "key": run_key,
                            "dataset": dataset.key,
                            "tracker": tracker,
                            "cmc": cmc,
                            "overrides": overrides if impl == "ours" else None,
                            "boxmot_patch": patch if impl == "boxmot" else None,
                            "out": str(out_root / impl / folder),
                        }
                    )
    return jobs


def spawn_worker(python: str, impl: str, jobs: list[dict], data_root: Path) -> dict:
    command = [
        python,
        __file__,
        "--worker",
        impl,
        "--jobs",
        json.dumps(jobs),
        "--data-root",
        str(data_root),
    ]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(completed.stdout)


def evaluate(job: dict, data_root: Path):
    _src_path()
    from reidsort.evaluation.mot import evaluate_mot
    from reidsort.evaluation.mot_layout import ground_truth_files, sequence_lengths

    dataset = DATASETS[job["dataset"]]
    root = sequence_root(data_root, dataset)
    sequences = list(dataset.sequences)
    results = {seq: Path(job["out"]) / f"{seq}.txt" for seq in sequences}
    return evaluate_mot(
        results,
        ground_truth_files(root, sequences),
        sequence_lengths(root, sequences),
        benchmark="auto",
    )


#: two result rows are "the same" when frame and id agree and every box side is within this
#: (pixels; the files have 2 decimals and BoxMOT computes in float32)
SAME_BOX_TOLERANCE = 0.05


def compare_outputs(ours_dir: Path, boxmot_dir: Path, sequences) -> dict:
    """How many of BoxMOT's result rows ours reproduces (same frame, id and box)."""
    _src_path()
    import numpy as np

    from reidsort.tracking.mot_io import read_mot_results

    counts = {"ours_rows": 0, "boxmot_rows": 0, "same_rows": 0, "max_box_diff": 0.0}
    for seq in sequences:
        ours = read_mot_results(ours_dir / f"{seq}.txt")
        theirs = read_mot_results(boxmot_dir / f"{seq}.txt")
        counts["ours_rows"] += len(ours)
        counts["boxmot_rows"] += len(theirs)
        by_key = {
            (int(f), int(i)): box for f, i, box in zip(ours.frame_ids, ours.track_ids, ours.tlwh)
        }
        for f, i, box in zip(theirs.frame_ids, theirs.track_ids, theirs.tlwh):
            mine = by_key.get((int(f), int(i)))
            if mine is None:
                continue
            diff = float(np.abs(mine - box).max())
            counts["max_box_diff"] = max(counts["max_box_diff"], diff)
            counts["same_rows"] += diff <= SAME_BOX_TOLERANCE
    counts["same_rows"] = int(counts["same_rows"])
    return counts


def _cell(name: str, value) -> str:
    if value is None:
        return "n/a"
    return str(int(value)) if name == "IDSW" else f"{100 * value:.2f}"


def tables(scores: dict, keys: list[str], benchmarks: dict) -> str:
    """Markdown: per job, rows = sequences + combined, columns = metric x (ours, BoxMOT, gap)."""
    from reidsort.evaluation.mot_tables import COMBINED

    out = []
    header = (
        "| sequence | "
        + " | ".join(
            f"{m} ours | {m} BoxMOT" + (" | HOTA gap" if m == "HOTA" else "")
            for m in METRIC_COLUMNS
        )
        + " |"
    )
    rule = (
        "|---|"
        + "|".join("---:|---:" + ("|---:" if m == "HOTA" else "") for m in METRIC_COLUMNS)
        + "|"
    )
    for key in keys:
        per_impl = scores.get(key, {})
        if not per_impl:
            continue
        sequences = next(iter(per_impl.values())).keys()
        out += [f"#### {key}  ({benchmarks.get(key, '?')} evaluation rules)", "", header, rule]
        for seq in sequences:
            cells = []
            for metric in METRIC_COLUMNS:
                ours = per_impl.get("ours", {}).get(seq, {}).get(metric)
                theirs = per_impl.get("boxmot", {}).get(seq, {}).get(metric)
                cells += [_cell(metric, ours), _cell(metric, theirs)]
                if metric == "HOTA":
                    gap = (
                        f"{100 * (ours - theirs):+.2f}"
                        if ours is not None and theirs is not None
                        else "n/a"
                    )
                    cells.append(gap)
            name = f"**{seq}**" if seq == COMBINED else seq
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def summary_table(scores: dict, keys: list[str], same: dict) -> str:
    from reidsort.evaluation.mot_tables import COMBINED

    lines = [
        (
            "| run | HOTA ours | HOTA BoxMOT | gap | IDF1 ours | IDF1 BoxMOT | MOTA ours | "
            "MOTA BoxMOT | IDSW ours | IDSW BoxMOT | within 0.5 | same rows |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    for key in keys:
        per_impl = scores.get(key, {})
        ours = per_impl.get("ours", {}).get(COMBINED, {})
        theirs = per_impl.get("boxmot", {}).get(COMBINED, {})
        if not ours and not theirs:
            continue
        gap = verdict = "n/a"
        if ours and theirs:
            delta = 100 * (ours["HOTA"] - theirs["HOTA"])
            gap = f"{delta:+.2f}"
            verdict = "yes" if abs(delta) <= HOTA_TOLERANCE else ("better" if delta > 0 else "NO")
        cells = [
            _cell("HOTA", ours.get("HOTA")),
            _cell("HOTA", theirs.get("HOTA")),
            gap,
            _cell("IDF1", ours.get("IDF1")),
            _cell("IDF1", theirs.get("IDF1")),
            _cell("MOTA", ours.get("MOTA")),
            _cell("MOTA", theirs.get("MOTA")),
            _cell("IDSW", ours.get("IDSW")),
            _cell("IDSW", theirs.get("IDSW")),
            verdict,
        ]
        counts = same.get(key)
        cells.append(
            f"{counts['same_rows']:,} of {counts['boxmot_rows']:,} "
            f"({100 * counts['same_rows'] / max(counts['boxmot_rows'], 1):.2f}%)"
            if counts
            else "n/a"
        )
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_markdown(version, notes, scores, keys, same, benchmarks) -> str:
    return "\n".join(
        [
            (
                f"`python benchmarks/tracker_parity.py`, BoxMOT {version}, "
                f"{time.strftime('%Y-%m-%d')}. Scores in %, TrackEval through "
                "reidsort.evaluation.mot.evaluate_mot (benchmark=auto). Gap = HOTA ours - BoxMOT; "
                "a run marked `ours:<setting>` is ours at that non-parity setting, next to "
                "BoxMOT at parity."
            ),
            "",
            *(f"- {note}" for note in notes),
            "",
            "### Combined",
            "",
            summary_table(scores, keys, same),
            "",
            (
                "`same rows`: BoxMOT result rows that ours reproduces exactly (frame, id, and "
                f"every box side within {SAME_BOX_TOLERANCE} px)."
            ),
            "",
            "### Per sequence",
            "",
            tables(scores, keys, benchmarks),
            "### Parameters (both sides)",
            "",
            mapping_table(),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--trackers", nargs="+", choices=tuple(TRACKERS), default=list(TRACKERS))
    parser.add_argument("--datasets", nargs="+", choices=tuple(DATASETS), default=list(DATASETS))
    parser.add_argument(
        "--impls", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS)
    )
    parser.add_argument(
        "--boxmot-python",
        type=Path,
        default=None,
        help=f"interpreter with boxmot (default {DEFAULT_BOXMOT_PYTHON})",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="result files go here (default: a temporary folder)"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables here")
    parser.add_argument("--json", type=Path, default=None, help="write all numbers here")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        args.impl = args.worker
        print(json.dumps(worker(args)))
        return 0

    datasets = [DATASETS[key] for key in args.datasets]
    for dataset in datasets:
        root = sequence_root(args.data_root, dataset)
        if not all((root / seq / "det" / "det.txt").is_file() for seq in dataset.sequences):
            parser.error(f"{dataset.title} not found under {root} (set --data-root)")
    out_root = args.out or Path(tempfile.mkdtemp(prefix="tracker_parity_"))
    notes = []
    trackers = {"ours": [], "boxmot": []}
    if "ours" in args.impls:
        for tracker in args.trackers:
            if load_ours(tracker) is None:
                notes.append(f"ours/{tracker}: skipped ({TRACKERS[tracker][0]} not importable)")
            else:
                trackers["ours"].append(tracker)
    python = boxmot_interpreter(args.boxmot_python) if "boxmot" in args.impls else None
    version = boxmot_version(python) if python else "absent"
    if "boxmot" in args.impls:
        if python is None:
            notes.append(f"boxmot: skipped (no interpreter with boxmot; {DEFAULT_BOXMOT_PYTHON})")
        else:
            trackers["boxmot"] = list(args.trackers)

    all_keys = list(
        dict.fromkeys(
            job["key"]
            for impl in IMPLEMENTATIONS
            for job in jobs_for(args.trackers, datasets, out_root, impl)
        )
    )
    timings, scores, benchmarks = {}, {}, {}
    for impl in IMPLEMENTATIONS:
        if not trackers[impl]:
            continue
        jobs = jobs_for(trackers[impl], datasets, out_root, impl)
        print(f"[{impl}] {len(jobs)} runs -> {out_root / impl}", file=sys.stderr, flush=True)
        if impl == "ours":
            args.impl, args.jobs = "ours", json.dumps(jobs)
            timings[impl] = worker(args)
        else:
            timings[impl] = spawn_worker(python, impl, jobs, args.data_root)
        for job in jobs:
            evaluation = evaluate(job, args.data_root)
            scores.setdefault(job["key"], {})[impl] = {
                seq: {m: row.get(m) for m in METRIC_COLUMNS}
                for seq, row in evaluation.rows().items()
            }
            benchmarks[job["key"]] = "/".join(sorted(set(evaluation.benchmarks.values())))

    # row-level identity wherever both sides ran the same job
    ours_jobs = {j["key"]: j for j in jobs_for(trackers["ours"], datasets, out_root, "ours")}
    same = {
        job["key"]: compare_outputs(
            Path(ours_jobs[job["key"]]["out"]), Path(job["out"]), DATASETS[job["dataset"]].sequences
        )
        for job in jobs_for(trackers["boxmot"], datasets, out_root, "boxmot")
        if job["key"] in ours_jobs
    }
    markdown = report_markdown(version, notes, scores, all_keys, same, benchmarks)
    print(markdown)
    print(f"result files: {out_root}", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(markdown, encoding="utf-8")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "boxmot": version,
                    "scores": scores,
                    "timings": timings,
                    "benchmarks": benchmarks,
                    "notes": notes,
                    "same_rows": same,
                    "params": PARAMS,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
