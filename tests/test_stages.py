"""Stage timings (sdexp.stages) and the dry run's estimate from stored timings of any sweep under
results_root (sdexp.dryrun), against hand-computed values."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from sdexp import stages
from sdexp.dryrun import estimate, format_summary, timing_history
from sdexp.models import ModelSpec, VaeSpec
from sdexp.plan import Cell
from sdexp.stages import StageClock, StageLog, format_duration, timed
from sdexp.store import Store

TINY = ModelSpec("tiny", "tiny")
VAE = VaeSpec("Automatic", None)


class FakeTime:
    """perf_counter that moves only when told."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(stages, "time", fake)
    return fake


def test_nested_stages_count_once(clock):
    c = StageClock()
    with c.active():
        with timed("denoise"):
            clock.now += 1.0
            with timed("encode"):          # a prompt encoding inside the denoise
                clock.now += 0.25
            clock.now += 2.0
        with timed("decode"):
            clock.now += 0.5
    with timed("decode"):                  # no active clock: nothing counted
        clock.now += 9.0
    got = c.take()
    assert got == {"encode": 0.25, "denoise": 3.0, "decode": 0.5, "score": 0.0, "write": 0.0, "wait": 0.0}
    assert c.take()["denoise"] == 0.0      # taken: starts again from zero


def test_warmup_is_the_first_batch_of_each_model_and_size():
    log = StageLog()
    a64, a96 = cell(seed=0), cell(seed=1, width=96)
    assert log.is_warmup(a64, "b1") and log.is_warmup(a64, "b1")        # both decodes of batch b1
    assert not log.is_warmup(a64, "b2")
    assert log.is_warmup(a96, "b3") and not log.is_warmup(a96, "b4")
    assert log.is_warmup(cell(seed=0, model=ModelSpec("other", "tiny")), "b5")


def test_line_gives_shares_of_the_steady_batches():
    log = StageLog()
    zero = dict.fromkeys(stages.STAGES, 0.0)
    log.add("w", 4, True, 20.0, {**zero, "denoise": 15.0})
    log.add("w", 4, True, 10.0, {**zero, "decode": 1.0})          # its second VAE: the same batch
    log.add("a", 4, False, 10.0, {**zero, "denoise": 7.0, "decode": 1.0, "score": 0.5, "write": 3.0})
    log.add("b", 4, False, 10.0, {**zero, "denoise": 7.2, "decode": 0.8, "score": 0.7, "wait": 0.04})
    line = log.line()
    # of 20 s: denoise 14.2 (71%), decode 1.8 (9%), score 1.2 (6%), wait 0.04 (0%: left out), other 2.76
    assert line.startswith("stages: denoise 71%, decode 9%, score 6%, other 14% of 20.0 s on the render thread;")
    assert "write 3.0 s in the background" in line and "warm-up 30.0 s in 1 batch (kept apart)" in line
    assert StageLog().line() == "stages: no batch past warm-up"


@pytest.mark.parametrize("seconds, text", [(8104, "about 2 h 15 m"), (7199, "about 1 h 59 m"),
                                           (754, "about 12 m 34 s"), (60, "about 1 m 0 s"),
                                           (42.3, "about 42.3 s"), (3.3, "about 3.3 s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def cell(seed=0, sampler="Euler a", steps=10, cfg=7.0, width=64, model=TINY, vae=VAE):
    return Cell(model, vae, sampler, steps, cfg, 1, seed, "a cat", "", width, 64)


def stored_sweep(root, name, cells, seconds, warmup_seconds=None):
    """A sweep folder whose rows time `cells` at `seconds` each (None: a warm-up batch's rows)."""
    store = Store(root / name)
    store.rows.mkdir(parents=True)
    store.append_rows([{"sweep": name, "cell_id": c.cell_id, "image_id": c.image_id, **c.row_values(),
                        "seconds": seconds, "warmup_seconds": warmup_seconds} for c in cells])


def test_estimate_from_another_sweep_of_the_same_model_size_sampler_and_steps(tmp_path):
    root = tmp_path / "results"
    # Euler a, 10 steps, cfg 7: 10 calls x 2 = 20 evaluations a trajectory, 4 of them at 0.5 s each
    stored_sweep(root, "old", [cell(seed=s) for s in range(4)], seconds=0.5)
    # the same model and size with another sampler and steps, at another rate: not used for Euler a 10
    stored_sweep(root, "other", [cell(seed=s, sampler="DDIM", steps=20) for s in range(2)], seconds=4.0)
    history = timing_history(root)
    assert len(history) == 6
    rate = 4 * 0.5 / (4 * 20)
    todo = [cell(seed=s) for s in range(10, 16)] + [cell(seed=s, cfg=1.0) for s in range(3)]
    assert estimate(todo, history) == pytest.approx(rate * (6 * 20 + 3 * 10))
    # Euler a at 30 steps has no timings of its own: the rate of the same model and size, all rows
    both = (4 * 0.5 + 2 * 4.0) / (4 * 20 + 2 * 20 * 2)
    assert estimate([cell(steps=30)], history) == pytest.approx(both * 30 * 2)
    assert estimate([cell(width=96)], history) is None                 # no timings of this size


def test_estimate_from_warmup_batches_only_when_nothing_else(tmp_path):
    root = tmp_path / "results"
    stored_sweep(root, "warm", [cell(seed=s) for s in range(2)], seconds=None, warmup_seconds=3.0)
    history = timing_history(root)
    assert bool(history.warmup.all())
    assert estimate([cell(seed=9)], history) == pytest.approx(2 * 3.0 / (2 * 20) * 20)
    stored_sweep(root, "steady", [cell(seed=s) for s in range(2)], seconds=0.5)
    assert estimate([cell(seed=9)], timing_history(root)) == pytest.approx(0.5)     # steady rows win


def test_summary_prints_hours_and_minutes():
    plan = SimpleNamespace(name="n", folder="f", grid={"x": None, "y": None, "z": None})
    s = {"cells": 1, "stored": 0, "to_render": 1, "models": 1, "prompt_encodings": 1, "trajectories": 1,
         "second_passes": 0, "batches": 1, "unet_evaluations": 1, "unet_evaluations_per_cell_loop": 1,
         "vae_decodes": 1, "estimate_seconds": 8104.0}
    assert "estimate                          about 2 h 15 m (from stored timings" in format_summary(plan, s)
    s["estimate_seconds"] = None
    assert "unknown" in format_summary(plan, s)
