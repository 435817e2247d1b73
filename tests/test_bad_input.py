"""Bad input fails before any model loads, with a message naming key, value and valid choices,
and leaves results/ exactly as it was."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

import sdexp.models
from sdexp.plan import ConfigError
from sdexp.sweep import run_sweep
from helpers import tree_state

# (overrides, fragments every one of which the message must contain)
CASES = [
    (["sampler=foo"], ["sampler='foo'", "euler_a", "dpmpp_2m_karras"]),
    (["model.source=nosuchmodel"], ["model.source='nosuchmodel'", "'tiny'", "Hugging Face id"]),
    (["model.source=/missing/model.safetensors"], ["model.source='/missing/model.safetensors'", "not found"]),
    (["vae.source=/missing/vae.safetensors"], ["vae.source='/missing/vae.safetensors'", "not found"]),
    (["vae.source=nosuchvae"], ["vae.source='nosuchvae'", "'tiny_alt'"]),
    (["clip_skip=0"], ["clip_skip=0", "1..12"]),
    (["clip_skip=13"], ["clip_skip=13", "1..12"]),
    (["steps=0"], ["steps=0", ">= 1"]),
    (["steps=1000000000"], ["steps=1000000000", "<= 1000"]),        # unbounded, it once took all memory
    (["seed=[0,9223372036854775808]"], ["seed=9223372036854775808", "0..4294967295"]),
    (["cfg=-1"], ["cfg=-1", ">= 0"]),
    (["width=65"], ["width=65", "multiple of 8"]),
    (["height=100"], ["height=100", "multiple of 8"]),
    (["prompts.items=[]"], ["prompt set is empty", "prompts.items"]),
    (["prompt=''"], ["prompt set is empty"]),
    (["prompts.file=/missing/prompts.txt"], ["prompts.file='/missing/prompts.txt'", "not found"]),
    (["prompts.file=prompts.json"], ["prompts.file='prompts.json'", ".txt"]),
    (["prompts.file=binary.txt"], ["prompts.file='binary.txt' is not UTF-8 text"]),
    (["grid.x=steps", "prompts=single"], ["grid.x='steps'", "not a swept axis", "nothing is swept"]),
    (["grid.y=colour"], ["grid.y='colour'", "not a swept axis", "valid: prompt"]),
    (["seed=-2"], ["seed=-2", "-1 for random"]),
    # axis values are typed by the axis registry (lists and ranges pass Hydra), so they fail at plan time
    (["steps=abc"], ["steps='abc'", "not an integer", "1..1000"]),
    (["cfg=[3,x]"], ["cfg='x'", "not a number"]),
    (["steps='10-1'"], ["steps=", "holds no values"]),
    (["seed=abc"], ["seed='abc'", "-1 for random"]),
    (["run.batch_size=0"], ["run.batch_size=0", ">= 1"]),
    (["run.dtype=float8"], ["run.dtype='float8'", "bfloat16"]),
    (["run.backend=spark"], ["run.backend='spark'", "local, ray"]),
    (["run.backend=ray", "ray.workers=0"], ["ray.workers=0", ">= 1"]),
    (["run.backend=ray", "ray.address=nowhere"], ["ray.address='nowhere'", "host:port"]),
    (["run.backend=ray", "ray.cpus_per_worker=0"], ["ray.cpus_per_worker=0", "> 0"]),
    # the axes of LoRAs, embeddings, img2img, prompt S/R and size (files written by write_input_files)
    (["lora=nope"], ["lora='nope'", "loras", "'none'"]),
    (["lora=garbage.safetensors"], ["lora='garbage'", "not a readable .safetensors"]),
    (["lora=two_keys.safetensors"], ["lora='two_keys'", "holds no LoRA weights"]),
    (["lora=model.ckpt"], ["lora=", "unsupported file type '.ckpt'", ".safetensors"]),
    (["+loras.styleA=missing.safetensors", "lora=styleA"], ["loras.styleA=", "file not found"]),
    (["lora_weight=0.5,1"], ["lora_weight is swept", "no job sets a lora"]),
    (["lcm.lora=nope", "sampler=lcm"], ["lcm.lora='nope'", "loras"]),
    (["+loras.lcm=two_keys.safetensors", "lcm.lora=lcm", "sampler=lcm"], ["lcm.lora='lcm'", "no LoRA weights"]),
    (["lcm.steps=0", "sampler=lcm"], ["lcm.steps=0", ">= 1"]),
    (["embedding=emb.pt", "prompt='a <embedding>'"], ["allow_pickle_embeddings", "weights_only=True"]),
    (["embedding=two_keys.safetensors", "prompt='a <embedding>'"], ["embedding='two_keys'",
                                                                    "not a textual-inversion embedding"]),
    (["embedding=emb.safetensors", "prompt='a cat'"], ["embedding_token='<embedding>'", "neither the prompt"]),
    (["embedding=wide.safetensors", "prompt='a <embedding>'"], ["embedding='wide'", "width (768,)",
                                                               "width is (32,)"]),
    (["init_image=missing.png"], ["init_image='missing.png'", "no such file"]),
    (["init_image=notimage.png"], ["init_image=", "not a readable image"]),
    (["init_image=init.png", "strength=0"], ["strength=0", "0 < strength <= 1"]),
    (["init_image=init.png", "strength=1.5"], ["strength=1.5", "0 < strength <= 1"]),
    (["init_image=init.png", "steps=2", "strength=0.3"], ["strength=0.3", "steps=2", "int(steps * strength) >= 1"]),
    (["strength=0.3,0.6"], ["strength is swept", "init_image"]),
    (["prompt_sr=[zebra,dog]"], ["prompt_sr", "'zebra'", "neither the prompt nor the negative prompt"]),
    (["prompt_sr=[]"], ["prompt_sr=[]", "search text"]),
    (["size=64by64"], ["size='64by64'", "WIDTHxHEIGHT"]),
    # the hires fix
    (["hires.scale=0.5"], ["hires.scale=0.5", "1 <= hires.scale <= 8"]),
    (["hires.scale=1.3"], ["hires.scale=1.3", "83x83", "multiple of 8"]),
    (["hires.scale=2", "hires.upscaler=ESRGAN_4x"], ["hires.upscaler='ESRGAN_4x'", "lanczos (Lanczos)",
                                                     "latent (Latent)"]),
    (["hires.scale=2", "hires.strength=0"], ["hires.strength=0", "0 < hires.strength <= 1"]),
    (["hires.scale=2", "hires.steps=-1"], ["hires.steps=-1", ">= 0"]),
    (["hires.scale=2", "steps=2", "hires.strength=0.3"], ["hires.strength=0.3", "2 hires steps",
                                                          "int(steps * strength) >= 1"]),
    (["hires.scale=2", "init_image=init.png"], ["hires.scale=2", "init_image='init.png'", "txt2img"]),
    (["hires.strength=0.3,0.6"], ["hires.strength is swept", "hires.scale"]),
    (["size=65x64"], ["size=65", "multiple of 8"]),
]

# rejected by Hydra at compose time (typed schema / unknown group option)
COMPOSE_CASES = [
    (["model=nosuchmodel"], ["model/nosuchmodel", "tiny"]),
    (["vae=nosuchvae"], ["vae/nosuchvae", "tiny_alt"]),
    (["stepz=3"], ["stepz"]),
    (["model.sourse=x"], ["sourse"]),
]


@pytest.fixture(scope="module")
def rendered_sweep(tmp_path_factory):
    """A small sweep rendered once for the module."""
    from hydra import compose, initialize_config_dir

    from sdexp.hydra_setup import register_all
    from sdexp.paths import CONF_DIR

    root = tmp_path_factory.mktemp("kept") / "results"
    register_all()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["steps=1", "prompts=single", "name=kept", f"results_root={root}"])
    run_sweep([cfg], log=lambda *a: None)
    return root


@pytest.fixture
def results_with_a_sweep(rendered_sweep, tmp_path):
    """A results root that already holds a sweep, so we can prove nothing in it changes."""
    shutil.copytree(rendered_sweep, tmp_path / "results")
    return tmp_path / "results"


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(sdexp.models, "load_model", refuse)
    monkeypatch.setattr("sdexp.render.load_model", refuse)
    monkeypatch.setattr("sdexp.sweep.ClipScorer", refuse)


def write_input_files(folder) -> None:
    """Files the cases name: good ones (an embedding, an image) and bad ones."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    (folder / "prompts.json").write_text("[]")
    (folder / "garbage.safetensors").write_bytes(b"\x00" * 12 + b"not a safetensors file")
    save_file({"a": torch.zeros(2), "b": torch.zeros(2)}, str(folder / "two_keys.safetensors"))
    (folder / "model.ckpt").write_bytes(b"not read")
    (folder / "emb.pt").write_bytes(b"not read")
    save_file({"emb_params": torch.zeros(1, 32)}, str(folder / "emb.safetensors"))
    save_file({"emb_params": torch.zeros(1, 768)}, str(folder / "wide.safetensors"))   # SD1.5's width
    (folder / "notimage.png").write_bytes(b"not an image")
    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "init.png")
    (folder / "binary.txt").write_bytes(b"\x00\xff\xfe not text")


