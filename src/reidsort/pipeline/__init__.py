"""The tracking application's processing: per-source runs (online/offline), the feature cache
and per-stage timing. Used by ``task=track`` (:mod:`reidsort.tasks.track`)."""

from reidsort.pipeline.cache import DetectionTable, FeatureCache, cache_key
from reidsort.pipeline.runner import (
    MODES,
    CacheSpec,
    Lazy,
    RunOptions,
    SourceResult,
    embed_frames,
    track_source,
)
from reidsort.pipeline.timing import STAGES, StageTimer, Timing

__all__ = [
    "CacheSpec",
    "DetectionTable",
    "FeatureCache",
    "Lazy",
    "MODES",
    "RunOptions",
    "STAGES",
    "SourceResult",
    "StageTimer",
    "Timing",
    "cache_key",
    "embed_frames",
    "track_source",
]
