"""SDXL on the tiny SDXL-layout model: loading, two-encoder prompt embeddings with clip skip, added
conditions, renders against diffusers' StableDiffusionXLPipeline, configs-only family detection,
and single-file checkpoints.

References are diffusers' own: `StableDiffusionXLPipeline.encode_prompt` and `__call__` with the
same components, embeddings, steps, guidance scale and generator.
"""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sdexp import models, single_file, tiny, tiny_sdxl
from sdexp.denoise import decode, denoise
from sdexp.models import ModelSpec
from sdexp.samplers import build_scheduler, get_sampler
from sdexp.sdxl import add_time_ids, added_cond, encode_prompts_sdxl

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

CPU = torch.device("cpu")
LAYERS = tiny_sdxl.TEXT_LAYERS                  # (4, 6)
MAX_SKIP = min(LAYERS) - 1                      # 3
EMBED_DIM = sum(tiny_sdxl.HIDDEN)               # 32 + 48
POOLED_DIM = tiny_sdxl.PROJECTION_DIM           # 40
LONG = ", ".join(["a very detailed oil painting of a red fox in a snowy forest at dawn"] * 8)
PROMPTS = ["a photo of a cat", "", LONG]
PROMPT, NEGATIVE = "a photo of a cat", "blurry"
STEPS, SIZE, SEED, CFG = 4, 64, 11, 7.0
PIPELINE_PIXEL_TOL = 1          # in 1/255 steps
BATCH_PIXEL_TOL = 2             # batched vs single: the UNet's reduction order depends on batch size


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl.tiny_sdxl_folder(), local_files_only=True,
                                                     add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def base_config(pipe) -> dict:
    config = dict(pipe.scheduler.config)   # the model's own; tests replace pipe.scheduler
    assert config["_class_name"] == "EulerDiscreteScheduler"
    return config


def encoders(pipe):
    return (pipe.tokenizer, pipe.tokenizer_2), (pipe.text_encoder, pipe.text_encoder_2)


def encode(pipe, prompts, clip_skip=1, zero_empty=False):
    return encode_prompts_sdxl(*encoders(pipe), prompts, clip_skip, zero_empty=zero_empty)


def configs_only(folder: Path, dest: Path) -> Path:
    """A copy of a diffusers folder without any weights."""
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    assert not list(dest.rglob("*.safetensors"))
    return dest


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# loading

