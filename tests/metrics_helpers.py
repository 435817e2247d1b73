"""Shared, built-once-per-session inputs of the metrics tests: a small rendered sweep, an Inception
weights file with seeded random weights (torch-fidelity's layout, loaded through the same
`inception.weights=` path as the real file; nothing is downloaded), and a folder of reference images."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

SWEEP = "metrics"
# 2 VAEs x 2 CFG scales x 2 seeds, one prompt: 4 cells of 2 images (the two VAEs share each denoise)
OVERRIDES = {"vae": ["tiny", "tiny_alt"], "cfg": [3, 7]}


def _once(tmp_path_factory, name: str, build) -> Path:
    root = tmp_path_factory.getbasetemp() / "metrics-shared" / name
    if not (root / ".done").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        build(root)
        (root / ".done").write_text("ok")
    return root


def _render(root: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from sdexp.hydra_setup import register_all
    from sdexp.paths import CONF_DIR
    from sdexp.sweep import run_sweep

    register_all()
    GlobalHydra.instance().clear()
    cfgs = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for vae in OVERRIDES["vae"]:
            for cfg in OVERRIDES["cfg"]:
                cfgs.append(compose("config", overrides=[
                    f"vae={vae}", f"cfg={cfg}", "seed=[0,1]", "steps=2", "prompts=single", f"name={SWEEP}",
                    f"results_root={root / 'results'}", "run.progress=false"]))
    GlobalHydra.instance().clear()
    run_sweep(cfgs, ["vae", "cfg"], log=lambda *a: None)


def rendered_sweep(tmp_path_factory) -> Path:
    """results/<SWEEP> rendered once per session (8 images, 4 cells); copy it before writing into it."""
    return _once(tmp_path_factory, "sweep", _render) / "results" / SWEEP


def copy_sweep(tmp_path_factory, dest: Path) -> Path:
    src = rendered_sweep(tmp_path_factory)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".lock", "report"))
    return dest


def random_inception(tmp_path_factory) -> Path:
    """An Inception weights file (random, seeded) standing in for weights-inception-2015-12-05-6726825d.pth."""
    from sdexp.metrics.inception import make_random_weights

    return _once(tmp_path_factory, "inception", lambda r: make_random_weights(r / "inception-random.pth")) \
        / "inception-random.pth"


def _reference(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(42)
    (root / "sub").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / f"ref{i}.png")
    # another size, a JPEG, in a subfolder: every image is resized to 299x299 anyway
    Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(root / "sub" / "ref3.jpg", quality=95)


def reference_folder(tmp_path_factory) -> Path:
    """4 noise images: 3 PNGs (64x64) and a JPEG (80x48) in a subfolder."""
    return _once(tmp_path_factory, "reference", _reference)


def scored_sweep(tmp_path_factory) -> Path:
    """The rendered sweep after `sdexp score metrics=[fid] reference=<reference_folder>`: its Inception
    features (8 images) and the reference's (4) are stored. Built once per session; copy it to use it."""
    def build(root: Path) -> None:
        from sdexp.score import main

        folder = copy_sweep(tmp_path_factory, root / SWEEP)
        assert main([str(folder), "metrics=[fid]", f"reference={reference_folder(tmp_path_factory)}",
                     f"inception.weights={random_inception(tmp_path_factory)}"]) == 0

    return _once(tmp_path_factory, "scored", build) / SWEEP


def copy_scored(tmp_path_factory, dest: Path) -> Path:
    shutil.copytree(scored_sweep(tmp_path_factory), dest, ignore=shutil.ignore_patterns(".lock", "report"))
    return dest
