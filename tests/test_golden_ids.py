"""The resume contract: `cell_id` and `image_id` of fixed cells, pinned as literal strings.

The first eight were computed by the code before the axis registry existed; a refactor that changes
any id would make every stored sweep render again, so it fails here. Cells built by the planner from
the default config must get the same ids as the same cells built by hand."""
from __future__ import annotations

import pytest

from sdexp.cell import Cell
from sdexp.embeddings import EmbeddingSpec
from sdexp.img2img import InitImage
from sdexp.lora import LoraSpec
from sdexp.models import ModelSpec, VaeSpec
from sdexp.plan import make_plan

M = ModelSpec("tiny", "tiny")
V = VaeSpec("Automatic", None)
BASE = dict(model=M, vae=V, sampler="Euler a", steps=20, cfg=7.0, clip_skip=1, seed=0, prompt="a photo of a cat",
            negative_prompt="", width=64, height=64)
CASES = {
    "default": {},
    "settings": dict(sampler="DPM++ 2M Karras", steps=12, cfg=5.5, clip_skip=2, vae=VaeSpec("tiny_alt", "tiny_alt"),
                     seed=123456789, prompt="a red apple, on a table", negative_prompt="blurry", width=96, height=64),
    "checkpoint": dict(model=ModelSpec("dreamshaper", "/models/dreamshaper_8.safetensors"),
                       vae=VaeSpec("ft-mse", "/models/vae-ft-mse.safetensors"), width=512, height=512),
    "lora": dict(lora=LoraSpec("add_detail", "/models/Lora/add_detail.safetensors"), lora_weight=0.5,
                 extra_loras=((LoraSpec("style", "/models/Lora/style.safetensors"), 0.8),)),
    "embedding": dict(embedding=EmbeddingSpec("emb", "/models/emb.safetensors", "<embedding>"),
                      embedding_token="<embedding>", prompt="a <embedding> cat"),
    "img2img": dict(init_image=InitImage("init.png", "/data/init.png", "ab" * 32), strength=0.6),
    "prompt_sr": dict(prompt="a photo of a dog", prompt_sr="dog", prompt_template="a photo of a cat"),
    "lcm": dict(sampler="LCM", steps=4, cfg=1.5, lcm_lora=LoraSpec("lcm", "/models/lcm.safetensors")),
    # axes added with the registry (pinned when they were added)
    "schedule_eta": dict(sampler="DDIM", schedule="SGM Uniform", eta=0.5),
    "variation_rng": dict(subseed=5, subseed_strength=0.3, rng="gpu"),
    "sigmas": dict(sampler="Euler", s_churn=1.0, s_tmin=0.5, s_tmax=20.0, s_noise=1.003),
    "hires": dict(hires_scale=2.0, hires_steps=10, hires_strength=0.5, hires_upscaler="Latent (bicubic)"),
}
GOLDEN = {
    "default": ("e2e205fae04bb6f6", "8201e2f7b6af96f2"),
    "settings": ("66f062672370012e", "176bb3ee0d9063a6"),
    "checkpoint": ("60361304a5b6b276", "3b716c4e0e90abdc"),
    "lora": ("4ed817647a58194b", "b56515b4d262b7fb"),
    "embedding": ("9b8ca3ae0921b858", "22284efa29522e57"),
    "img2img": ("d2661b883cca18ef", "8663f45a4fdd8a4c"),
    "prompt_sr": ("a10e565a32099a02", "bc9a16d837706f4d"),
    "lcm": ("ba30bc86a03995cf", "7e9871a504a66ec1"),
    "schedule_eta": ("60948f728ce4a326", "7b863afffaaa6317"),
    "variation_rng": ("55dfe974724a183a", "90b1ebc045360e05"),
    "sigmas": ("e28cadf425585f8f", "648683759b3fefe6"),
    "hires": ("dd2645e08bd2b128", "d8631d4431f665be"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_golden_ids(name):
    cell = Cell(**{**BASE, **CASES[name]})
    assert (cell.cell_id, cell.image_id) == GOLDEN[name]


def test_off_values_keep_ids():
    """Setting a new axis to its off value (schedule Automatic, variation strength 0, rng cpu) keeps the id."""
    off = Cell(**BASE, schedule="Automatic", subseed_strength=0.0, rng="cpu", eta=None)
    assert (off.cell_id, off.image_id) == GOLDEN["default"]


def test_a_hires_cell_starts_from_the_txt2img_cell():
    """The first pass of a hires cell is the cell without hires: the same ids as the one-pass cell."""
    first = Cell(**{**BASE, **CASES["hires"]}).first_pass
    assert (first.cell_id, first.image_id) == GOLDEN["default"]


@pytest.mark.parametrize("overrides, name", [
    (["prompt='a photo of a cat'", "seed=0"], "default"),
    (["prompt='a photo of a cat'", "seed=0", "hires.steps=5", "hires.strength=0.3", "hires.upscaler=lanczos"],
     "default"),
    (["prompt='a photo of a cat'", "seed=0", "steps=20", "width=64", "hires.scale=2", "hires.steps=10",
      "hires.strength=0.5", "hires.upscaler=latent_bicubic"], "hires"),
    (["prompt='a photo of a cat'", "seed=0", "schedule=automatic", "rng=cpu", "subseed=7"], "default"),
    (["prompt='a photo of a cat'", "seed=0", "sampler=ddim", "schedule=sgm_uniform", "eta=0.5"], "schedule_eta"),
    (["prompt='a photo of a cat'", "seed=0", "subseed=5", "subseed_strength=0.3", "rng=gpu"], "variation_rng"),
])
def test_planned_cells_have_the_golden_ids(compose_cfg, overrides, name):
    plan = make_plan([compose_cfg(overrides)], [o.split("=")[0] for o in overrides])
    [cell] = plan.cells
    assert (cell.cell_id, cell.image_id) == GOLDEN[name]


def test_ids_computed_once_per_grid_cell_still_tell_values_json_tells_apart():
    """cell_id is digested once per grid cell (cells differing only in seed or prompt share it): the
    shared result must still be each cell's own digest, so 3 and 3.0, True and 1 stay apart as the
    digest's JSON keeps them, and a changed nested spec gets its own id."""
    from dataclasses import asdict

    from sdexp.cell import _NOT_IN_CELL_ID, _OFF, digest

    def uncached(cell):
        return digest({k: v for k, v in asdict(cell).items()
                       if k not in _NOT_IN_CELL_ID and (k not in _OFF or v != _OFF[k])})

    cells = [Cell(**{**BASE, "cfg": 3}), Cell(**{**BASE, "cfg": 3.0}), Cell(**{**BASE, "clip_skip": True}),
             Cell(**{**BASE, "seed": 9, "prompt": "other"}), Cell(**{**BASE, "model": ModelSpec("tiny", "other")})]
    assert [c.cell_id for c in cells] == [uncached(c) for c in cells]
    assert cells[0].cell_id != cells[1].cell_id and cells[2].cell_id != Cell(**BASE).cell_id
    assert cells[3].cell_id == Cell(**BASE).cell_id and cells[4].cell_id != Cell(**BASE).cell_id
