"""The LoRA axis: kohya and diffusers layouts load through diffusers, each render equals a plain
diffusers pipeline holding the same adapter, and switching LoRA or weight never reloads the model."""
from __future__ import annotations

import hashlib
import struct

import pytest
import torch

import sdexp.render
from adapter_files import write_diffusers_lora, write_kohya_lora
from render_helpers import as_uint8, cell, max_diff, mean_diff, render_cells, tiny_pipeline
from sdexp.lora import LoraSpec
from sdexp.metadata import parse_a1111_parameters
from sdexp.models import ModelCache
from sdexp.samplers import build_scheduler, get_sampler
from sdexp.sweep import run_sweep

STEPS = 4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pipe = tiny_pipeline()
    d = tmp_path_factory.mktemp("lora")
    return {
        "kohya": write_kohya_lora(d / "styleA.safetensors", pipe, seed=0),
        "kohya_unet": write_kohya_lora(d / "unetonly.safetensors", pipe, text_encoder=False, seed=3),
        "diffusers": write_diffusers_lora(d / "dl", pipe),
    }


def spec(files, key) -> LoraSpec:
    return LoraSpec(key, str(files[key]))


@pytest.mark.parametrize("layout", ["kohya", pytest.param("diffusers", marks=pytest.mark.slow)])
def test_lora_render_equals_diffusers_pipeline_with_the_same_adapter(files, layout):
    c = cell(lora=spec(files, layout), lora_weight=0.7, steps=STEPS)
    ours = render_cells([c])[c]

    pipe = tiny_pipeline()
    pipe.load_lora_weights(str(files[layout]), adapter_name="x")
    pipe.set_adapters(["x"], adapter_weights=[0.7])
    pipe.scheduler = build_scheduler(get_sampler("Euler a"), pipe.scheduler.config, [0])
    ref = pipe(prompt="a cat", negative_prompt="", num_inference_steps=STEPS, guidance_scale=7.0,
               generator=torch.Generator("cpu").manual_seed(0), height=64, width=64, output_type="np").images[0]
    assert max_diff(ours, as_uint8(ref)) <= 1

    base = render_cells([cell(steps=STEPS)])
    assert mean_diff(ours, next(iter(base.values()))) > 2, "the LoRA did not change the image"
@pytest.mark.slow
def test_weights_switch_in_place_and_weight_zero_is_the_base_model(files):
    cache = ModelCache(1)
    loras = [spec(files, "kohya"), spec(files, "diffusers")]
    cells = [cell(steps=STEPS)] + [cell(lora=l, lora_weight=w, steps=STEPS) for l in loras for w in (0.0, 0.5, 1.0)]
    images = render_cells(cells, cache)
    assert cache.loads == 1                                  # the base model loaded once
    model = next(iter(cache._models.values()))
    assert len(model.adapters["lora"]) == 2                  # each file loaded once
    base = images[cells[0]]
    for lora in loras:
        at = {w: images[cell(lora=lora, lora_weight=w, steps=STEPS)] for w in (0.0, 0.5, 1.0)}
        assert max_diff(at[0.0], base) <= 1                  # scale 0: the LoRA adds nothing
        assert mean_diff(at[0.5], at[1.0]) > 1 and mean_diff(at[0.5], base) > 1
    # a cell without LoRA rendered after LoRAs were active is the base image again
    again = render_cells([cell(steps=STEPS, seed=0)], cache)
    assert max_diff(next(iter(again.values())), base) <= 1


@pytest.mark.slow
def test_text_encodings_are_shared_unless_the_lora_touches_the_text_encoder(files, monkeypatch):
    encoded = []
    real = sdexp.render.encode_prompts

    def counting(tokenizer, text_encoder, prompts, clip_skip):
        encoded.extend(prompts)
        return real(tokenizer, text_encoder, prompts, clip_skip)

    monkeypatch.setattr(sdexp.render, "encode_prompts", counting)
    unet_only = spec(files, "kohya_unet")
    render_cells([cell(steps=2)] + [cell(lora=unet_only, lora_weight=w, steps=2) for w in (0.5, 1.0)])
    assert sorted(encoded) == ["", "a cat"]                  # one encoding of each text for all three
    encoded.clear()
    with_te = spec(files, "kohya")
    render_cells([cell(steps=2)] + [cell(lora=with_te, lora_weight=w, steps=2) for w in (0.5, 1.0)])
    assert sorted(encoded) == ["", "", "", "a cat", "a cat", "a cat"]   # base, and once per weight


