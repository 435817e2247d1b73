"""The sweep engine: models load once, work is shared, out-of-memory batches split, dry run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

import sdexp.render
from sdexp import tiny
from sdexp.batching import run_split_on_oom
from sdexp.dryrun import unet_calls
from sdexp.models import ModelCache, ModelSpec, VaeSpec
from render_helpers import max_diff
from sdexp.plan import Cell
from sdexp.render import plan_batches, render
from sdexp.single_file import save_original_checkpoint
from sdexp.sweep import run_sweep

CPU, F32 = torch.device("cpu"), torch.float32
TINY = ModelSpec("tiny", "tiny")
AUTO, ALT = VaeSpec("Automatic", None), VaeSpec("tiny_alt", "tiny_alt")


def cell(model=TINY, vae=AUTO, sampler="Euler a", cfg=7.0, clip_skip=1, seed=0, prompt="a cat", steps=3):
    return Cell(model, vae, sampler, steps, cfg, clip_skip, seed, prompt, "", 64, 64)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """The tiny model written as one original-layout .safetensors file."""
    pipe = StableDiffusionPipeline.from_pretrained(tiny.tiny_model_folder())
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_original_checkpoint(pipe, path)
    return path


def test_each_model_loads_once_whatever_the_cell_order(tiny_file):
    other = ModelSpec("tiny-file", str(tiny_file), skeleton=str(tiny.tiny_model_folder()))
    cells = [cell(model=m, seed=s) for s in range(3) for m in (TINY, other)]   # interleaved
    cache = ModelCache(max_resident=1)
    items = [i for batch in render(cells, cache, batch_size=8, device=CPU, dtype=F32) for i in batch]
    assert cache.loads == 2
    assert len(items) == len(cells)
    # the single-file copy holds the same weights: the same pixels within 1/255 (identical with two torch
    # threads; up to 1/255 apart seen with one, as make test runs)
    by = {(i["cell"].model.name, i["cell"].seed): i["array"] for i in items}
    for s in range(3):
        assert max_diff(by[("tiny", s)], by[("tiny-file", s)]) <= 1
    assert max_diff(by[("tiny", 0)], by[("tiny", 1)]) > 8            # the seeds drew different images


def test_vaes_share_one_trajectory_and_batches_mix_seeds_prompts_and_cfg():
    cells = [cell(vae=v, cfg=c, seed=s, prompt=p) for v in (AUTO, ALT) for c in (3.0, 7.0) for s in (0, 1)
             for p in ("a cat", "a dog")]
    batches = plan_batches(cells, batch_size=8)
    assert len(batches) == 1 and len(batches[0].trajectories) == 8      # 16 images, 8 denoises
    assert all(len(t) == 2 for t in batches[0].trajectories)             # each decoded by both VAEs
    # guidance on and off never share a batch (off skips the unconditional pass)
    mixed = plan_batches([cell(cfg=1.0), cell(cfg=7.0)], batch_size=8)
    assert len(mixed) == 2


def test_out_of_memory_splits_the_batch_and_keeps_the_images(monkeypatch):
    cells = [cell(seed=s) for s in range(4)]
    whole = {i["cell"].seed: i for b in render(cells, ModelCache(1), batch_size=4, device=CPU, dtype=F32)
             for i in b}
    real = sdexp.render.denoise

    def limited(unet, scheduler, cond, *args, **kwargs):   # a device that only fits two images
        if cond.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(unet, scheduler, cond, *args, **kwargs)

    monkeypatch.setattr(sdexp.render, "denoise", limited)
    split = [i for b in render(cells, ModelCache(1), batch_size=4, device=CPU, dtype=F32) for i in b]
    assert [i["batch_size"] for i in split] == [2, 2, 2, 2]
    assert len({i["batch_id"] for i in split}) == 2
    for item in split:
        diff = np.abs(item["array"].astype(int) - whole[item["cell"].seed]["array"].astype(int)).max()
        assert diff <= 2, f"seed {item['cell'].seed}: split render differs by {diff}/255"


def test_split_gives_up_on_a_single_item_and_passes_other_errors():
    def always_oom(items):
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        run_split_on_oom(always_oom, [1, 2, 3])
    with pytest.raises(RuntimeError, match="shape"):
        run_split_on_oom(lambda items: (_ for _ in ()).throw(RuntimeError("bad shape")), [1, 2])
    chunks = run_split_on_oom(lambda items: sum(items) if len(items) <= 1 else always_oom(items), [1, 2, 3])
    assert [c[0] for c in chunks] == [[1], [2], [3]]


def test_unet_calls_match_the_schedulers():
    assert unet_calls("Euler a", 10) == 10
    assert unet_calls("Heun", 10) == 19          # second-order: two calls a step but the last


def test_dry_run_counts_work_and_renders_nothing(compose_cfg, tmp_path):
    cfgs = [compose_cfg([f"vae={v}", f"cfg={c}", "seed=[0,1]", "steps=4", "prompts=default", "name=dry",
                         "plan.dry_run=true"]) for v in ("tiny", "tiny_alt") for c in (1, 7)]
    lines = []
    result = run_sweep(cfgs, ["vae", "cfg"], log=lines.append)
    s = result["summary"]
    assert s["cells"] == 16 and s["to_render"] == 16 and s["trajectories"] == 8
    assert s["unet_evaluations"] == 4 * 4 * 1 + 4 * 4 * 2            # cfg 1: one pass; cfg 7: two
    assert s["unet_evaluations_per_cell_loop"] == 2 * s["unet_evaluations"]
    assert s["vae_decodes"] == 16 and s["models"] == 1
    assert "UNet evaluations" in lines[0] and "estimate" in lines[0]
    assert not (tmp_path / "results").exists()
    # after rendering part of it, the dry run counts what is stored and estimates from its timings
    said = []
    run_sweep([compose_cfg(["vae=tiny", "cfg=7", "seed=[0,1]", "steps=4", "prompts=default", "name=dry"])],
              log=said.append)
    # one batch: the model's first at this size, so warm-up, kept apart and out of per-image seconds
    assert [m for m in said if m.startswith("sdexp: stages: no batch past warm-up; warm-up ")]
    rows = sdexp.load_rows(tmp_path / "results" / "dry")
    assert rows.seconds.isna().all() and (rows.warmup_seconds > 0).all()
    import pandas as pd

    from sdexp.stages import STAGES

    timings = pd.read_parquet(next((tmp_path / "results" / "dry" / "timings").glob("run-*.parquet")))
    assert set(STAGES) <= set(timings.columns) and timings.warmup.all() and timings.images.sum() == 4
    assert (timings.denoise > 0).all() and (timings.decode > 0).all() and (timings.write > 0).all()
    again = run_sweep(cfgs, ["vae", "cfg"], log=lambda *a: None)["summary"]
    assert again["stored"] == 4 and again["to_render"] == 12
    assert again["estimate_seconds"] is not None and again["estimate_seconds"] > 0   # from the warm-up
    # a new sweep name in the same results_root estimates from the stored timings too
    other = [compose_cfg([*c, "name=dry_other"]) for c in ([f"vae={v}", "cfg=7", "seed=[0,1]", "steps=4",
                                                             "prompts=default", "plan.dry_run=true"]
                                                            for v in ("tiny", "tiny_alt"))]
    fresh = run_sweep(other, ["vae"], log=lambda *a: None)["summary"]
    assert fresh["stored"] == 0 and fresh["estimate_seconds"] > 0
@pytest.mark.slow
def test_vae_from_a_single_file_and_a_folder_decode_like_the_builtin(tmp_path):
    from diffusers import AutoencoderKL

    from sdexp.single_file import save_original_vae

    path = tmp_path / "alt.safetensors"
    save_original_vae(AutoencoderKL.from_pretrained(tiny.tiny_vae_folder("tiny_alt")), path)
    specs = [ALT, VaeSpec("alt-file", str(path), skeleton=str(tiny.tiny_model_folder())),
             VaeSpec("alt-folder", str(tiny.tiny_vae_folder("tiny_alt")))]
    items = [i for b in render([cell(vae=v) for v in specs], ModelCache(1), batch_size=8, device=CPU, dtype=F32)
             for i in b]
    assert len(items) == 3
    assert all(np.array_equal(items[0]["array"], i["array"]) for i in items[1:])
    assert items[1]["vae_source"] == str(path.resolve())