def test_tiny_sdxl_loads_through_load_model():
    model = models.load_model(ModelSpec("tiny_sdxl", "tiny_sdxl"), CPU, torch.float32)
    assert model.family == "sdxl"
    assert type(model.pipe).__name__ == "StableDiffusionXLPipeline"
    assert type(model.text_encoder).__name__ == "CLIPTextModel"
    assert type(model.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert (model.text_encoder.config.num_hidden_layers, model.text_encoder_2.config.num_hidden_layers) == LAYERS
    assert model.unet.config.addition_embed_type == "text_time"
    assert model.unet.config.cross_attention_dim == EMBED_DIM
    assert model.vae.config.scaling_factor == 0.13025 and model.vae.config.force_upcast
    assert model.scheduler_config["_class_name"] == "EulerDiscreteScheduler"
    assert model.scheduler_config["timestep_spacing"] == "leading" and model.scheduler_config["steps_offset"] == 1
    # the real CLIP tokenizer twice; the second pads with "!" (id 0) as SDXL's does
    ids = model.tokenizer("a photo of a cat", padding="max_length", max_length=77).input_ids
    ids_2 = model.tokenizer_2("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert ids[:7] == ids_2[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert ids[-1] == 49407 and ids_2[-1] == 0
    assert model.pipe.config.force_zeros_for_empty_prompt
    assert model.hash and model.vae_hash
@pytest.mark.slow
def test_float16_keeps_the_sdxl_vae_in_float32():
    """As diffusers upcasts an SDXL VAE (force_upcast) to decode; everything else is float16."""
    model = models.load_model(ModelSpec("tiny_sdxl", "tiny_sdxl"), CPU, torch.float16)
    assert model.unet.dtype == model.text_encoder.dtype == model.text_encoder_2.dtype == torch.float16
    assert model.vae.dtype == torch.float32


# prompt embeddings and clip skip

@pytest.mark.parametrize("n", range(1, MAX_SKIP + 1))
def test_embeddings_match_diffusers_encode_prompt(pipe, n):
    """sdexp clip_skip=N is diffusers' SDXL clip_skip=N-1 (None for N=1)."""
    embeds, pooled = encode(pipe, PROMPTS, n)
    assert embeds.shape == (3, 77, EMBED_DIM) and pooled.shape == (3, POOLED_DIM)
    expected, _, expected_pooled, _ = pipe.encode_prompt(
        PROMPTS, device="cpu", do_classifier_free_guidance=False, clip_skip=None if n == 1 else n - 1)
    torch.testing.assert_close(embeds, expected, rtol=0, atol=0)
    torch.testing.assert_close(pooled, expected_pooled, rtol=0, atol=0)


@pytest.mark.parametrize("n", range(1, MAX_SKIP + 1))
def test_embeddings_are_hidden_states_of_both_encoders(pipe, n):
    """Independently of diffusers: hidden_states[-(N+1)] of both encoders, no final layer norm, concatenated;
    pooled is text_encoder_2's text_embeds."""
    embeds, pooled = encode(pipe, PROMPTS, n)
    parts = []
    with torch.no_grad():
        for tokenizer, text_encoder in zip(*encoders(pipe)):
            ids = tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
            out = text_encoder(ids.input_ids, output_hidden_states=True)
            assert len(out.hidden_states) == text_encoder.config.num_hidden_layers + 1
            parts.append(out.hidden_states[-(n + 1)])
    torch.testing.assert_close(embeds, torch.cat(parts, dim=-1), rtol=0, atol=0)
    torch.testing.assert_close(pooled, out.text_embeds, rtol=0, atol=0)


def test_clip_skip_changes_embeddings_but_not_pooled(pipe):
    results = {n: encode(pipe, PROMPTS, n) for n in range(1, MAX_SKIP + 1)}
    for a, b in itertools.combinations(results, 2):
        # both encoders' parts change: the first 32 columns are text_encoder's, the other 48 text_encoder_2's
        for part_a, part_b in zip(*(results[n][0].split(list(tiny_sdxl.HIDDEN), dim=-1) for n in (a, b))):
            diff = (part_a - part_b).abs().max().item()
            assert diff > 1e-2, f"clip_skip {a} and {b}: max difference {diff}"
        torch.testing.assert_close(results[a][1], results[b][1], rtol=0, atol=0)


@pytest.mark.parametrize("bad", [0, MAX_SKIP + 1, -1])
def test_out_of_range_clip_skip_names_valid_range(pipe, bad):
    with pytest.raises(ValueError, match=rf"clip_skip={bad}\b.*1\.\.{MAX_SKIP}\b"):
        encode(pipe, PROMPTS, bad)


def test_zero_empty_matches_diffusers_force_zeros(pipe):
    """SDXL's force_zeros_for_empty_prompt: diffusers zeros a missing negative prompt; zero_empty zeros ""."""
    _, negative, _, negative_pooled = pipe.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=True)
    assert not negative.any() and not negative_pooled.any()
    embeds, pooled = encode(pipe, ["", NEGATIVE], zero_empty=True)
    torch.testing.assert_close(embeds[:1], negative, rtol=0, atol=0)
    torch.testing.assert_close(pooled[:1], negative_pooled, rtol=0, atol=0)
    plain, plain_pooled = encode(pipe, ["", NEGATIVE])
    torch.testing.assert_close(embeds[1:], plain[1:], rtol=0, atol=0)   # only empty prompts are zeroed
    assert plain[0].abs().max() > 0.1 and plain_pooled[0].abs().max() > 0.1
    _, encoded_empty, _, encoded_empty_pooled = pipe.encode_prompt(
        PROMPT, device="cpu", do_classifier_free_guidance=True, negative_prompt="")
    empty, empty_pooled = encode(pipe, [""])     # batch of one like diffusers': bit-identical
    torch.testing.assert_close(empty, encoded_empty, rtol=0, atol=0)
    torch.testing.assert_close(empty_pooled, encoded_empty_pooled, rtol=0, atol=0)


def test_add_time_ids_match_diffusers(pipe):
    expected = pipe._get_add_time_ids((96, 64), (0, 0), (96, 64), dtype=torch.float32,
                                      text_encoder_projection_dim=POOLED_DIM)
    got = add_time_ids(96, 64, 3, torch.float32, CPU)
    assert got.shape == (3, 6) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected.repeat(3, 1), rtol=0, atol=0)
    assert got[0].tolist() == [96, 64, 0, 0, 96, 64]   # (height, width) first, as diffusers orders them


