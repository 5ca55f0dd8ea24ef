"""``task=track``: detect, embed and track people in videos, webcams, image folders and MOT
sequences; write MOTChallenge results and annotated videos; score sources that have ground truth.

With no ``source`` it renders (once) the built-in synthetic MOT sequence and tracks it twice,
without and with the appearance embedder, so a new user sees what Re-ID buys.

A detector that returns embeddings with its boxes (``produces_embeddings``: ``detector=fairmot``)
replaces the embedder: the ``embedder`` group is not used, the tracker gets the detector's
embeddings (cached with the detections, under a key that includes the model file).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import DictConfig, open_dict

from reidsort.data.synthetic.mot import ensure_synthetic_mot
from reidsort.pipeline.cache import FeatureCache, cache_key
from reidsort.pipeline.runner import CacheSpec, Lazy, RunOptions, SourceResult, track_source
from reidsort.pipeline.timing import Timing
from reidsort.tracking.cmc import CameraMotionEstimator
from reidsort.tracking.mot_io import write_mot_results
from reidsort.tracking.postprocess import Postprocessor
from reidsort.utils.errors import ReidsortError
from reidsort.utils.hydra_utils import build, to_plain
from reidsort.utils.io import atomic_write_text
from reidsort.video.display import check_display_available
from reidsort.video.sources import MotSequenceSource, Source, resolve_sources

log = logging.getLogger(__name__)

NO_EMBEDDER = "none"
#: Columns of the embedder comparison table (scores in percent, counts as they are).
COMPARISON_COLUMNS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")
COUNT_COLUMNS = ("IDSW",)
TIMING_FILE = "timing.txt"
COMPARISON_FILE = "embedder_comparison.md"
#: the tracker's own rows, kept beside a post-processed result file
RAW_RESULTS_SUFFIX = ".raw.txt"
#: placeholder of the source's name in ``cmc.path`` (cmc=file)
CMC_NAME_PLACEHOLDER = "{name}"


@dataclass
class Variant:
    """One way of tracking all sources: a label and an embedder config (None = motion only)."""

    label: str
    embedder_cfg: DictConfig | None
    #: the tracker takes the detector's own embeddings (a joint detection + embedding model)
    detector_embeddings: bool = False


def embedder_label(embedder_cfg: DictConfig | None) -> str:
    """``histogram`` for HistogramEmbedder, ``onnx`` for OnnxEmbedder, ``none`` for no model."""
    if embedder_cfg is None:
        return NO_EMBEDDER
    name = str(embedder_cfg.get("_target_", "embedder")).rsplit(".", 1)[-1]
    return name.removesuffix("Embedder").lower() or "embedder"


def detector_embeds(detector_cfg: DictConfig | None) -> bool:
    """Whether the configured detector returns embeddings (its class says
    ``produces_embeddings = True``), read from the class without building the detector."""
    target = detector_cfg.get("_target_") if detector_cfg is not None else None
    if not target:
        return False
    from hydra.utils import get_class

    try:
        return bool(getattr(get_class(str(target)), "produces_embeddings", False))
    except Exception:  # noqa: BLE001 - a bad target is reported when the detector is built
        return False


def run_options(task: DictConfig) -> RunOptions:
    return RunOptions(
        mode=str(task.mode), chunk_size=int(task.chunk_size), prefetch=int(task.prefetch),
        pipeline=bool(task.pipeline),
        video=bool(task.video),
        display=bool(task.display),
        max_frames=None if task.max_frames is None else int(task.max_frames),
        trail_length=int(task.trail_length), draw_masks=bool(task.draw_masks),
        show_fps=bool(task.show_fps), progress=bool(task.progress),
        video_codec=str(task.video_codec), result_decimals=int(task.result_decimals),
        clip_boxes=bool(task.get("clip_boxes", False)),
    )


def _sources(cfg: DictConfig, skipped: list[str]) -> tuple[list[Source], bool]:
    """The sources to track and whether they are the built-in synthetic sequence
    (unreadable videos inside source folders are appended to ``skipped``)."""
    if cfg.task.source is not None:
        return resolve_sources(cfg.task.source, float(cfg.task.image_frame_rate),
                               skipped), False
    root = ensure_synthetic_mot(cfg.paths.data_dir, **to_plain(cfg.task.synthetic))
    print(f"no source given: tracking the built-in synthetic sequence {root}", flush=True)
    return [MotSequenceSource(root)], True


def _variants(cfg: DictConfig, synthetic: bool, scored: bool) -> list[Variant]:
    embedder_cfg = cfg.get("embedder")
    if detector_embeds(cfg.get("detector")):
        label = str(cfg.detector._target_).rsplit(".", 1)[-1].removesuffix("Detector").lower()
        if embedder_cfg is not None:
            print(f"embeddings from the detector ({label}): embedder={embedder_label(embedder_cfg)}"
                  " is not used", flush=True)
        main = Variant(label or "detector", None, detector_embeddings=True)
    else:
        main = Variant(embedder_label(embedder_cfg), embedder_cfg)
    compare = cfg.task.compare_without_embedder
    if str(compare).lower() == "auto":
        compare = synthetic
    if not compare or (embedder_cfg is None and not main.detector_embeddings):
        return [main]
    if not scored:
        log.warning("task.compare_without_embedder needs sources with gt/gt.txt; not comparing")
        return [main]
    return [Variant(NO_EMBEDDER, None), main]


def _set_torch_threads(cfg: DictConfig) -> None:
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(int(cfg.torch_threads))


def _cache_spec(cache: FeatureCache | None, source: Source, cfg: DictConfig,
                variant: Variant) -> CacheSpec | None:
    fingerprint = source.fingerprint()
    if cache is None or fingerprint is None:
        return None
    # cached boxes are stored as the tracker got them: clipped or not is part of the key
    detection_key = cache_key("detections", fingerprint,
                              {**to_plain(cfg.detector),
                               "clip_boxes": bool(cfg.task.get("clip_boxes", False))})
    embedding_key = None
    if variant.embedder_cfg is not None:
        embedding_key = cache_key("embeddings", detection_key, to_plain(variant.embedder_cfg))
    elif variant.detector_embeddings:  # the detection key fingerprints the model file
        embedding_key = cache_key("embeddings", detection_key, "from the detector")
    return CacheSpec(cache, detection_key, embedding_key)


def build_tracker(tracker_cfg: DictConfig, source: Source):
    """The tracker for one source; a ``frame_rate: null`` knob (ByteTrack, BoT-SORT: their lost
    tracks' buffer scales with it) becomes the source's own frame rate."""
    if "frame_rate" in tracker_cfg and tracker_cfg.frame_rate is None \
            and source.info.frame_rate:
        return build(tracker_cfg, frame_rate=float(source.info.frame_rate))
    return build(tracker_cfg)


def camera_motion(cfg: DictConfig, source: Source) -> CameraMotionEstimator | None:
    """The ``cmc`` estimator for one source (None without a ``cmc`` group). A ``path`` in its
    config (``cmc=file``) is per source: ``{name}`` is replaced by the source's name and a
    relative path is taken inside the source's folder (a video's own folder), so every
    sequence reads its own ``gmc.txt``."""
    node = cfg.get("cmc")
    if node is None:
        return None
    path = node.get("path")
    if path is not None:
        info = source.info
        path = Path(str(path).replace(CMC_NAME_PLACEHOLDER, info.name))
        if not path.is_absolute():
            if info.path is None:
                raise ReidsortError(
                    f"cmc.path={path} is relative to the source's folder, but {info.name} has "
                    "none; give an absolute cmc.path"
                )
            folder = Path(info.path)
            path = (folder if folder.is_dir() else folder.parent) / path
        node = node.copy()
        with open_dict(node):
            node.path = str(path)
    return build(node)


def cmc_label(cfg: DictConfig) -> str:
    """``ecc`` for EccCameraMotion, ..., ``none`` without a ``cmc`` group."""
    node = cfg.get("cmc")
    if node is None:
        return "none"
    from reidsort.tracking.cmc import ESTIMATORS

    target = str(node.get("_target_", "")).rsplit(".", 1)[-1]
    return next((m.value for m, c in ESTIMATORS.items() if c.__name__ == target), target)


def _postprocess(result: SourceResult, postprocessor: Postprocessor,
                 decimals: int) -> SourceResult:
    """Rewrite the source's result file post-processed; the tracker's own rows are kept as
    ``<source>.raw.txt`` beside it (the annotated video shows the tracker's own output)."""
    raw_path = result.results_path.with_suffix(RAW_RESULTS_SUFFIX)
    write_mot_results(raw_path, result.rows, decimals)
    rows = postprocessor(result.rows)
    write_mot_results(result.results_path, rows, decimals)
    print(f"  {postprocessor}: {len(result.rows)} -> {len(rows)} rows "
          f"(tracker output: {raw_path.name})", flush=True)
    return replace(result, rows=rows)


def _track_all(cfg: DictConfig, sources: list[Source], variant: Variant, out_root: Path,
               detector: Lazy, options: RunOptions) -> list[SourceResult]:
    cache = FeatureCache(cfg.task.cache_dir) if cfg.task.cache else None
    postprocessor = build(cfg.postprocess) if cfg.get("postprocess") is not None else None
    embedder = None
    if variant.embedder_cfg is not None:
        embedder_cfg = variant.embedder_cfg
        embedder = Lazy(lambda: build(embedder_cfg))
    results = []
    for source in sources:
        source_options = options
        if source.live and options.mode == "offline":
            log.warning("%s is live: processing it online (frame by frame)", source.name)
            source_options = replace(options, mode="online")
        out_dir = out_root / source.name
        result = track_source(source, detector, embedder, build_tracker(cfg.tracker, source),
                              out_dir, source_options, _cache_spec(cache, source, cfg, variant),
                              camera_motion(cfg, source),
                              detector_embeddings=variant.detector_embeddings)
        if postprocessor is not None and postprocessor.active:
            result = _postprocess(result, postprocessor, source_options.result_decimals)
        timing_text = result.timing.table(f"{source.name} ({variant.label}, "
                                          f"{source_options.mode})")
        atomic_write_text(out_dir / TIMING_FILE, timing_text + "\n")
        cached = [k for k, hit in result.cache_hits.items() if hit]
        print(
            f"{source.name} [{variant.label}]: {result.timing.frames} frames, "
            f"{result.detections} detections, {result.track_ids} tracks, "
            f"{result.timing.fps:.1f} FPS"
            + (f", {result.skipped_frames} unreadable frames skipped"
               if result.skipped_frames else "")
            + (f" ({' and '.join(cached)} from cache)" if cached else ""),
            flush=True,
        )
        print(f"  results: {result.results_path}"
              + (f"\n  video:   {result.video_path}" if result.video_path else ""), flush=True)
        results.append(result)
    title = (f"{sources[0].name} ({variant.label}, {options.mode})" if len(sources) == 1
             else f"all {len(sources)} sources ({variant.label}, {options.mode})")
    print(Timing.total(r.timing for r in results).table(title), flush=True)
    return results


def _evaluate(cfg: DictConfig, sources: list[Source], results: list[SourceResult],
              out_root: Path):
    """TrackEval scores of the sources that have ground truth (None if there are none)."""
    from reidsort.evaluation.mot import evaluate_mot
    from reidsort.tasks.evaluate import report

    scored = [(s, r) for s, r in zip(sources, results) if s.info.gt_path is not None]
    if not scored or not cfg.task.evaluate:
        return None
    for source, result in scored:
        if not result.complete:
            log.warning("%s was not tracked to its end: its unprocessed frames count as misses",
                        source.name)
    options = cfg.task.evaluation
    evaluation = evaluate_mot(
        {r.name: r.rows for _, r in scored},
        {s.name: s.info.gt_path for s, _ in scored},
        {s.name: s.info.length for s, _ in scored},
        benchmark=str(options.benchmark), split=str(options.split),
        metrics=tuple(options.metrics),
    )
    report(evaluation, out_root)
    return evaluation


def _comparison_table(rows: dict[str, dict[str, float]]) -> str:
    header = "| embedder | " + " | ".join(COMPARISON_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COMPARISON_COLUMNS) + 1)]
    for label, row in rows.items():
        cells = [f"{row[c]:.0f}" if c in COUNT_COLUMNS else f"{100 * row[c]:.1f}"
                 for c in COMPARISON_COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _no_score(cfg: DictConfig) -> None:
    """Without ground truth there is nothing to optimise: a sweep cannot use this run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # no Hydra context (library use)
        multirun = False
    if multirun and cfg.get("optimized_metric"):
        raise ReidsortError(
            f"optimized_metric={cfg.optimized_metric} needs sources with gt/gt.txt; "
            "none of the sources has ground truth"
        )
    with open_dict(cfg):
        cfg.optimized_metric = None


def track(cfg: DictConfig) -> dict[str, float]:
    options = run_options(cfg.task)
    if options.display:
        check_display_available()
    _set_torch_threads(cfg)
    skipped_sources: list[str] = []
    sources, synthetic = _sources(cfg, skipped_sources)
    scored = any(s.info.gt_path is not None for s in sources) and bool(cfg.task.evaluate)
    variants = _variants(cfg, synthetic, scored)
    output_dir = Path(cfg.paths.output_dir)
    detector_cfg = cfg.detector
    detector = Lazy(lambda: build(detector_cfg))

    metrics: dict[str, float] = {}
    comparison: dict[str, dict[str, float]] = {}
    for variant in variants:
        # the main variant writes to the run dir; a comparison puts each under its label
        out_root = output_dir / variant.label if len(variants) > 1 else output_dir
        print(f"== tracking {len(sources)} source(s), embedder={variant.label}, "
              f"mode={options.mode}, cmc={cmc_label(cfg)}", flush=True)
        results = _track_all(cfg, sources, variant, out_root, detector, options)
        total = Timing.total(r.timing for r in results)
        evaluation = _evaluate(cfg, sources, results, out_root)
        prefix = "" if variant is variants[-1] else f"{variant.label}/"
        metrics.update({
            f"{prefix}track/frames": float(total.frames),
            f"{prefix}track/fps": float(total.fps),
            f"{prefix}track/detections": float(sum(r.detections for r in results)),
            f"{prefix}track/tracks": float(sum(r.track_ids for r in results)),
            f"{prefix}track/skipped_frames": float(sum(r.skipped_frames for r in results)),
        })
        if evaluation is not None:
            from reidsort.tasks.evaluate import METRIC_PREFIX

            metrics.update(evaluation.summary(prefix=f"{prefix}{METRIC_PREFIX}"))
            comparison[f"embedder={variant.label}"] = evaluation.row()
    if len(comparison) > 1:
        table = _comparison_table(comparison)
        atomic_write_text(output_dir / COMPARISON_FILE, table)
        print("What appearance (Re-ID) adds to motion-only tracking (scores in %):", flush=True)
        print(table, end="", flush=True)
    if not comparison:
        _no_score(cfg)
    if skipped_sources:
        # everything readable is tracked and written; the exit code still says what was not
        raise ReidsortError(
            f"{len(skipped_sources)} unreadable video(s) skipped, the other {len(sources)} "
            f"source(s) tracked: {'; '.join(skipped_sources)}")
    return metrics