def addnet_reference(path) -> str:
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + n:]).hexdigest()


@pytest.mark.slow
def test_rows_metadata_and_grid_name_the_lora_as_a1111_does(files, compose_cfg):
    cfgs = [compose_cfg(["name=lora", "steps=2", "prompts=single", f"+loras.styleA={files['kohya']}",
                         f"lora={lora}", f"lora_weight={w}", "run.progress=false"])
            for lora in ("styleA", str(files["diffusers"])) for w in (0.4, 1.0)]
    out = run_sweep(cfgs, ["lora", "lora_weight"], log=lambda *a: None)
    rows = __import__("sdexp").load_rows(out["folder"])
    assert sorted(rows.lora.unique()) == ["pytorch_lora_weights", "styleA"]
    assert sorted(rows.lora_weight.unique()) == [0.4, 1.0]
    a = rows[rows.lora == "styleA"].iloc[0]
    assert a.lora_hash == addnet_reference(files["kohya"]) and a.lora_source == str(files["kohya"].resolve())
    from PIL import Image

    params = Image.open(out["folder"] / a.image_path).info["parameters"]
    assert f"<lora:styleA:{a.lora_weight:g}>" in params.split("\n")[0]
    assert parse_a1111_parameters(params)["Lora hashes"] == f'"styleA: {a.lora_hash[:12]}"'
    assert [g.name for g in out["grids"]] == ["grid-lora-x-lora_weight-y.png"]


@pytest.mark.slow
def test_extra_loras_stack_under_every_value_of_the_lora_axis(files, compose_cfg):
    """extra_loras (name -> weight) apply to every cell, stacked with the swept LoRA, as diffusers'
    set_adapters with both; rows and PNGs name both."""
    common = ["name=extra", "steps=2", "prompt='a cat'", f"+loras.detail={files['kohya_unet']}",
              f"+loras.styleA={files['kohya']}", "+extra_loras.detail=0.8", "run.progress=false"]
    cfgs = [compose_cfg([*common, f"lora_weight={w}", "lora=styleA"]) for w in (0.0, 1.0)]
    out = run_sweep(cfgs, ["lora_weight"], log=lambda *a: None)
    rows = __import__("sdexp").load_rows(out["folder"]).set_index("lora_weight")
    assert rows.loc[1.0, "extra_loras"] == "detail:0.8"
    assert rows.loc[1.0, "extra_lora_hashes"] == f"detail:{addnet_reference(files['kohya_unet'])}"
    from PIL import Image
    import numpy as np

    image = Image.open(out["folder"] / rows.loc[1.0, "image_path"])
    first = image.info["parameters"].split("\n")[0]
    assert first.endswith("<lora:detail:0.8> <lora:styleA:1>")

    pipe = tiny_pipeline()
    pipe.load_lora_weights(str(files["kohya_unet"]), adapter_name="detail")
    pipe.load_lora_weights(str(files["kohya"]), adapter_name="styleA")
    pipe.set_adapters(["detail", "styleA"], adapter_weights=[0.8, 1.0])
    pipe.scheduler = build_scheduler(get_sampler("Euler a"), pipe.scheduler.config, [0])
    ref = pipe(prompt="a cat", negative_prompt="", num_inference_steps=2, guidance_scale=7.0,
               generator=torch.Generator("cpu").manual_seed(0), height=64, width=64, output_type="np").images[0]
    assert max_diff(np.asarray(image), as_uint8(ref)) <= 1


def test_extra_loras_must_name_loras_and_not_repeat_the_swept_one(files, compose_cfg):
    from sdexp.plan import ConfigError, make_plan

    with pytest.raises(ConfigError, match=r"extra_loras.nope=0.5: 'nope' is not a name in loras"):
        make_plan([compose_cfg(["+extra_loras.nope=0.5"])])
    with pytest.raises(ConfigError, match="also in extra_loras"):
        make_plan([compose_cfg([f"+loras.styleA={files['kohya']}", "+extra_loras.styleA=0.5", "lora=styleA"])])
