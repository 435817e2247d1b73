"""The textual-inversion embedding axis: A1111 (.pt, .safetensors) and diffusers formats load, act
where their trigger token stands, equal a plain diffusers pipeline holding the same embedding, and
`embedding=none` renders the prompt without the token."""
from __future__ import annotations

import pytest
import torch

from adapter_files import (embedding_vectors, write_a1111_pt, write_a1111_safetensors,
                           write_diffusers_embedding)
from render_helpers import as_uint8, cell, max_diff, mean_diff, render_cells, tiny_pipeline
from sdexp.embeddings import EmbeddingSpec, read_embedding, strip_token
from sdexp.metadata import parse_a1111_parameters
from sdexp.plan import ConfigError, make_plan
from sdexp.samplers import build_scheduler, get_sampler
from sdexp.sweep import run_sweep

TOKEN = "<embedding>"
PROMPT = f"a photo of a cat, {TOKEN}"
STEPS = 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pipe = tiny_pipeline()
    d = tmp_path_factory.mktemp("emb")
    vectors = embedding_vectors(pipe.text_encoder, n=2, seed=0)
    return {
        "vectors": vectors,
        "a1111_pt": write_a1111_pt(d / "styleA.pt", vectors),
        "a1111_st": write_a1111_safetensors(d / "styleB.safetensors", embedding_vectors(pipe.text_encoder, 1, 5)),
        "diffusers": write_diffusers_embedding(d / "learned_embeds.safetensors", vectors * 0.5),
    }


@pytest.mark.parametrize("fmt", ["a1111_pt", "a1111_st", "diffusers"])
def test_each_format_reads_to_its_vectors(files, fmt):
    tensors = read_embedding(EmbeddingSpec(fmt, str(files[fmt]), TOKEN))
    assert set(tensors) == {"clip_l"} and tensors["clip_l"].shape[1] == 32
    if fmt == "a1111_pt":
        assert torch.equal(tensors["clip_l"], files["vectors"])


@pytest.mark.parametrize("fmt", ["a1111_pt", pytest.param("diffusers", marks=pytest.mark.slow)])
def test_embedding_render_equals_diffusers_pipeline_with_the_same_embedding(files, fmt):
    spec = EmbeddingSpec(fmt, str(files[fmt]), TOKEN)
    c = cell(prompt=PROMPT, embedding=spec, embedding_token=TOKEN, steps=STEPS)
    ours = render_cells([c])[c]

    pipe = tiny_pipeline()
    pipe.load_textual_inversion(read_embedding(spec)["clip_l"], token=TOKEN)
    pipe.scheduler = build_scheduler(get_sampler("Euler a"), pipe.scheduler.config, [0])
    ref = pipe(prompt=PROMPT, negative_prompt="", num_inference_steps=STEPS, guidance_scale=7.0,
               generator=torch.Generator("cpu").manual_seed(0), height=64, width=64, output_type="np").images[0]
    assert max_diff(ours, as_uint8(ref)) <= 1


def test_embeddings_change_the_image_and_none_drops_the_token(files):
    specs = [EmbeddingSpec(k, str(files[k]), TOKEN) for k in ("a1111_pt", "a1111_st", "diffusers")]
    with_emb = [cell(prompt=PROMPT, embedding=s, embedding_token=TOKEN, steps=STEPS) for s in specs]
    none = cell(prompt=PROMPT, embedding_token=TOKEN, steps=STEPS)
    plain = cell(prompt=strip_token(PROMPT, TOKEN), steps=STEPS)
    images = render_cells(with_emb + [none, plain])
    assert strip_token(PROMPT, TOKEN) == "a photo of a cat"
    assert max_diff(images[none], images[plain]) <= 1
    for c in with_emb:
        assert mean_diff(images[c], images[none]) > 1
    assert mean_diff(images[with_emb[0]], images[with_emb[1]]) > 1


def test_an_embedding_in_the_negative_prompt_acts_there(files):
    spec = EmbeddingSpec("a1111_st", str(files["a1111_st"]), TOKEN)
    neg = cell(prompt="a cat", negative=TOKEN, embedding=spec, embedding_token=TOKEN, steps=STEPS)
    none = cell(prompt="a cat", negative=TOKEN, embedding_token=TOKEN, steps=STEPS)
    images = render_cells([neg, none])
    assert mean_diff(images[neg], images[none]) > 1


def test_a_pickled_embedding_is_read_with_weights_only(files, tmp_path, compose_cfg):
    import argparse

    evil = tmp_path / "evil.pt"   # an object weights_only=True refuses to build
    torch.save({"string_to_param": {"*": torch.zeros(1, 32)}, "obj": argparse.Namespace(x=1)}, str(evil))
    cfg = compose_cfg([f"embedding={evil}", "allow_pickle_embeddings=true", f"prompt='{PROMPT}'"])
    with pytest.raises(ConfigError) as err:
        make_plan([cfg])
    assert "embedding='evil'" in str(err.value) and "cannot read" in str(err.value)
@pytest.mark.slow
def test_rows_metadata_and_grid_name_the_embedding(files, compose_cfg):
    cfgs = [compose_cfg(["name=emb", "steps=2", f"prompt='{PROMPT}'", f"+embeddings.styleB={files['a1111_st']}",
                         f"embedding={e}", "run.progress=false"]) for e in ("none", "styleB")]
    out = run_sweep(cfgs, ["embedding"], log=lambda *a: None)
    rows = __import__("sdexp").load_rows(out["folder"]).set_index("embedding", drop=False)
    b = rows.loc["styleB"]
    from sdexp.hashing import file_sha256
    from PIL import Image

    assert b.embedding_hash == file_sha256(files["a1111_st"]) and b.embedding_token == TOKEN
    assert rows.embedding.isna().sum() == 1
    params = parse_a1111_parameters(Image.open(out["folder"] / b.image_path).info["parameters"])
    assert params["prompt"] == "a photo of a cat, styleB"             # A1111 calls it by its name
    assert params["TI hashes"] == f'"styleB: {b.embedding_hash[:12]}"'
    assert [g.name for g in out["grids"]] == ["grid-embedding-x.png"]
