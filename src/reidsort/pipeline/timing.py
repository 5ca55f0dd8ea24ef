"""Per-stage wall-clock accounting for the tracking application (decode, detect, embed, ...)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: Stages in the order the pipeline runs them (the table lists them in this order).
STAGES: tuple[str, ...] = ("decode", "detect", "embed", "track", "draw", "write", "display")


@dataclass
class Timing:
    """Seconds per stage, frames processed and wall time of a run (or a sum of runs)."""

    seconds: dict[str, float] = field(default_factory=dict)
    frames: int = 0
    wall_seconds: float = 0.0
    #: stages ran in parallel threads (the pipeline): their times overlap
    parallel: bool = False
    #: crops the embedder computed (cache hits excluded): Re-ID cost is per detection
    embedded: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @classmethod
    def total(cls, parts: Iterable[Timing]) -> Timing:
        out = cls()
        for part in parts:
            for name, seconds in part.seconds.items():
                out.seconds[name] = out.seconds.get(name, 0.0) + seconds
            out.frames += part.frames
            out.wall_seconds += part.wall_seconds
            out.parallel = out.parallel or part.parallel
            out.embedded += part.embedded
        return out

    def table(self, title: str = "") -> str:
        """Plain-text table: seconds, milliseconds per frame and share of wall time per stage;
        ``other`` is wall time outside every stage (set-up, cache I/O, bookkeeping). Stages
        that ran in parallel threads overlap, so there is no ``other`` and the shares may add
        up to more than 100%."""
        wall = self.wall_seconds
        names = [s for s in STAGES if s in self.seconds]
        names += sorted(s for s in self.seconds if s not in STAGES)
        other = max(0.0, wall - sum(self.seconds.values()))
        per_frame = 1000.0 / self.frames if self.frames else 0.0
        lines = [title] if title else []
        lines.append(f"{'stage':<10} {'total s':>9} {'ms/frame':>9} {'share':>7}")
        for name in names if self.parallel else [*names, "other"]:
            seconds = other if name == "other" else self.seconds[name]
            share = 100.0 * seconds / wall if wall > 0 else 0.0
            lines.append(f"{name:<10} {seconds:>9.3f} {seconds * per_frame:>9.2f} {share:>6.1f}%")
        lines.append(f"{'total':<10} {wall:>9.3f} {wall * per_frame:>9.2f}         "
                     f"{self.frames} frames, {self.fps:.1f} FPS")
        if self.embedded and self.seconds.get("embed"):
            lines.append(f"embed: {1000.0 * self.seconds['embed'] / self.embedded:.2f} ms per "
                         f"detection ({self.embedded} crops)")
        if self.parallel:
            lines.append("(detect, embed and track ran in parallel threads: stage times overlap)")
        return "\n".join(lines)


class StageTimer:
    """Accumulates seconds per stage: ``with timer.stage("detect"): ...``; stages may be timed
    from several threads (``parallel=True``)."""

    def __init__(self, parallel: bool = False) -> None:
        self.timing = Timing(parallel=parallel)
        self._start = time.perf_counter()
        self._stopped = False
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.timing.seconds[name] = self.timing.seconds.get(name, 0.0) + seconds

    def count_frame(self) -> None:
        self.timing.frames += 1

    def count_embedded(self, crops: int) -> None:
        with self._lock:
            self.timing.embedded += int(crops)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def stop(self) -> Timing:
        """Freeze the wall time and return the timing."""
        if not self._stopped:
            self.timing.wall_seconds = self.elapsed
            self._stopped = True
        return self.timing