# renders against StableDiffusionXLPipeline
#
# On this random-weight model the added conditions move the latents by 0.4-4% (relative), which the
# tiny VAE can squash to a pixel or two, so renders are compared on latents as well as on pixels.
# Same ops on the same batch as the pipeline: latents measured bit-identical.

LATENT_RTOL = 1e-5          # max |ours - pipeline| / max |pipeline|, for the same batch
EFFECT_RTOL = 1e-3          # the least change an added condition must make, relative


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def generators(seeds):
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


def sdexp_latents(pipe, base_config, prompts, negatives, seeds, cfgs, height=SIZE, width=SIZE, size_ids=None):
    """sdexp's render; `size_ids` = (height, width) claimed in the added time ids (default: the real size)."""
    size_ids = size_ids or (height, width)
    cond, pooled = encode(pipe, prompts)
    uncond = uncond_pooled = None
    if cfgs[0] > 1:
        uncond, uncond_pooled = encode(pipe, negatives)
    return denoise(
        pipe.unet, build_scheduler(get_sampler("euler"), base_config, seeds), cond, uncond, cfgs,
        generators(seeds), STEPS, height, width, added_cond=added_cond(pooled, *size_ids),
        added_uncond=None if uncond is None else added_cond(uncond_pooled, *size_ids))


def pipeline_render(pipe, base_config, prompt, negative, seed, cfg, height=SIZE, width=SIZE):
    """(latents, uint8 image) from StableDiffusionXLPipeline with sdexp's embeddings."""
    cond, pooled = encode(pipe, [prompt])
    kwargs = {}
    if cfg > 1:
        uncond, uncond_pooled = encode(pipe, [negative])
        kwargs = {"negative_prompt_embeds": uncond, "negative_pooled_prompt_embeds": uncond_pooled}
    out = {}
    for output_type in ("latent", "np"):
        pipe.scheduler = build_scheduler(get_sampler("euler"), base_config, [seed])
        out[output_type] = pipe(
            prompt_embeds=cond, pooled_prompt_embeds=pooled, num_inference_steps=STEPS, guidance_scale=cfg,
            generator=torch.Generator("cpu").manual_seed(seed), height=height, width=width,
            output_type=output_type, **kwargs).images
    return out["latent"], (out["np"][0] * 255).round().astype("uint8")   # as diffusers' PIL conversion rounds


def test_render_matches_pipeline(pipe, base_config):
    latents = sdexp_latents(pipe, base_config, [PROMPT], [NEGATIVE], [SEED], [CFG])
    image = decode(pipe.vae, latents)[0]
    reference_latents, reference = pipeline_render(pipe, base_config, PROMPT, NEGATIVE, SEED, CFG)
    assert rel_diff(latents, reference_latents) <= LATENT_RTOL
    assert image.shape == (SIZE, SIZE, 3)
    assert image.std() > 5, "degenerate (flat) image"
    assert max_diff(image, reference) <= PIPELINE_PIXEL_TOL


def test_render_without_guidance_matches_pipeline_non_square(pipe, base_config):
    """cfg 1 skips the unconditional pass; 96 high x 64 wide also checks the order of the size ids."""
    latents = sdexp_latents(pipe, base_config, [PROMPT], [NEGATIVE], [SEED], [1.0], height=96, width=64)
    image = decode(pipe.vae, latents)[0]
    assert image.shape == (96, 64, 3)
    reference_latents, reference = pipeline_render(pipe, base_config, PROMPT, NEGATIVE, SEED, 1.0, 96, 64)
    assert rel_diff(latents, reference_latents) <= LATENT_RTOL
    assert max_diff(image, reference) <= PIPELINE_PIXEL_TOL
    # the size ids in the other order give other latents, so the match above checks the order
    swapped = sdexp_latents(pipe, base_config, [PROMPT], [NEGATIVE], [SEED], [1.0], 96, 64, size_ids=(64, 96))
    assert rel_diff(swapped, reference_latents) > EFFECT_RTOL
