"""Single-file checkpoints: export to the original layout and load back offline, on real (tiny) models."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sdexp import single_file, tiny

SD15_PARAMS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(tiny.tiny_model_folder(), local_files_only=True)


@pytest.fixture(scope="module")
def tiny_alt_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(tiny.tiny_vae_folder("tiny_alt"), local_files_only=True)


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory) -> Path:
    """The tiny model's JSON configs and tokenizer files, without weights."""
    folder = tmp_path_factory.mktemp("skeleton")
    shutil.copytree(
        tiny.tiny_model_folder(), folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.safetensors", "*.bin")
    )
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    assert files and all(f.endswith(".json") for f in files), files
    return folder


@pytest.fixture(scope="module")
def checkpoint(pipe, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    single_file.save_original_checkpoint(pipe, path)
    return path


def assert_same_weights(expected, actual):
    a, b = expected.state_dict(), actual.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_checkpoint_is_in_original_layout(checkpoint):
    tensors = load_file(checkpoint)
    prefixes = (single_file.UNET_PREFIX, single_file.VAE_PREFIX, single_file.CLIP_PREFIX + "text_model.")
    assert all(k.startswith(prefixes) for k in tensors)
    # The key diffusers uses to recognise an SD1 checkpoint, and a few landmarks of the layout.
    assert "model.diffusion_model.output_blocks.11.0.skip_connection.weight" in tensors
    assert "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight" in tensors
    assert "model.diffusion_model.output_blocks.5.2.conv.weight" in tensors  # upsampler after attention
    assert "model.diffusion_model.output_blocks.2.1.conv.weight" in tensors  # upsampler without attention
    assert "first_stage_model.decoder.up.3.upsample.conv.weight" in tensors
    assert tensors["first_stage_model.decoder.mid.attn_1.q.weight"].shape == (64, 64, 1, 1)
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in tensors
@pytest.mark.slow
def test_pipeline_round_trip(pipe, checkpoint, skeleton):
    loaded = single_file.load_pipeline_file(checkpoint, skeleton=str(skeleton))
    for name in ("unet", "vae", "text_encoder"):
        assert_same_weights(getattr(pipe, name), getattr(loaded, name))
    assert type(loaded.scheduler) is type(pipe.scheduler)
    assert dict(loaded.scheduler.config) == dict(pipe.scheduler.config)
    assert loaded.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert loaded.safety_checker is None


@pytest.mark.parametrize("form", ["pipeline folder", "vae folder"])
def test_vae_round_trip(tiny_alt_vae, skeleton, tmp_path, form):
    path = tmp_path / "tiny_alt.safetensors"
    single_file.save_original_vae(tiny_alt_vae, path)
    tensors = load_file(path)
    assert "encoder.down.0.block.0.norm1.weight" in tensors
    assert "decoder.up.0.block.2.conv2.weight" in tensors
    assert tensors["decoder.mid.attn_1.q.weight"].shape == (64, 64, 1, 1)
    assert tensors["encoder.mid.attn_1.proj_out.weight"].shape == (64, 64, 1, 1)

    config = skeleton if form == "pipeline folder" else skeleton / "vae"
    assert_same_weights(tiny_alt_vae, single_file.load_vae_file(path, skeleton=str(config)))


def test_vae_from_full_checkpoint(pipe, checkpoint, skeleton):
    assert_same_weights(pipe.vae, single_file.load_vae_file(checkpoint, skeleton=str(skeleton)))


def test_pickle_needs_allow_pickle(pipe, checkpoint, skeleton, tmp_path, monkeypatch):
    ckpt = tmp_path / "tiny.ckpt"
    torch.save(dict(load_file(checkpoint)), ckpt)
    with pytest.raises(ValueError, match=re.escape(str(ckpt)) + ".*allow_pickle"):
        single_file.load_pipeline_file(ckpt, skeleton=str(skeleton))

    monkeypatch.setenv("SDEXP_CACHE", str(tmp_path / "cache"))
    loaded = single_file.load_pipeline_file(ckpt, skeleton=str(skeleton), allow_pickle=True)
    for name in ("unet", "vae", "text_encoder"):
        assert_same_weights(getattr(pipe, name), getattr(loaded, name))
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert (tmp_path / "cache" / "converted" / f"{digest}.safetensors").is_file()


def test_pickle_state_dict_is_unwrapped(tiny_alt_vae, skeleton, tmp_path, monkeypatch):
    monkeypatch.setenv("SDEXP_CACHE", str(tmp_path / "cache"))
    st = tmp_path / "vae.safetensors"
    single_file.save_original_vae(tiny_alt_vae, st)
    pt = tmp_path / "vae.pt"
    torch.save({"state_dict": dict(load_file(st)), "global_step": 7}, pt)
    with pytest.raises(ValueError, match=re.escape(str(pt))):
        single_file.load_vae_file(pt, skeleton=str(skeleton))
    assert_same_weights(tiny_alt_vae, single_file.load_vae_file(pt, skeleton=str(skeleton), allow_pickle=True))


def _mark(path):
    Path(path).write_text("code ran")


class _RunsCodeWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return _mark, (str(self.path),)


def test_pickle_with_code_is_refused_even_when_allowed(skeleton, tmp_path, monkeypatch):
    monkeypatch.setenv("SDEXP_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _RunsCodeWhenUnpickled(marker)}, evil)
    with pytest.raises(ValueError, match=re.escape(str(evil))):
        single_file.load_pipeline_file(evil, skeleton=str(skeleton), allow_pickle=True)
    assert not marker.exists()


@pytest.mark.parametrize("load", [single_file.load_pipeline_file, single_file.load_vae_file])
def test_bad_suffix_and_missing_file(load, skeleton, tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\0")
    with pytest.raises(ValueError, match=re.escape(str(bad)) + r".*\.safetensors.*\.ckpt"):
        load(bad, skeleton=str(skeleton))
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load(missing, skeleton=str(skeleton))


def test_skeleton_folder_sd15(tmp_path, monkeypatch):
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTokenizer

    monkeypatch.setenv("SDEXP_CACHE", str(tmp_path))
    folder = single_file.skeleton_folder("sd15")
    assert folder.parent == tmp_path / "skeletons" and folder.name.startswith("sd15-")
    assert single_file.skeleton_folder("sd15") == folder
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "tokenizer/vocab.json" in files and "tokenizer/merges.txt" in files
    assert not [f for f in files if f.endswith((".safetensors", ".bin", ".ckpt"))]

    assert UNet2DConditionModel.load_config(folder, subfolder="unet")["cross_attention_dim"] == 768
    assert AutoencoderKL.load_config(folder, subfolder="vae")["scaling_factor"] == 0.18215
    assert CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder").hidden_size == 768
    assert PNDMScheduler.from_pretrained(folder, subfolder="scheduler").config.skip_prk_steps
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.model_max_length == 77

    assert single_file.skeleton_folder(str(tmp_path)) == tmp_path
    with pytest.raises(ValueError, match="no-such-skeleton.*sd15"):
        single_file.skeleton_folder("no-such-skeleton")


def test_shipped_skeleton_is_sd15():
    shipped = single_file.SKELETONS_DIR / "sd15"
    files = sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file())
    assert all(f.endswith(".json") for f in files), files  # configs only: no weights, no vocab
    config = {f: json.loads((shipped / f).read_text()) for f in files}

    unet = config["unet/config.json"]
    assert unet["block_out_channels"] == [320, 640, 1280, 1280]
    assert unet["cross_attention_dim"] == 768 and unet["attention_head_dim"] == 8
    assert unet["layers_per_block"] == 2 and unet["in_channels"] == 4
    vae = config["vae/config.json"]
    assert vae["block_out_channels"] == [128, 256, 512, 512]
    assert vae["latent_channels"] == 4 and vae["scaling_factor"] == 0.18215
    text = config["text_encoder/config.json"]
    assert (text["num_hidden_layers"], text["hidden_size"], text["num_attention_heads"]) == (12, 768, 12)
    scheduler = config["scheduler/scheduler_config.json"]
    assert scheduler["_class_name"] == "PNDMScheduler"
    assert (scheduler["beta_start"], scheduler["beta_end"], scheduler["beta_schedule"]) == (
        0.00085, 0.012, "scaled_linear")
    assert scheduler["steps_offset"] == 1 and scheduler["skip_prk_steps"] and not scheduler["set_alpha_to_one"]


def _sd15_on_meta(folder):
    """The full-size SD1.5 models on the meta device: architecture without memory or weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        return {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder")),
        }


def test_sd15_skeleton_builds_the_sd15_architecture():
    models = _sd15_on_meta(single_file.SKELETONS_DIR / "sd15")
    assert {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()} == SD15_PARAMS


def test_export_mapping_inverts_diffusers_conversion_at_full_size():
    """Full-size SD1.5 names and shapes survive export then diffusers' own original->diffusers conversion."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        infer_diffusers_model_type,
    )

    models = _sd15_on_meta(single_file.SKELETONS_DIR / "sd15")
    unet, vae = models["unet"], models["vae"]
    original = {single_file.UNET_PREFIX + k: v for k, v in
                single_file.unet_to_original(unet.state_dict(), unet.config).items()}
    assert infer_diffusers_model_type(original) == "v1"
    for model, converted in (
        (unet, convert_ldm_unet_checkpoint(original, dict(unet.config))),
        (vae, convert_ldm_vae_checkpoint(single_file.vae_to_original(vae.state_dict(), vae.config), dict(vae.config))),
    ):
        expected = model.state_dict()
        assert converted.keys() == expected.keys()
        assert all(converted[k].shape == expected[k].shape for k in expected)


@pytest.mark.slow
def test_full_size_sd15_round_trip(tmp_path):
    """A randomly initialised full-size SD1.5 (about 4.3 GB in float32) through the default skeleton."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = single_file.skeleton_folder("sd15")
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder"))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, unet=unet,
        tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True),
        scheduler=PNDMScheduler.from_pretrained(folder, subfolder="scheduler"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    path = tmp_path / "sd15.safetensors"
    single_file.save_original_checkpoint(pipe, path)
    loaded = single_file.load_pipeline_file(path)
    for name in ("unet", "vae", "text_encoder"):
        assert_same_weights(getattr(pipe, name), getattr(loaded, name))
