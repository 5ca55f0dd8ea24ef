"""``task=prepare``: a Re-ID dataset (Market-1501 layout) and FairMOT labels from MOTChallenge
sequences with ground truth (see :mod:`reidsort.data.prepare`)."""

from __future__ import annotations

from omegaconf import DictConfig

from reidsort.data.prepare import PrepareOptions, prepare_reid_from_mot
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import to_plain


def prepare(cfg: DictConfig) -> dict[str, float]:
    task = cfg.task
    sequences = to_plain(task.sequences)
    if isinstance(sequences, str):
        sequences = [sequences]
    if not sequences:
        raise ReidsortError("task.sequences is empty: give MOTChallenge sequence folders, e.g. "
                            "task.sequences=[/data/MOT17/train/MOT17-02-FRCNN]")
    options = PrepareOptions(
        frame_step=int(task.frame_step), min_visibility=float(task.min_visibility),
        min_height=int(task.min_height), min_width=int(task.min_width),
        min_inside=float(task.min_inside), classes=tuple(int(c) for c in task.classes),
        test_identities=float(task.test_identities),
        queries_per_half=int(task.queries_per_half), min_images=int(task.min_images),
        seed=int(task.seed), jpeg_quality=int(task.jpeg_quality),
    )
    meta = prepare_reid_from_mot(sequences, task.out, options,
                                 fairmot_labels=bool(task.fairmot_labels),
                                 overwrite=bool(task.overwrite), threads=int(task.threads))
    print(f"Re-ID dataset (Market-1501 layout) written to {task.out}", flush=True)
    for seq in meta["sequences"]:
        print(f"  camera {seq['camera']} (late test half: {seq['late_half_camera']})  "
              f"{seq['name']}", flush=True)
    metrics: dict[str, float] = {}
    for split, counts in meta["counts"].items():
        print(f"  {split:<20} {counts['images']:>6} images {counts['identities']:>4} identities",
              flush=True)
        metrics[f"prepare/{split}_images"] = float(counts["images"])
        metrics[f"prepare/{split}_identities"] = float(counts["identities"])
    for reason, count in meta["boxes_skipped"].items():
        print(f"  skipped: {reason:<28} {count:>6}", flush=True)
    if meta["fairmot"]:
        print(f"  FairMOT labels_with_ids: {meta['fairmot']['images']} frames, "
              f"{meta['fairmot']['boxes']} boxes", flush=True)
        metrics["prepare/fairmot_boxes"] = float(meta["fairmot"]["boxes"])
    train_ids = int(meta["counts"].get("bounding_box_train", {}).get("identities", 0))
    if train_ids < 100:
        # a few identities: keep them all for training, start from ImageNet features
        print(f"train on it: python main.py experiment=tud_mobilenet_v2 data.root={task.out}"
              f"  ({train_ids} training identities: all train, the query/gallery is scored "
              "once)", flush=True)
    else:
        print(f"train on it: python main.py data=market1501 data.root={task.out}", flush=True)
    return metrics