@pytest.mark.slow
def test_batched_render_matches_single_renders(pipe, base_config):
    """Two prompts (so two pooled embeddings) with two guidance scales in one batch: each sample keeps
    its own added conditions."""
    prompts, negatives, seeds, cfgs = [PROMPT, "a red apple"], [NEGATIVE, ""], [1, 2], [3.0, CFG]
    batch = sdexp_latents(pipe, base_config, prompts, negatives, seeds, cfgs)
    images = decode(pipe.vae, batch)
    for i, args in enumerate(zip(prompts, negatives, seeds, cfgs)):
        single = sdexp_latents(pipe, base_config, *([a] for a in args))
        assert rel_diff(batch[i:i + 1], single) <= 1e-3      # batch-size rounding only (test_samplers.py)
        assert max_diff(images[i], decode(pipe.vae, single)[0]) <= BATCH_PIXEL_TOL
        # and not the other sample's conditions: its prompt alone with the other guidance scale differs more
        other = sdexp_latents(pipe, base_config, [prompts[1 - i]], [negatives[1 - i]], [seeds[i]], [cfgs[i]])
        assert rel_diff(other, single) > 10 * rel_diff(batch[i:i + 1], single) + EFFECT_RTOL


def test_added_conditions_matter(pipe, base_config):
    """The render depends on the pooled embedding and on the size ids, so the parity above is not vacuous."""
    cond, pooled = encode(pipe, [PROMPT])

    def latents(text_embeds, time_ids):
        return denoise(pipe.unet, build_scheduler(get_sampler("euler"), base_config, [SEED]), cond, None, [1.0],
                       generators([SEED]), STEPS, SIZE, SIZE,
                       added_cond={"text_embeds": text_embeds, "time_ids": time_ids})

    time_ids = add_time_ids(SIZE, SIZE, 1, torch.float32, CPU)
    base = latents(pooled, time_ids)
    assert rel_diff(latents(torch.zeros_like(pooled), time_ids), base) > EFFECT_RTOL
    assert rel_diff(latents(pooled, add_time_ids(1024, 1024, 1, torch.float32, CPU)), base) > EFFECT_RTOL


# family and clip-skip range from configs alone

def test_model_family_from_configs_alone(tmp_path):
    sdxl_configs = configs_only(tiny_sdxl.tiny_sdxl_folder(), tmp_path / "sdxl")
    sd1_configs = configs_only(tiny.tiny_model_folder(), tmp_path / "sd1")
    empty_file = tmp_path / "model.safetensors"
    empty_file.write_bytes(b"")           # never read: the family comes from the skeleton
    cases = {
        ModelSpec("tiny_sdxl", "tiny_sdxl"): ("sdxl", MAX_SKIP),
        ModelSpec("tiny", "tiny"): ("sd1", 12),
        ModelSpec("a", str(sdxl_configs)): ("sdxl", MAX_SKIP),
        ModelSpec("b", str(sd1_configs)): ("sd1", 12),
        ModelSpec("c", str(empty_file), skeleton="sdxl"): ("sdxl", 11),          # SDXL base: min(12, 32) - 1
        ModelSpec("d", str(empty_file), skeleton="sd15"): ("sd1", 12),
        ModelSpec("e", str(empty_file), skeleton=str(sdxl_configs)): ("sdxl", MAX_SKIP),
    }
    for spec, (family, max_skip) in cases.items():
        assert models.model_family(spec) == family, spec
        assert models.text_encoder_layers(spec) == max_skip, spec
    assert "tiny_sdxl" in models.MODEL_BUILTINS and "tiny" in models.MODEL_BUILTINS


# single-file checkpoints

