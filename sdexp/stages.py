"""Wall time per stage of a sweep (encode, denoise, decode, score, write, wait), kept per batch.

The engine marks its stages with `timed(name)`; the sweep makes a `StageClock` active around its
render loop and takes the clock's totals after each batch. Outside an active clock `timed` only
runs its body. Stages nest: a prompt encoding inside a denoise counts as encode, not as denoise
too. On CUDA the clock synchronizes at each stage boundary, so a stage's time is its device work
and not the launch of it.

The first batch of each model and image size carries the model's first use (loading of weights
into kernels, autotuning, compilation): it is kept apart as warm-up, and its images get no
per-image `seconds` (their batch time is in `warmup_seconds`), so rates and estimates are those
of the steady state.
"""
from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

STAGES = ("encode", "denoise", "decode", "score", "write", "wait")

_active: ContextVar["StageClock | None"] = ContextVar("sdexp_stage_clock", default=None)


@contextmanager
def timed(stage: str):
    """Count the body's wall time as `stage` of the active clock (if any)."""
    clock = _active.get()
    if clock is None:
        yield
        return
    with clock.timed(stage):
        yield


class StageClock:
    """Exclusive wall time per stage since the last `take()`."""

    def __init__(self, sync=None):
        self._sync = sync or (lambda: None)
        self._open: Counter = Counter()
        self._children: list[float] = []     # per open stage: seconds of the stages nested in it

    @contextmanager
    def timed(self, stage: str):
        self._sync()
        t0 = time.perf_counter()
        self._children.append(0.0)
        try:
            yield
        finally:
            self._sync()
            spent = time.perf_counter() - t0
            self._open[stage] += spent - self._children.pop()
            if self._children:
                self._children[-1] += spent

    def take(self) -> dict[str, float]:
        """The seconds per stage since the last take, and start again from zero."""
        out = {s: self._open.get(s, 0.0) for s in STAGES}
        self._open.clear()
        return out

    @contextmanager
    def active(self):
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)


def warmup_key(cell) -> tuple:
    """What a first batch warms up: the model at one size (and the hires pass's target size)."""
    return (cell.model, cell.width, cell.height, cell.final_size)


@dataclass
class StageLog:
    """The per-batch stage records of one sweep and its totals, warm-up batches apart."""
    batches: list[dict] = field(default_factory=list)   # batch_id, images, warmup, wall and each stage
    _seen: set = field(default_factory=set)
    _first_ids: set = field(default_factory=set)

    def is_warmup(self, cell, batch_id: str) -> bool:
        """True for the images of the first batch of each warm-up key (all of that batch's decodes)."""
        key = warmup_key(cell)
        if key not in self._seen:
            self._seen.add(key)
            self._first_ids.add(batch_id)
        return batch_id in self._first_ids

    def add(self, batch_id: str, images: int, warmup: bool, wall: float, seconds: dict[str, float]) -> dict:
        record = {"batch_id": batch_id, "images": images, "warmup": warmup, "wall": wall, **seconds}
        self.batches.append(record)
        return record

    def totals(self, warmup: bool | None = False) -> dict[str, float]:
        picked = [b for b in self.batches if warmup is None or b["warmup"] == warmup]
        return {s: sum(b.get(s, 0.0) for b in picked) for s in STAGES}

    def line(self) -> str:
        """'stages: denoise 71%, decode 9%, score 6%, write 4%, other 10%' over the steady-state
        batches (share of their wall time on the render thread; `write` is the writer's time in the
        background, shown beside them), then the warm-up kept apart."""
        steady = [b for b in self.batches if not b["warmup"]]
        warm = [b for b in self.batches if b["warmup"]]
        wall = sum(b["wall"] for b in steady)
        if not steady or wall <= 0:
            head = "stages: no batch past warm-up"
        else:
            t = self.totals(False)
            shares = {s: t[s] for s in ("denoise", "decode", "score", "encode", "wait")}
            shares["other"] = max(0.0, wall - sum(shares.values()))
            parts = [f"{s} {100 * v / wall:.0f}%" for s, v in shares.items()
                     if s in ("denoise", "other") or round(100 * v / wall) > 0]
            head = (f"stages: {', '.join(parts)} of {format_duration(wall, about=False)} on the render "
                    f"thread; write {format_duration(t['write'], about=False)} in the background")
        if warm:
            n = len({b["batch_id"] for b in warm})        # a batch yields once per VAE
            head += (f"; warm-up {format_duration(sum(b['wall'] for b in warm), about=False)} in "
                     f"{n} batch{'es' if n > 1 else ''} (kept apart)")
        return head


def format_duration(seconds: float, about: bool = True, minute: str = "m") -> str:
    """8104 -> 'about 2 h 15 m'; 754 -> 'about 12 m 34 s'; 42.3 -> 'about 42.3 s' (`minute="min"`:
    '2 h 15 min', the report's spelling)."""
    prefix = "about " if about else ""
    s = int(round(seconds))
    if s < 60:
        return f"{prefix}{seconds:.1f} s"
    if s < 3600:
        return f"{prefix}{s // 60} {minute} {s % 60} s"
    return f"{prefix}{s // 3600} h {s % 3600 // 60} {minute}"
