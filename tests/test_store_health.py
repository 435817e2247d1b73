"""Image health: NaN, infinite and one-colour images are flagged from the VAE's own output, left out
of metrics and the best cell (with a count), and marked in grids."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image

from sdexp.image_health import flag_note, flagged, healthy, image_flags


def test_flags_from_float_output_and_pixels():
    out = torch.zeros(4, 3, 4, 4)
    out[0, 0, 0, 0] = float("nan")
    out[1, 1, 1, 1] = float("inf")
    out[3] = torch.linspace(-1, 1, 48).reshape(3, 4, 4)
    arrays = [np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 9, np.uint8), np.full((4, 4, 3), 200, np.uint8),
              np.arange(48, dtype=np.uint8).reshape(4, 4, 3)]
    assert image_flags(out, arrays) == ["nan,constant", "inf,constant", "constant", ""]


def test_tiny_vae_decoding_nan_latents_is_flagged():
    from diffusers import AutoencoderKL

    from sdexp import tiny
    from sdexp.denoise import decode

    vae = AutoencoderKL.from_pretrained(tiny.tiny_vae_folder("tiny"), local_files_only=True)
    latents = torch.randn(2, vae.config.latent_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    latents[1, 0, 0, 0] = float("nan")
    flags: list[str] = []
    arrays = decode(vae, latents, flags)
    assert len(arrays) == 2 and flags[0] == "" and flags[1].startswith("nan")


def rows():
    return pd.DataFrame({"image_id": ["a", "b", "c", "d"], "cell_id": ["x", "x", "y", "y"], "cfg": [3.0, 3.0, 9.0, 9.0],
                         "seed": [0, 1, 0, 1], "prompt": ["p"] * 4, "clip_score": [20.0, 22.0, 50.1, 50.1],
                         "image_flags": ["", None, "constant", "constant"]})


def test_flagged_rows_are_left_out_and_counted():
    said = []
    df = rows()
    assert flagged(df).tolist() == [False, False, True, True]
    assert list(healthy(df, log=said.append).image_id) == ["a", "b"]
    assert said == ["sdexp: 2 flagged images (NaN or infinite values, or a single colour) left out of the metrics"]
    assert flag_note(df.to_dict("records")) == "2 flagged (constant), left out"


def test_best_cell_and_estimates_skip_flagged_images():
    from sdexp.report.tables import cell_table

    table = cell_table(rows())
    best = table.best["clip_score"]
    assert best.settings == {"cfg": 3.0} and best.estimates["clip_score"].n == 2
    flagged_cell = next(c for c in table.cells if c.settings == {"cfg": 9.0})
    assert flagged_cell.estimates["clip_score"] is None


def test_grid_marks_flagged_cells(tmp_path):
    from sdexp.grid_rows import render_grids

    df = rows()
    for rec in df.itertuples():
        Image.fromarray(np.full((16, 16, 3), 40, np.uint8)).save(tmp_path / f"{rec.image_id}.png")
    df["image_path"] = df.image_id + ".png"
    plain = render_grids(df.assign(image_flags=""), tmp_path, tmp_path / "g1", "cfg", None, None, metric=None)
    marked = render_grids(df, tmp_path, tmp_path / "g2", "cfg", None, None, metric=None)
    a, b = Image.open(plain[0].path), Image.open(marked[0].path)
    assert b.height > a.height          # the flagged cell carries a line under its image
