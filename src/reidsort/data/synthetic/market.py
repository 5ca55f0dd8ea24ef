"""Write a synthetic Re-ID dataset in the Market-1501 layout, atomically and reproducibly.

Layout and naming follow Market-1501 (Zheng et al., ICCV 2015) so the ordinary Market-1501
reader loads it unchanged::

    root/bounding_box_train/0001_c3s1_004210_01.jpg   training identities
    root/query/0051_c1s1_000153_01.jpg                one image per test identity and camera
    root/bounding_box_test/0051_c4s1_020480_01.jpg    the other images of the test identities
    root/synthetic_meta.json                          generator version, parameters, counts

Every identity walks past a random subset of at least two cameras, so each query has true
matches in other cameras (the Market protocol ignores same-identity same-camera gallery images).
The whole dataset is rendered into a hidden sibling folder and renamed into place at the end: an
interrupted run leaves no half-written dataset behind.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reidsort.data.synthetic.person import Facing, PersonAppearance
from reidsort.data.synthetic.scene import CameraStyle, render_person_crop
from reidsort.utils.io import atomic_write_text

#: Bump whenever the rendered images change for the same parameters, so caches regenerate.
GENERATOR_VERSION = 1
GENERATOR_NAME = "reidsort.data.synthetic"
META_FILENAME = "synthetic_meta.json"
TRAIN_DIR = "bounding_box_train"
QUERY_DIR = "query"
GALLERY_DIR = "bounding_box_test"
SPLIT_DIRS = (TRAIN_DIR, QUERY_DIR, GALLERY_DIR)
#: Market-1501 names carry a single-digit camera id (``c1`` .. ``c6`` in the original).
MAX_CAMERAS = 9
MAX_IDENTITIES = 9999  # four-digit person ids
IMAGE_STREAM = 0x5EED_0003
TRACKLET_STREAM = 0x5EED_0004
#: Each identity passes 2..4 cameras unless told otherwise (Market-1501 identities are seen by
#: 2 to 6 of its 6 cameras).
DEFAULT_MAX_CAMERAS_PER_IDENTITY = 4
#: Frames between two crops of the same tracklet (Market-1501 samples detections sparsely).
FRAME_STEP_RANGE = (4, 30)
#: Six-digit frame numbers in Market-1501 names.
MAX_FRAME_NUMBER = 999_999
MAX_IMAGES_PER_IDENTITY_CAMERA = 1000
#: Probability that a crop keeps its tracklet's walking direction (people turn occasionally).
P_KEEP_TRACKLET_FACING = 0.75


@dataclass(frozen=True)
class CropPlan:
    """One image to render: who, where, when, and into which split."""

    pid: int
    camera_id: int
    index: int  # position inside the (pid, camera) tracklet
    frame: int
    split: str
    facing: Facing
    phase: float

    @property
    def filename(self) -> str:
        # ``s1``: one recording sequence per camera; ``_01``: the detection index in the frame
        return f"{self.pid:04d}_c{self.camera_id}s1_{self.frame:06d}_01.jpg"


@dataclass(frozen=True)
class SyntheticMarketParams:
    """Everything that changes the rendered images (and nothing that does not, like workers)."""

    num_identities: int
    num_cameras: int
    images_per_identity_camera: int
    seed: int
    height: int
    width: int
    train_fraction: float
    min_cameras_per_identity: int
    max_cameras_per_identity: int
    jpeg_quality: int

    def validate(self) -> None:
        if not 2 <= self.num_cameras <= MAX_CAMERAS:
            raise ValueError(f"num_cameras must be in 2..{MAX_CAMERAS}, got {self.num_cameras}")
        if not 2 <= self.num_identities <= MAX_IDENTITIES:
            raise ValueError(
                f"num_identities must be in 2..{MAX_IDENTITIES}, got {self.num_identities}"
            )
        if not 2 <= self.images_per_identity_camera <= MAX_IMAGES_PER_IDENTITY_CAMERA:
            raise ValueError(
                f"images_per_identity_camera must be in 2..{MAX_IMAGES_PER_IDENTITY_CAMERA} (one "
                "query plus at least one gallery image per camera), got "
                f"{self.images_per_identity_camera}"
            )
        low, high = self.min_cameras_per_identity, self.max_cameras_per_identity
        if not 2 <= low <= high <= self.num_cameras:
            raise ValueError(
                "need 2 <= min_cameras_per_identity <= max_cameras_per_identity <= num_cameras, "
                f"got {low}, {high}, {self.num_cameras}"
            )
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        num_train = self.num_train_identities
        if num_train < 1 or num_train >= self.num_identities:
            raise ValueError(
                f"train_fraction={self.train_fraction} of {self.num_identities} identities leaves "
                "an empty train or test split"
            )
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.height < 16 or self.width < 8:
            raise ValueError(f"crop size must be at least 16x8, got {self.height}x{self.width}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    @property
    def num_train_identities(self) -> int:
        return int(round(self.num_identities * self.train_fraction))


def plan_crops(params: SyntheticMarketParams) -> list[CropPlan]:
    """Decide every image of the dataset (cheap; no rendering). Deterministic in ``params``."""
    params.validate()
    rng = np.random.default_rng([TRACKLET_STREAM, params.seed])
    cameras = {c: CameraStyle.sample(c, params.seed) for c in range(1, params.num_cameras + 1)}
    num_train = params.num_train_identities
    n_images = params.images_per_identity_camera
    plans: list[CropPlan] = []
    for pid in range(1, params.num_identities + 1):
        is_train = pid <= num_train
        num_seen = int(
            rng.integers(params.min_cameras_per_identity, params.max_cameras_per_identity + 1)
        )
        seen_by = np.sort(rng.choice(params.num_cameras, num_seen, replace=False) + 1)
        for camera_id in seen_by:
            camera = cameras[int(camera_id)]
            # one pass of the person through the camera's view: a walking direction, a start
            # frame and a gait that advances between the sampled frames
            tracklet_facing = camera.sample_facing(rng)
            steps = rng.integers(*FRAME_STEP_RANGE, size=n_images)
            last_start = MAX_FRAME_NUMBER - n_images * FRAME_STEP_RANGE[1]
            frames = int(rng.integers(0, last_start)) + np.cumsum(steps)
            phases = rng.uniform(0, 2 * math.pi) + np.cumsum(steps) * rng.uniform(0.2, 0.35)
            keep_facing = rng.random(n_images) < P_KEEP_TRACKLET_FACING
            query_index = int(rng.integers(n_images))
            for index in range(n_images):
                facing = tracklet_facing if keep_facing[index] else camera.sample_facing(rng)
                if is_train:
                    split = TRAIN_DIR
                else:
                    split = QUERY_DIR if index == query_index else GALLERY_DIR
                plans.append(
                    CropPlan(
                        pid=pid, camera_id=int(camera_id), index=index, frame=int(frames[index]),
                        split=split, facing=facing, phase=float(phases[index] % (2 * math.pi)),
                    )
                )
    return plans


# Appearances and camera styles are pure functions of their ids; caching them saves a third of
# the rendering time of a dataset.
_cached_appearance = functools.lru_cache(maxsize=16384)(PersonAppearance.sample)
_cached_camera = functools.lru_cache(maxsize=256)(CameraStyle.sample)


def render_crop(plan: CropPlan, params: SyntheticMarketParams) -> np.ndarray:
    """Render one planned image; depends only on ``plan`` and ``params`` (any order, any thread)."""
    rng = np.random.default_rng(
        [IMAGE_STREAM, params.seed, plan.pid, plan.camera_id, plan.index]
    )
    return render_person_crop(
        _cached_appearance(plan.pid, params.seed),
        _cached_camera(plan.camera_id, params.seed),
        rng,
        params.height,
        params.width,
        facing=plan.facing,
        phase=plan.phase,
    )


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("OpenCV could not JPEG-encode a synthetic crop")
    return encoded.tobytes()


def _count_summary(plans: Iterable[CropPlan], num_cameras: int) -> dict[str, int]:
    counts = {TRAIN_DIR: 0, QUERY_DIR: 0, GALLERY_DIR: 0}
    train_ids: set[int] = set()
    test_ids: set[int] = set()
    for plan in plans:
        counts[plan.split] += 1
        (train_ids if plan.split == TRAIN_DIR else test_ids).add(plan.pid)
    return {
        "num_train_images": counts[TRAIN_DIR],
        "num_train_identities": len(train_ids),
        "num_query_images": counts[QUERY_DIR],
        "num_gallery_images": counts[GALLERY_DIR],
        "num_test_identities": len(test_ids),
        "num_cameras": num_cameras,
    }


def _make_params(**kwargs: Any) -> SyntheticMarketParams:
    if kwargs.get("max_cameras_per_identity") is None:
        kwargs["max_cameras_per_identity"] = min(
            DEFAULT_MAX_CAMERAS_PER_IDENTITY, kwargs["num_cameras"]
        )
    params = SyntheticMarketParams(**kwargs)
    params.validate()
    return params


def write_market1501(
    root: str | os.PathLike,
    num_identities: int = 160,
    num_cameras: int = 6,
    images_per_identity_camera: int = 3,
    seed: int = 0,
    height: int = 256,
    width: int = 128,
    train_fraction: float = 0.5,
    *,
    min_cameras_per_identity: int = 2,
    max_cameras_per_identity: int | None = None,
    jpeg_quality: int = 95,
    workers: int = 1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Render a synthetic Market-1501-style dataset into ``root`` and return its summary.

    Person ids start at 1; the first ``round(num_identities * train_fraction)`` ids form the
    training split, the rest the query/gallery split. The output is byte-for-byte identical for
    the same arguments (``workers`` only changes speed). An existing ``root`` is replaced only
    with ``overwrite=True``. Returns ``{"root", "version", "params", "counts"}`` (the content of
    ``synthetic_meta.json`` plus the root).
    """
    target = Path(root)
    params = _make_params(
        num_identities=num_identities, num_cameras=num_cameras,
        images_per_identity_camera=images_per_identity_camera, seed=seed, height=height,
        width=width, train_fraction=train_fraction,
        min_cameras_per_identity=min_cameras_per_identity,
        max_cameras_per_identity=max_cameras_per_identity, jpeg_quality=jpeg_quality,
    )
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if target.exists() and not overwrite:
        raise FileExistsError(f"dataset folder already exists (pass overwrite=True): {target}")
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"dataset root exists and is not a folder: {target}")
    plans = plan_crops(params)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        for split in SPLIT_DIRS:
            (staging / split).mkdir()

        def write_one(plan: CropPlan) -> None:
            data = _encode_jpeg(render_crop(plan, params), params.jpeg_quality)
            (staging / plan.split / plan.filename).write_bytes(data)

        if workers == 1:
            for plan in plans:
                write_one(plan)
        else:  # OpenCV drawing and encoding release the GIL, so threads overlap usefully
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(write_one, plans):
                    pass
        meta = {
            "generator": GENERATOR_NAME,
            "version": GENERATOR_VERSION,
            "params": asdict(params),
            "counts": _count_summary(plans, params.num_cameras),
        }
        meta_text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
        atomic_write_text(staging / META_FILENAME, meta_text)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"root": str(target), **meta}


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` onto ``target``; an old ``target`` is moved aside first, then deleted."""
    if not target.exists():
        os.replace(staging, target)
        return
    retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(target, retired)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(retired, target)  # put the old dataset back
        raise
    shutil.rmtree(retired, ignore_errors=True)


#: :func:`write_market1501`'s default value of every parameter that shapes the images.
_WRITER_DEFAULTS: dict[str, Any] = {
    name: parameter.default
    for name, parameter in inspect.signature(write_market1501).parameters.items()
    if name in SyntheticMarketParams.__dataclass_fields__
}


def read_synthetic_meta(root: str | os.PathLike) -> dict[str, Any] | None:
    """The ``synthetic_meta.json`` of a dataset folder, or None if missing or unreadable."""
    path = Path(root) / META_FILENAME
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def ensure_synthetic_market1501(
    root: str | os.PathLike, *, workers: int = 1, **kwargs: Any
) -> dict[str, Any]:
    """Reuse the dataset at ``root`` if it was generated by this version with these parameters.

    Otherwise (missing, older generator, other parameters, missing split folder) render it anew
    with :func:`write_market1501`. ``kwargs`` are :func:`write_market1501`'s parameters.
    """
    target = Path(root)
    unknown = set(kwargs) - set(_WRITER_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown synthetic dataset parameters: {sorted(unknown)}")
    params = _make_params(**{**_WRITER_DEFAULTS, **kwargs})
    meta = read_synthetic_meta(target)
    if (
        meta is not None
        and meta.get("generator") == GENERATOR_NAME
        and meta.get("version") == GENERATOR_VERSION
        and meta.get("params") == asdict(params)
        and all((target / split).is_dir() for split in SPLIT_DIRS)
    ):
        return {"root": str(target), **meta}
    return write_market1501(target, workers=workers, overwrite=True, **asdict(params))
