"""Tracker-only speed of reidsort's ByteTrack / OC-SORT / BoT-SORT next to BoxMOT's same trackers.

One worker process times both implementations on the same preloaded inputs: the detections of
every frame of the 7 MOT17-trainhalf sequences (2,657 frames, YOLOX-X boxes with the full score
range, ~37 boxes a frame) as (n, 6) arrays in memory, the same parameters as
``benchmarks/tracker_parity.py`` (imported from there). BoT-SORT runs twice: with the gmc.txt
camera warps (ours: ``update(..., warp=W)``; BoxMOT: its CMC estimator replaced by one that
returns the same warp, see ``tracker_parity.FileWarpCMC``), and without camera motion. BoxMOT gets a preallocated black image of the
sequence's size with every ``update`` (its API takes the frame; with CMC replaced only the
shape is read). What is timed is ``update`` alone, summed over frames; a fresh tracker per
sequence (construction not timed). Each repeat runs ours, then BoxMOT, on all sequences; the
best total of ``--repeats`` is kept for each.

The worker runs in the interpreter that has boxmot (``--boxmot-python``, default
``$REIDSORT_BOXMOT_PYTHON`` or ``../venv-boxmot/bin/python``: a venv with
``--system-site-packages`` that sees reidsort's editable install; boxmot is never installed into
the project's environment). Without it only our trackers are timed. As in
``benchmarks/tracker_speed.py``, each BLAS setting is a fresh process with the environment set
before NumPy is imported: BLAS pinned to one thread, and the library defaults.

Issue 17 adds the appearance trackers ``strongsort`` and ``deepocsort`` (ours:
``reidsort.tracking.strongsort.StrongSortTracker`` / ``reidsort.tracking.deepocsort.
DeepOcSortTracker`` with the ``conf/tracker/strongsort.yaml`` / ``deepocsort.yaml`` knobs; BoxMOT:
its ``StrongSort`` / ``DeepOcSort`` with the same values, mapped in :data:`APPEARANCE_MAPPING`),
both fed the same precomputed embeddings on two workloads:

* ``tud``: TUD-Campus + TUD-Stadtmitte (250 frames, static camera, no camera motion), every
  detection embedded beforehand with ``reidsort.embedders.histogram.HistogramEmbedder``
  (768-d, L2-normalised; crops as in ``benchmarks/tracker_speed.py --embeddings histogram``);
* ``mot17``: MOT17-trainhalf (no images there), a seeded random unit vector (512-d) for every
  detection row; without camera motion (cmc=none) and with the gmc.txt warps (cmc=file).

BoxMOT 25's ``update(dets: ndarray, img)`` has no embeddings argument (only its ``Detections``
input carries them); with an ndarray it asks its ReID backend, which it builds lazily on first
use unless ``reid_model=`` hands it one. BoxMOT is therefore constructed with
``reid_model=PrecomputedReID()``, a stub whose ``get_features(boxes, img)`` returns the
embeddings set for the frame before each ``update`` (rows aligned with all the frame's
detections, as BoxMOT asks before its confidence filter): no weights, no download, no network;
the stub counts its calls and the run fails unless it was asked once per non-empty frame.
BoxMOT's StrongSort always builds an ECC estimator and DeepOcSort a sparse-optical-flow one:
cmc=none sets StrongSort's ``cmc`` to None and DeepOcSort ``cmc_off=True``; cmc=file swaps in
``tracker_parity.FileWarpCMC`` (ours: ``update(dets, embs, warp=W)``).

    python benchmarks/tracker_family_speed.py
    python benchmarks/tracker_family_speed.py --trackers bytetrack --repeats 1 --max-frames 100
    python benchmarks/tracker_family_speed.py --trackers strongsort deepocsort --markdown /tmp/a.md
    python benchmarks/tracker_family_speed.py --markdown /tmp/speed.md --json /tmp/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
BLAS_THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
)
#: issue 16: each of ours at least this many times BoxMOT's frames per second
TARGET_SPEEDUP = 5.0
#: issue 17: trackers with appearance, timed with precomputed embeddings
APPEARANCE_TRACKERS = ("strongsort", "deepocsort")
HISTOGRAM_SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
RANDOM_EMBEDDING_DIM = 512
RANDOM_EMBEDDING_SEED = 0
#: (our knob from conf/tracker/<name>.yaml, BoxMOT 25 constructor kwarg or how it is fixed there)
APPEARANCE_MAPPING = {
    "strongsort": (
        ("max_dist", "max_cos_dist (bounds the MC cost there too: gate_cost_matrix)"),
        ("max_iou_distance", "max_iou_dist"),
        ("max_age", "max_age (BaseTracker)"),
        ("n_init", "n_init"),
        ("mc_lambda", "mc_lambda"),
        ("ema_alpha", "ema_alpha"),
        ("min_confidence", "min_conf (conf >= min_conf, as ours)"),
        ("nms_max_overlap", "no NMS (1.0 suppresses nothing here)"),
        ("nsa", "fixed: NSA always (kf.update(..., conf))"),
        ("cascade", "fixed: one assignment (its matching_cascade has no age loop)"),
        ("output_lost_frames", "fixed 0 (confirmed, time_since_update < 1)"),
        ("per_class", "per_class"),
        ("reentry_seconds", "none (off here)"),
        ("(EMA: one feature a track)", "nn_budget=1 (StrongSORT opts.py: EMA sets nn_budget 1)"),
    ),
    "deepocsort": (
        ("det_thresh", "det_thresh (conf > det_thresh, as ours)"),
        ("max_age", "max_age"),
        ("min_hits", "min_hits"),
        ("iou_threshold", "iou_threshold"),
        ("delta_t", "delta_t"),
        ("asso_func", "asso_func"),
        ("inertia", "inertia"),
        ("w_association_emb", "w_association_emb (its default 0.5)"),
        ("alpha_fixed_emb", "alpha_fixed_emb"),
        ("aw_param", "aw_param"),
        ("embedding_off", "use_embeddings = not embedding_off"),
        ("aw_off", "aw_off"),
        ("output", "fixed: last observation"),
        ("per_class", "per_class"),
        ("reentry_seconds", "none (off here)"),
    ),
}


def _parity():
    """benchmarks/tracker_parity.py: parameters, inputs, tracker factories (one source)."""
    sys.path.insert(0, str(BENCHMARKS))
    import tracker_parity

    return tracker_parity


def _time_sequences(make, sequences, impl: str, np) -> tuple[float, int]:
    """Seconds in ``update`` over all sequences, and rows output (a sanity count)."""
    total, rows = 0.0, 0
    for frames, info, warps in sequences:
        instance, file_cmc = make(info)
        if impl == "boxmot":
            image = np.zeros((info.height, info.width, 3), dtype=np.uint8)
            if file_cmc is not None:
                tick = time.perf_counter()
                for frame, dets in frames:
                    file_cmc.current = warps[frame - 1]
                    rows += len(instance.update(dets, image))
                total += time.perf_counter() - tick
            else:
                tick = time.perf_counter()
                for _, dets in frames:
                    rows += len(instance.update(dets, image))
                total += time.perf_counter() - tick
        elif warps is not None:
            tick = time.perf_counter()
            for frame, dets in frames:
                rows += len(instance.update(dets, None, warp=warps[frame - 1]))
            total += time.perf_counter() - tick
        else:
            tick = time.perf_counter()
            for _, dets in frames:
                rows += len(instance.update(dets))
            total += time.perf_counter() - tick
    return total, rows


# --------------------------------------------------------------------------------------------
# Issue 17: StrongSORT / Deep OC-SORT with precomputed embeddings
# --------------------------------------------------------------------------------------------
class PrecomputedReID:
    """BoxMOT ``reid_model`` stand-in: ``get_features`` returns the embeddings of this frame.

    BoxMOT calls ``get_features(boxes, img)`` once per non-empty frame, with every detection row
    of the frame; the driver sets ``current`` to that frame's precomputed (N, D) embeddings
    before each ``update``. No model is built or loaded.
    """

    def __init__(self):
        self.current = None
        self.calls = 0

    def get_features(self, boxes, img):
        self.calls += 1
        if self.current is None or len(self.current) != len(boxes):
            raise RuntimeError("PrecomputedReID: embeddings not aligned with the frame's boxes")
        return self.current


def ours_appearance_kwargs(tracker: str, frame_rate: float) -> dict:
    """Our constructor kwargs: conf/tracker/<tracker>.yaml without _target_ (frame_rate: the
    sequence's)."""
    import yaml

    with open(REPO_ROOT / "conf" / "tracker" / f"{tracker}.yaml", encoding="utf-8") as handle:
        knobs = yaml.safe_load(handle)
    knobs.pop("_target_", None)
    knobs["frame_rate"] = frame_rate
    return knobs


def boxmot_appearance_kwargs(tracker: str, ours: dict, cmc: str) -> dict:
    """BoxMOT 25 constructor kwargs for our knob values (see APPEARANCE_MAPPING)."""
    if ours.get("reentry_seconds"):
        raise ValueError("BoxMOT has no re-entry gallery: run with reentry_seconds off")
    if tracker == "strongsort":
        for key, value in (
            ("nms_max_overlap", 1.0),
            ("nsa", True),
            ("cascade", False),
            ("output_lost_frames", 0),
        ):
            if ours[key] != value:
                raise ValueError(f"BoxMOT's StrongSort has {key}={value} fixed, not {ours[key]}")
        return {
            "max_cos_dist": ours["max_dist"],
            "max_iou_dist": ours["max_iou_distance"],
            "max_age": ours["max_age"],
            "n_init": ours["n_init"],
            "mc_lambda": ours["mc_lambda"],
            "ema_alpha": ours["ema_alpha"],
            "min_conf": ours["min_confidence"],
            "nn_budget": 1,
            "per_class": ours["per_class"],
        }
    if tracker == "deepocsort":
        if ours["output"] != "observation":
            raise ValueError("BoxMOT's DeepOcSort reports the last observation")
        return {
            "det_thresh": ours["det_thresh"],
            "max_age": ours["max_age"],
            "min_hits": ours["min_hits"],
            "iou_threshold": ours["iou_threshold"],
            "delta_t": ours["delta_t"],
            "asso_func": ours["asso_func"],
            "inertia": ours["inertia"],
            "w_association_emb": ours["w_association_emb"],
            "alpha_fixed_emb": ours["alpha_fixed_emb"],
            "aw_param": ours["aw_param"],
            "use_embeddings": not ours["embedding_off"],
            "aw_off": ours["aw_off"],
            "cmc_off": cmc != "file",
            "per_class": ours["per_class"],
        }
    raise KeyError(tracker)


def make_ours_appearance(tracker: str, frame_rate: float):
    if tracker == "strongsort":
        from reidsort.tracking.strongsort import StrongSortTracker as cls
    else:
        from reidsort.tracking.deepocsort import DeepOcSortTracker as cls
    return cls(**ours_appearance_kwargs(tracker, frame_rate))


def make_boxmot_appearance(tracker: str, frame_rate: float, cmc: str, parity):
    """A BoxMOT tracker with the stub ReID backend; (instance, stub, FileWarpCMC or None)."""
    import boxmot

    cls = boxmot.StrongSort if tracker == "strongsort" else boxmot.DeepOcSort
    stub = PrecomputedReID()
    kwargs = boxmot_appearance_kwargs(tracker, ours_appearance_kwargs(tracker, frame_rate), cmc)
    instance = cls(reid_model=stub, **kwargs)
    file_cmc = None
    if cmc == "file":
        file_cmc = parity.FileWarpCMC()
        instance.cmc = file_cmc
    elif tracker == "strongsort":
        instance.cmc = None  # its constructor always builds an ECC estimator
    elif getattr(instance, "cmc", None) is not None:
        raise RuntimeError("BoxMOT DeepOcSort with cmc_off=True still has a CMC estimator")
    return instance, stub, file_cmc


def _histogram_sequences(args, np):
    """TUD: [(frames [(frame, dets, embs)], info, None)], embedded before any timing."""
    import cv2

    from reidsort.embedders.histogram import HistogramEmbedder
    from reidsort.tracking.mot_io import read_mot_detections, read_seqinfo

    embedder = HistogramEmbedder()
    sequences = []
    for name in HISTOGRAM_SEQUENCES:
        folder = args.data_root / "mot" / name
        info = read_seqinfo(folder / "seqinfo.ini")
        detections = read_mot_detections(folder / "det" / "det.txt")
        last = info.length if args.max_frames is None else min(args.max_frames, info.length)
        frames = []
        for frame, dets, _ in detections.iter_frames(last_frame=last):
            path = folder / info.image_dir / f"{frame:06d}{info.image_ext}"
            image = cv2.imread(str(path))
            if image is None:
                raise FileNotFoundError(f"cannot read {path}")
            embs = np.ascontiguousarray(embedder.embed(image, dets[:, :4]), dtype=np.float32)
            norms = np.linalg.norm(embs, axis=1) if len(embs) else np.ones(0)
            if np.any(norms < 1e-6):  # BoxMOT rejects zero-norm embeddings
                raise ValueError(f"{name} frame {frame}: a zero histogram embedding")
            frames.append((frame, dets, embs))
        sequences.append((frames, info, None))
    return sequences


def _random_embedding_sequences(sequences, np):
    """MOT17: the loaded [(frames [(frame, dets)], info, warps)] with a seeded random unit
    embedding for every detection row."""
    rng = np.random.default_rng(RANDOM_EMBEDDING_SEED)
    out = []
    for frames, info, warps in sequences:
        with_embs = []
        for frame, dets in frames:
            embs = rng.standard_normal((len(dets), RANDOM_EMBEDDING_DIM)).astype(np.float32)
            embs /= np.maximum(np.linalg.norm(embs, axis=1, keepdims=True), 1e-12)
            with_embs.append((frame, dets, embs))
        out.append((with_embs, info, warps))
    return out


def _time_appearance(tracker, sequences, impl, cmc, parity, np) -> tuple[float, int]:
    """Seconds in ``update`` over all sequences (embeddings precomputed), and rows output."""
    total, rows = 0.0, 0
    for frames, info, warps in sequences:
        use_warps = cmc == "file"
        if impl == "boxmot":
            instance, stub, file_cmc = make_boxmot_appearance(tracker, info.frame_rate, cmc, parity)
            image = np.zeros((info.height, info.width, 3), dtype=np.uint8)
            tick = time.perf_counter()
            for frame, dets, embs in frames:
                stub.current = embs
                if file_cmc is not None:
                    file_cmc.current = warps[frame - 1]
                rows += len(instance.update(dets, image))
            total += time.perf_counter() - tick
            expected = sum(1 for _, dets, _ in frames if len(dets))
            if stub.calls != expected:
                raise RuntimeError(f"BoxMOT asked the stub {stub.calls}x for {expected} frames")
        else:
            instance = make_ours_appearance(tracker, info.frame_rate)
            if use_warps:
                tick = time.perf_counter()
                for frame, dets, embs in frames:
                    rows += len(instance.update(dets, embs, warp=warps[frame - 1]))
                total += time.perf_counter() - tick
            else:
                tick = time.perf_counter()
                for _, dets, embs in frames:
                    rows += len(instance.update(dets, embs))
                total += time.perf_counter() - tick
    return total, rows


def appearance_worker(args, parity, mot17_sequences, have_boxmot, np) -> dict:
    """{name: entry} for the appearance trackers asked for."""
    trackers = [t for t in args.trackers if t in APPEARANCE_TRACKERS]
    if not trackers:
        return {}
    workloads = []
    if "tud" in args.appearance_datasets and "none" in args.appearance_cmc:
        # TUD: static camera, cmc=none only
        workloads.append(("TUD (histogram)", "none", _histogram_sequences(args, np)))
    if "mot17" in args.appearance_datasets:
        mot17 = _random_embedding_sequences(mot17_sequences, np)
        workloads += [("MOT17 (random)", c, mot17) for c in ("none", "file")]
    workloads = [w for w in workloads if w[1] in args.appearance_cmc]
    entries = {}
    for tracker in trackers:
        for workload, cmc, seqs in workloads:
            entry = {
                "tracker": tracker,
                "workload": workload,
                "cmc": cmc,
                "frames": sum(len(f) for f, _, _ in seqs),
                "detections": sum(len(d) for f, _, _ in seqs for _, d, _ in f),
                "dim": next((int(e.shape[1]) for f, _, _ in seqs for _, _, e in f if len(e)), None),
            }
            for _ in range(args.repeats):
                for impl, present in (("ours", True), ("boxmot", have_boxmot)):
                    if not present:
                        continue
                    seconds, rows = _time_appearance(tracker, seqs, impl, cmc, parity, np)
                    best = entry.get(f"{impl}_s")
                    entry[f"{impl}_s"] = seconds if best is None else min(best, seconds)
                    entry[f"{impl}_rows"] = rows
            name = f"{tracker}, {workload}, cmc={cmc}"
            entries[name] = entry
            print(f"  {name}: {json.dumps(entry)}", file=sys.stderr, flush=True)
    return entries


def worker(args) -> dict:
    import numpy as np

    parity = _parity()
    parity._src_path()
    have_boxmot = True
    try:
        import boxmot  # noqa: F401
    except ImportError:
        have_boxmot = False
    if have_boxmot:
        parity._quiet_boxmot()
    dataset = parity.DATASETS["mot17"]
    sequences = []
    for name in dataset.sequences:
        seq = parity.load_sequence(args.data_root, dataset, name)
        frames = seq.frames[: args.max_frames] if args.max_frames else seq.frames
        sequences.append((frames, seq.info, seq.warps))
    report = {"frames": sum(len(s[0]) for s in sequences), "trackers": {}}
    # BoT-SORT with the gmc.txt warps (its MOT17 setting) and without camera motion (the
    # tracker core alone: BoxMOT's own warp of the track states is costly)
    runs = [
        (tracker, cmc)
        for tracker in args.trackers
        if tracker not in APPEARANCE_TRACKERS
        for cmc in (("file", "none") if tracker == "botsort" else ("none",))
    ]
    for tracker, cmc in runs:
        seqs = [(f, i, w if cmc == "file" else None) for f, i, w in sequences]
        entry = {"tracker": tracker, "cmc": cmc}
        ours_cls = parity.load_ours(tracker)

        def make_ours(info, tracker=tracker):
            return parity.make_ours(tracker, round(info.frame_rate)), None

        def make_boxmot(info, tracker=tracker, cmc=cmc):
            return parity.make_boxmot(tracker, round(info.frame_rate), cmc)

        for repeat in range(args.repeats):
            for impl, make, present in (
                ("ours", make_ours, ours_cls is not None),
                ("boxmot", make_boxmot, have_boxmot),
            ):
                if not present:
                    continue
                seconds, rows = _time_sequences(make, seqs, impl, np)
                best = entry.get(f"{impl}_s")
                entry[f"{impl}_s"] = seconds if best is None else min(best, seconds)
                entry[f"{impl}_rows"] = rows
        name = f"{tracker} (cmc={cmc})" if tracker == "botsort" else tracker
        report["trackers"][name] = entry
        print(f"  {name}: {json.dumps(entry)}", file=sys.stderr, flush=True)
    report["appearance"] = appearance_worker(args, parity, sequences, have_boxmot, np)
    return report


def _spawn(python: str, blas: str, args) -> dict:
    env = dict(os.environ)
    if blas == "pinned":
        env.update({name: "1" for name in BLAS_THREAD_VARIABLES})
    else:
        for name in BLAS_THREAD_VARIABLES:
            env.pop(name, None)
    command = [
        python,
        __file__,
        "--worker",
        "--data-root",
        str(args.data_root),
        "--repeats",
        str(args.repeats),
        "--trackers",
        *args.trackers,
    ]
    if args.max_frames:
        command += ["--max-frames", str(args.max_frames)]
    command += ["--appearance-cmc", *args.appearance_cmc]
    command += ["--appearance-datasets", *args.appearance_datasets]
    print(f"[BLAS {blas}] {python} ...", file=sys.stderr, flush=True)
    completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(completed.stdout)


def _machine(python: str) -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    code = (
        "import importlib.metadata as m\n"
        "for p in ('numpy', 'scipy', 'boxmot', 'lapx'):\n"
        "    try: print(p, m.version(p))\n"
        "    except Exception: print(p, 'absent')\n"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    versions = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        **versions,
        "load_average_at_start": list(os.getloadavg()),
    }


def markdown(results: dict) -> str:
    m = results["machine"]
    family = any(report["trackers"] for report in results["speed"].values())
    lines = [
        (
            f"`python benchmarks/tracker_family_speed.py` (repeats {results['repeats']}), "
            f"{results['date']}. Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
            f"NumPy {m.get('numpy')}, SciPy {m.get('scipy')}, BoxMOT {m.get('boxmot')} "
            f"(lapx {m.get('lapx')}); load average at start "
            f"{', '.join(f'{x:.1f}' for x in m['load_average_at_start'])}."
        ),
    ]
    if family:
        lines.append(
            "Tracker-only frames per second (update alone, inputs preloaded), MOT17-trainhalf "
            "all 7 sequences, parity parameters; BoT-SORT with the gmc.txt warps on both sides "
            "(cmc=file) and without camera motion (cmc=none)."
        )
    lines.append("")
    for blas, report in results["speed"].items():
        if not family:
            break
        lines += [
            f"#### BLAS {blas}",
            "",
            "| tracker | frames | ours fps | BoxMOT fps | speed-up | >= 5x | rows ours / BoxMOT |",
            "|---|---:|---:|---:|---:|:---:|---:|",
        ]
        frames = report["frames"]
        for tracker, e in report["trackers"].items():
            ours = frames / e["ours_s"] if "ours_s" in e else None
            theirs = frames / e["boxmot_s"] if "boxmot_s" in e else None
            speedup = ours / theirs if ours and theirs else None
            lines.append(
                f"| {tracker} | {frames} | {f'{ours:.0f}' if ours else 'n/a'} | "
                f"{f'{theirs:.0f}' if theirs else 'n/a'} | "
                f"{f'{speedup:.1f}x' if speedup else 'n/a'} | "
                f"{'n/a' if speedup is None else ('yes' if speedup >= TARGET_SPEEDUP else 'NO')}"
                f" | {e.get('ours_rows', 'n/a')} / {e.get('boxmot_rows', 'n/a')} |"
            )
        lines.append("")
    if any(report.get("appearance") for report in results["speed"].values()):
        lines += appearance_markdown(results)
    return "\n".join(lines)


def _fps(value: float | None) -> str:
    if not value:
        return "n/a"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def appearance_markdown(results: dict) -> list[str]:
    """Issue 17 tables: StrongSORT / Deep OC-SORT with the same precomputed embeddings."""
    lines = [
        (
            "StrongSORT and Deep OC-SORT, tracker-only frames per second with the same "
            "precomputed embeddings on both sides (BoxMOT gets them through a stub ReID backend, "
            "no model loaded): TUD-Campus + TUD-Stadtmitte with 768-d colour-histogram "
            "embeddings of every detection (HistogramEmbedder), no camera motion; "
            f"MOT17-trainhalf (7 sequences) with {RANDOM_EMBEDDING_DIM}-d seeded random unit "
            "embeddings, without camera motion and with the gmc.txt warps. Ours at the "
            "conf/tracker/strongsort.yaml / deepocsort.yaml defaults, BoxMOT at the same values."
        ),
        "",
    ]
    for blas, report in results["speed"].items():
        entries = report.get("appearance") or {}
        if not entries:
            continue
        lines += [
            f"#### BLAS {blas} (StrongSORT / Deep OC-SORT)",
            "",
            (
                "| tracker | workload | cmc | frames | dets | ours fps | BoxMOT fps | speed-up "
                "| >= 5x | rows ours / BoxMOT |"
            ),
            "|---|---|---|---:|---:|---:|---:|---:|:---:|---:|",
        ]
        for e in entries.values():
            frames = e["frames"]
            ours = frames / e["ours_s"] if e.get("ours_s") else None
            theirs = frames / e["boxmot_s"] if e.get("boxmot_s") else None
            speedup = ours / theirs if ours and theirs else None
            lines.append(
                f"| {e['tracker']} | {e['workload']} | {e['cmc']} | {frames} | {e['detections']} "
                f"| {_fps(ours)} | {_fps(theirs)} "
                f"| {f'{speedup:.1f}x' if speedup else 'n/a'} | "
                f"{'n/a' if speedup is None else ('yes' if speedup >= TARGET_SPEEDUP else 'NO')}"
                f" | {e.get('ours_rows', 'n/a')} / {e.get('boxmot_rows', 'n/a')} |"
            )
        lines.append("")
    return lines


def appearance_mapping_table() -> str:
    """Markdown: our knob (conf/tracker/<name>.yaml value) and BoxMOT 25's side."""
    lines = ["| tracker | ours (yaml value) | BoxMOT 25 |", "|---|---|---|"]
    for tracker, pairs in APPEARANCE_MAPPING.items():
        knobs = ours_appearance_kwargs(tracker, 30.0)
        for ours, theirs in pairs:
            value = f" = {knobs[ours]}" if ours in knobs else ""
            lines.append(f"| {tracker} | {ours}{value} | {theirs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parity = _parity()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=parity.DEFAULT_DATA_ROOT)
    parser.add_argument(
        "--trackers",
        nargs="+",
        choices=(*parity.TRACKERS, *APPEARANCE_TRACKERS),
        # the appearance trackers are opt-in: BoxMOT's take ~30 min per BLAS setting on 2 cores
        default=list(parity.TRACKERS),
        help="default: the motion trackers; add strongsort deepocsort (with embeddings)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of this many (each side)")
    parser.add_argument("--max-frames", type=int, default=None, help="cap each sequence")
    parser.add_argument("--blas", choices=("pinned", "default", "both"), default="both")
    parser.add_argument(
        "--appearance-cmc",
        nargs="+",
        choices=("none", "file"),
        default=["none", "file"],
        help="strongsort/deepocsort camera-motion runs (file: MOT17 only; BoxMOT's is slow)",
    )
    parser.add_argument(
        "--appearance-datasets",
        nargs="+",
        choices=("tud", "mot17"),
        default=["tud", "mot17"],
        help="strongsort/deepocsort workloads",
    )
    parser.add_argument("--mapping", action="store_true", help="print the issue-17 knob mapping")
    parser.add_argument("--boxmot-python", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.mapping:
        print(appearance_mapping_table())
        return 0

    python = parity.boxmot_interpreter(args.boxmot_python)
    if python is None:
        print(
            f"boxmot not found ({parity.DEFAULT_BOXMOT_PYTHON}): timing ours alone", file=sys.stderr
        )
        python = sys.executable
    results = {
        "machine": _machine(python),
        "repeats": args.repeats,
        "date": time.strftime("%Y-%m-%d"),
        "speed": {},
    }
    for blas in ("pinned", "default") if args.blas == "both" else (args.blas,):
        label = "pinned to 1 thread" if blas == "pinned" else "library default threads"
        results["speed"][label] = _spawn(python, blas, args)
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