@pytest.fixture(scope="module")
def sdxl_checkpoint(pipe, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny_sdxl.safetensors"
    single_file.save_original_checkpoint(pipe, path)
    return path


def test_sdxl_checkpoint_is_in_original_layout(sdxl_checkpoint):
    tensors = load_file(sdxl_checkpoint)
    prefixes = (single_file.UNET_PREFIX, single_file.VAE_PREFIX, single_file.SDXL_CLIP_PREFIX + "text_model.",
                single_file.SDXL_OPEN_CLIP_PREFIX)
    assert all(k.startswith(prefixes) for k in tensors)
    unet = single_file.UNET_PREFIX
    assert tensors[unet + "label_emb.0.0.weight"].shape == (4 * 32, 6 * tiny_sdxl.TIME_EMBED_DIM + POOLED_DIM)
    assert unet + "input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight" in tensors   # 2 transformer layers
    assert unet + "output_blocks.2.2.conv.weight" in tensors                              # upsampler after attention
    open_clip = single_file.SDXL_OPEN_CLIP_PREFIX
    hidden = tiny_sdxl.HIDDEN[1]
    assert tensors[open_clip + "text_projection"].shape == (hidden, POOLED_DIM)
    assert tensors[open_clip + "transformer.resblocks.5.attn.in_proj_weight"].shape == (3 * hidden, hidden)
    assert open_clip + "positional_embedding" in tensors and open_clip + "ln_final.weight" in tensors
    assert single_file.SDXL_CLIP_PREFIX + "text_model.final_layer_norm.weight" in tensors
@pytest.mark.slow
def test_sdxl_single_file_round_trip(pipe, sdxl_checkpoint, tmp_path):
    skeleton = configs_only(tiny_sdxl.tiny_sdxl_folder(), tmp_path / "skeleton")
    model = models.load_model(ModelSpec("file", str(sdxl_checkpoint), skeleton=str(skeleton)), CPU, torch.float32)
    assert model.family == "sdxl" and type(model.pipe).__name__ == "StableDiffusionXLPipeline"
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        expected, actual = getattr(pipe, name).state_dict(), getattr(model.pipe, name).state_dict()
        assert expected.keys() == actual.keys(), name
        assert all(torch.equal(expected[k], actual[k]) for k in expected), name
    assert model.tokenizer_2.pad_token == "!"
@pytest.mark.slow
def test_shipped_sdxl_skeleton(tmp_path, monkeypatch):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    monkeypatch.setenv("SDEXP_CACHE", str(tmp_path))
    folder = single_file.skeleton_folder("sdxl")
    assert single_file.skeleton_is_sdxl(folder) and not single_file.skeleton_is_sdxl(single_file.skeleton_folder("sd15"))
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    for sub in ("tokenizer", "tokenizer_2"):
        assert f"{sub}/vocab.json" in files and f"{sub}/merges.txt" in files
    assert not [f for f in files if f.endswith((".safetensors", ".bin", ".ckpt"))]
    ids = [CLIPTokenizer.from_pretrained(folder, subfolder=sub, local_files_only=True)(
        "a photo of a cat", padding="max_length", max_length=77).input_ids for sub in ("tokenizer", "tokenizer_2")]
    assert ids[0][:7] == ids[1][:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert (ids[0][-1], ids[1][-1]) == (49407, 0)
    assert EulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler").config.timestep_spacing == "leading"
    # SDXL base 1.0's architecture, by parameter count
    with torch.device("meta"):
        built = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder")),
            "text_encoder_2": CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder_2")),
        }
    assert {k: sum(p.numel() for p in m.parameters()) for k, m in built.items()} == {
        "unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840}
    assert built["vae"].config.scaling_factor == 0.13025 and built["vae"].config.force_upcast

    # export mapping at full size, on the meta device: diffusers recognises SDXL base and converts back
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_open_clip_checkpoint,
        infer_diffusers_model_type,
    )

    unet, text_encoder_2 = built["unet"], built["text_encoder_2"]
    original = {single_file.UNET_PREFIX + k: v
                for k, v in single_file.unet_to_original(unet.state_dict(), unet.config).items()}
    original.update({single_file.SDXL_OPEN_CLIP_PREFIX + k: v
                     for k, v in single_file.open_clip_to_original(text_encoder_2.state_dict()).items()})
    assert infer_diffusers_model_type(original) == "xl_base"
    for model, converted in (
        (unet, convert_ldm_unet_checkpoint(original, dict(unet.config))),
        (text_encoder_2, convert_open_clip_checkpoint(text_encoder_2, original, single_file.SDXL_OPEN_CLIP_PREFIX)),
    ):
        expected = model.state_dict()
        assert converted.keys() == expected.keys()
        assert all(converted[k].shape == expected[k].shape for k in expected)


# ---- the engine on SDXL: prompts in, PNGs out, as plain diffusers renders them ---------------------

def test_engine_renders_sdxl_like_the_pipeline_from_prompts(pipe, base_config):
    """sdexp's engine from text (empty negative prompt zeroed as A1111 does) against
    StableDiffusionXLPipeline given the same text and no negative prompt (its force-zeros path)."""
    from render_helpers import render_cells
    from sdexp.plan import Cell
    from sdexp.models import VaeSpec

    spec = ModelSpec("tiny_sdxl", "tiny_sdxl")
    cells = [Cell(spec, VaeSpec("Automatic", None), "Euler", STEPS, cfg, skip, SEED, PROMPT, "", SIZE, SIZE)
             for cfg in (1.0, CFG) for skip in (1, 2)]
    images = render_cells(cells)
    for c in [c for c in cells if c.clip_skip == 1 or c.cfg <= 1]:   # diffusers' negative ignores clip skip
        pipe.scheduler = build_scheduler(get_sampler("euler"), base_config, [SEED])
        ref = pipe(prompt=PROMPT, num_inference_steps=STEPS, guidance_scale=c.cfg, height=SIZE, width=SIZE,
                   clip_skip=None if c.clip_skip == 1 else c.clip_skip - 1,
                   generator=torch.Generator("cpu").manual_seed(SEED), output_type="np").images[0]
        assert max_diff(images[c], (ref * 255).round().astype("uint8")) <= PIPELINE_PIXEL_TOL


@pytest.mark.slow
def test_sdxl_takes_a_diffusers_lora_and_refuses_an_sd1_embedding(pipe, base_config, tmp_path):
    from adapter_files import embedding_vectors, write_a1111_safetensors, write_diffusers_lora
    from render_helpers import render_cells
    from sdexp.embeddings import EmbeddingSpec
    from sdexp.lora import LoraSpec
    from sdexp.models import VaeSpec
    from sdexp.plan import Cell

    path = write_diffusers_lora(tmp_path / "lora", pipe)
    spec = ModelSpec("tiny_sdxl", "tiny_sdxl")
    auto = VaeSpec("Automatic", None)
    lora = LoraSpec("xl", str(path))
    cells = [Cell(spec, auto, "Euler", STEPS, CFG, 1, SEED, PROMPT, "", SIZE, SIZE, lora=lora, lora_weight=w)
             for w in (0.0, 1.0)]
    images = render_cells(cells)
    assert max_diff(images[cells[0]], images[cells[1]]) > 0

    emb = EmbeddingSpec("sd1", str(write_a1111_safetensors(tmp_path / "sd1.safetensors",
                                                           embedding_vectors(pipe.text_encoder))), "<e>")
    bad = Cell(spec, auto, "Euler", STEPS, CFG, 1, SEED, "a <e>", "", SIZE, SIZE, embedding=emb, embedding_token="<e>")
    with pytest.raises(ValueError, match="embedding='sd1'.*SD1 embedding.*clip_l and clip_g"):
        render_cells([bad])      # the engine refuses it too, should a cell bypass the planner
    from sdexp.embeddings import check_embedding_fits, read_embedding

    with pytest.raises(ValueError, match=r"embedding='sd1'.*width \(32,\).*\(32, 48\).*SDXL embedding"):
        check_embedding_fits(emb, read_embedding(emb), spec)
@pytest.mark.slow
def test_checkpoint_axis_detects_an_sdxl_file_and_its_size(sdxl_checkpoint, compose_cfg):
    """`checkpoint=<SDXL file>` needs no model.skeleton: the file's tensor names say SDXL, and an
    SDXL checkpoint defaults to 1024x1024 unless width, height or size are given."""
    from sdexp.plan import make_plan

    plan = make_plan([compose_cfg([f"checkpoint={sdxl_checkpoint}", "prompts=single"])])
    c = plan.cells[0]
    assert c.model.skeleton == "sdxl" and (c.width, c.height) == (1024, 1024)
    plan = make_plan([compose_cfg([f"checkpoint={sdxl_checkpoint}", "prompts=single", "width=768"])])
    assert (plan.cells[0].width, plan.cells[0].height) == (768, 1024)
    plan = make_plan([compose_cfg(["prompts=single"])])          # the model group's own size
    assert (plan.cells[0].width, plan.cells[0].height) == (64, 64)


def fresh_pipe(cls_name="StableDiffusionXLPipeline"):
    import diffusers

    p = getattr(diffusers, cls_name).from_pretrained(tiny_sdxl.tiny_sdxl_folder(), local_files_only=True,
                                                     add_watermarker=False)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.mark.slow
def test_sdxl_embedding_acts_in_both_encoders_like_diffusers(tmp_path):
    """An SDXL embedding (clip_l and clip_g vectors) through the engine equals diffusers' pipeline
    with the same vectors loaded into both text encoders."""
    from safetensors.torch import save_file

    from render_helpers import render_cells
    from sdexp.embeddings import EmbeddingSpec
    from sdexp.models import VaeSpec
    from sdexp.plan import Cell

    g = torch.Generator().manual_seed(3)
    vectors = {"clip_l": torch.randn(2, 32, generator=g) * 2, "clip_g": torch.randn(2, 48, generator=g) * 2}
    path = tmp_path / "xl_style.safetensors"
    save_file(vectors, str(path))
    prompt = "a photo of a cat, <e>"
    spec, auto = ModelSpec("tiny_sdxl", "tiny_sdxl"), VaeSpec("Automatic", None)
    emb = EmbeddingSpec("xl_style", str(path), "<e>")
    cells = [Cell(spec, auto, "Euler", STEPS, CFG, 1, SEED, prompt, "", SIZE, SIZE, embedding=e, embedding_token="<e>")
             for e in (emb, None)]
    images = render_cells(cells)
    assert max_diff(images[cells[0]], images[cells[1]]) > 0

    ref_pipe = fresh_pipe()
    ref_pipe.load_textual_inversion(vectors["clip_l"], token="<e>", tokenizer=ref_pipe.tokenizer,
                                    text_encoder=ref_pipe.text_encoder)
    ref_pipe.load_textual_inversion(vectors["clip_g"], token="<e>", tokenizer=ref_pipe.tokenizer_2,
                                    text_encoder=ref_pipe.text_encoder_2)
    ref_pipe.scheduler = build_scheduler(get_sampler("euler"), dict(ref_pipe.scheduler.config), [SEED])
    ref = ref_pipe(prompt=prompt, num_inference_steps=STEPS, guidance_scale=CFG, height=SIZE, width=SIZE,
                   generator=torch.Generator("cpu").manual_seed(SEED), output_type="np").images[0]
    assert max_diff(images[cells[0]], (ref * 255).round().astype("uint8")) <= PIPELINE_PIXEL_TOL
@pytest.mark.slow
def test_sdxl_img2img_equals_diffusers_sdxl_img2img(tmp_path):
    from PIL import Image

    from render_helpers import render_cells
    from sdexp.img2img import init_images
    from sdexp.models import VaeSpec
    from sdexp.plan import Cell

    rng = np.random.RandomState(1)
    Image.fromarray((rng.rand(SIZE, SIZE, 3) * 255).astype("uint8")).save(tmp_path / "init.png")
    init = init_images(str(tmp_path / "init.png"))[0]
    spec, auto = ModelSpec("tiny_sdxl", "tiny_sdxl"), VaeSpec("Automatic", None)
    c = Cell(spec, auto, "Euler", 8, CFG, 1, SEED, PROMPT, "", SIZE, SIZE, init_image=init, strength=0.5)
    ours = render_cells([c])[c]

    ref_pipe = fresh_pipe("StableDiffusionXLImg2ImgPipeline")
    ref_pipe.scheduler = build_scheduler(get_sampler("euler"), dict(ref_pipe.scheduler.config), [SEED])
    ref = ref_pipe(prompt=PROMPT, image=Image.open(init.source), strength=0.5, num_inference_steps=8,
                   guidance_scale=CFG, generator=torch.Generator("cpu").manual_seed(SEED),
                   output_type="np").images[0]
    assert max_diff(ours, (ref * 255).round().astype("uint8")) <= PIPELINE_PIXEL_TOL