@pytest.mark.parametrize("overrides,fragments", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_reported_before_loading(overrides, fragments, compose_cfg, results_with_a_sweep,
                                              no_model_loads, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_input_files(tmp_path)
    before = tree_state(results_with_a_sweep)
    swept = [o for o in overrides if "," in o and "[" not in o]     # value lists are one job per value
    with pytest.raises(ConfigError) as err:
        if swept:
            key, values = swept[0].split("=", 1)
            rest = [o for o in overrides if o != swept[0]]
            cfgs = [compose_cfg([*rest, f"{key}={v}", "name=kept"]) for v in values.split(",")]
            run_sweep(cfgs, [key], log=lambda *a: None)
        else:
            run_sweep([compose_cfg([*overrides, "name=kept"])], log=lambda *a: None)
    for fragment in fragments:
        assert fragment in str(err.value)
    lines = str(err.value).splitlines()
    assert len(lines) == len(set(lines)), "a problem is reported more than once"
    assert tree_state(results_with_a_sweep) == before


@pytest.mark.parametrize("overrides,fragments", COMPOSE_CASES, ids=[" ".join(c[0]) for c in COMPOSE_CASES])
def test_bad_config_fails_at_compose_time(overrides, fragments, compose_cfg):
    with pytest.raises((HydraException, OmegaConfBaseException)) as err:
        compose_cfg(overrides)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_pickled_checkpoint_needs_explicit_permission(compose_cfg, tmp_path, no_model_loads):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not read")
    with pytest.raises(ConfigError) as err:
        run_sweep([compose_cfg([f"model.source={ckpt}"])], log=lambda *a: None)
    assert "allow_pickle" in str(err.value) and "weights_only=True" in str(err.value)


def test_grid_axis_of_a_multirun_must_be_swept(compose_cfg, no_model_loads):
    cfgs = [compose_cfg([f"cfg={c}", "grid.x=sampler"]) for c in (3, 7)]
    with pytest.raises(ConfigError) as err:
        run_sweep(cfgs, ["cfg"], log=lambda *a: None)
    assert "grid.x='sampler'" in str(err.value) and "valid: cfg" in str(err.value)


# the console script's main(), and after it whether the rendering libraries were imported
MAIN_THEN_MODULES = ("import sys\nfrom sdexp.cli import main\nsys.argv = ['sdexp', *sys.argv[1:]]\n"
                     "try:\n    main()\nfinally:\n"
                     "    print('imported:', 'diffusers' in sys.modules, 'transformers' in sys.modules,\n"
                     "          file=sys.stderr)")


def test_cli_prints_one_clear_error_and_exits_2(tmp_path):
    """The error comes before the rendering libraries are even imported (seconds, not a minute)."""
    proc = subprocess.run([sys.executable, "-c", MAIN_THEN_MODULES, "sampler=foo", "clip_skip=99",
                           f"results_root={tmp_path / 'r'}"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("sdexp: error: sampler='foo'") and "clip_skip=99" in proc.stderr
    assert lines[-1] == "imported: False False"
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
