"""`sdexp reproduce IMAGE_ID|PNG [KEY=VALUE ...]`: render one image again into a new folder and
print how far its pixels are from the stored one.

- An image id (or a unique prefix) of a stored sweep, or a PNG of one: the sweep's own run config
  is planned again and the image's cell taken from that plan, so the render has every setting of
  the original. `--batch` renders the image's whole batch (the rows sharing its `batch_id`, in
  `batch_index` order, at its batch size): the engine then does exactly the work it did, and on
  the same device and versions the PNG is byte-identical.
- Any other PNG, AUTOMATIC1111's or sdexp's: its `parameters` text is read back into config
  overrides (prompt, negative prompt, steps, sampler, schedule, CFG, seed, size, clip skip, model,
  VAE, LoRA tags, denoising strength, variation seed, hires fix, refiner); a key sdexp does not know is named and
  stops the run (`--allow-unknown` names it and goes on). KEY=VALUE overrides go on top, e.g.
  `checkpoint=/models/dreamshaper_8.safetensors` for a model that sdexp knows only by name.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from .axes import REGISTRY, ConfigError

# A1111 infotext key -> sdexp config key, from the axis registry; A1111's older spelling of one key.
# Keys that only identify or describe (hashes, version) are INFORMATIONAL; any other key is named.
INFOTEXT: dict[str, str] = {"Eta": "eta"}
for _axis in REGISTRY:                    # a key two axes share goes to the first (img2img's Denoising strength)
    if _axis.infotext:
        INFOTEXT.setdefault(_axis.infotext, _axis.config_key)
INFORMATIONAL = ("Model hash", "VAE hash", "Lora hashes", "TI hashes", "Version")
NUMBER = re.compile(r"-?\d+(\.\d+)?")
LORA_TAG = re.compile(r"\s*<lora:([^:>]+):([^>]+)>")
SHORT_HASH = re.compile(r"\s*\[[0-9a-fA-F]+\]$")     # "Refiner: name [hash]"
# A1111's RNG values sdexp renders (its "NV" is not); without an RNG key A1111 drew the noise on the GPU
RNG = {"CPU": "cpu", "GPU": "gpu"}


def pixel_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Max and mean absolute difference of two uint8 images (and whether they are equal)."""
    if a.shape != b.shape:
        return {"same_size": False, "max": None, "mean": None, "equal": False}
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"same_size": True, "max": int(d.max()), "mean": float(d.mean()), "equal": bool(d.max() == 0)}


def read_pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------ stored images

MARKER = "reproduce.json"       # in a folder `sdexp reproduce` rendered into: what it reproduced


def find_image(key: str, results: Path, folders: list[Path] | None = None, log=print) -> tuple[Path, object, object]:
    """(sweep folder, row, rows) of the stored image whose id starts with `key`, searched in
    `folders` (default: results/*/). One image found in several folders (its id names its settings,
    so every copy is the same image) is taken from a sweep, before any folder a reproduce wrote."""
    from .store import load_rows

    hits = []
    for folder in folders if folders is not None else sorted(p.parent for p in results.glob("*/rows")):
        rows = load_rows(folder)
        if "image_id" not in rows.columns:
            continue
        sel = rows[rows["image_id"].astype(str).str.startswith(key)]
        hits += [(folder, r, rows) for _, r in sel.iterrows()]
    ids = sorted({str(r["image_id"]) for _, r, _ in hits})
    if len(ids) != 1:
        where = f"in {folders[0]}" if folders else f"under {results}/*/"
        what = "no stored image" if not ids else f"{len(ids)} stored images ({', '.join(ids[:3])}, ...)"
        raise ConfigError(f"image {key!r}: {what} {where} has this id; valid: a full image id or a unique "
                          "prefix (the PNG's file name), or a PNG path")
    hits.sort(key=lambda h: (h[0] / MARKER).exists())             # sweeps first, then reproductions
    if len(hits) > 1:
        log(f"sdexp: {ids[0]} is stored in {len(hits)} folders; reproducing the one in {hits[0][0]}")
    return hits[0]


def job_configs(folder: Path) -> list:
    """Every job config of every run of the sweep, as typed configs."""
    import yaml
    from omegaconf import OmegaConf

    from .config import SdexpConfig

    out = []
    for run in sorted((folder / "config").glob("run-*.yaml")):
        for job in (yaml.safe_load(run.read_text()) or {}).get("jobs") or []:
            out.append(OmegaConf.merge(OmegaConf.structured(SdexpConfig), job))
    if not out:
        raise ConfigError(f"{folder} holds no config/run-*.yaml: its images cannot be planned again")
    return out


def stored_cells(folder: Path, image_ids: list[str]) -> tuple[dict, object]:
    """{image_id: Cell} planned again from the sweep's run configs, and the config of the job that
    planned the first image."""
    from .plan import make_plan

    found, first_cfg = {}, None
    for cfg in reversed(job_configs(folder)):           # the newest run first
        cells = make_plan([cfg], check_grid=False).cells
        for c in cells:
            if c.image_id in image_ids and c.image_id not in found:
                found[c.image_id] = c
                if c.image_id == image_ids[0]:
                    first_cfg = cfg
        if len(found) == len(image_ids):
            break
    missing = [i for i in image_ids if i not in found]
    if missing:
        raise ConfigError(f"image {missing[0]!r} is in the rows but no stored run config plans it "
                          "(the configs changed since it was rendered)")
    return found, first_cfg


# ------------------------------------------------------------------ A1111 parameters

def parameters_overrides(text: str, allow_unknown: bool = False, log=print) -> list[str]:
    """Hydra overrides that rebuild the config of an A1111 `parameters` text."""
    from .metadata import parse_a1111_parameters

    fields = parse_a1111_parameters(text)
    prompt = fields.pop("prompt", "")
    loras = LORA_TAG.findall(prompt)
    prompt = LORA_TAG.sub("", prompt).strip()
    out = [f"prompt={_quote(prompt)}", f"negative_prompt={_quote(fields.pop('negative_prompt', ''))}"]
    if len(loras) > 1:
        raise ConfigError(f"the prompt holds {len(loras)} <lora:> tags; valid: at most one (more as extra_loras=...)")
    for name, weight in loras:
        out += [f"lora={name}", f"lora_weight={weight}"]
    unknown = [k for k in fields if k not in INFOTEXT and k not in INFORMATIONAL]
    if unknown:
        message = (f"the PNG's parameters hold keys sdexp cannot reproduce: {', '.join(map(repr, unknown))}; "
                   f"valid: {', '.join(INFOTEXT)} (and {', '.join(INFORMATIONAL)}, which only identify)")
        if not allow_unknown:
            raise ConfigError(message + "; --allow-unknown renders without them")
        log(f"sdexp: warning: {message}; rendering without them")
    if "RNG" not in fields:
        out.append("rng=gpu")
    for key, value in fields.items():
        if key not in INFOTEXT:
            continue
        target = INFOTEXT[key]
        if target == "rng":
            if value not in RNG:
                raise ConfigError(f"the PNG's parameters hold RNG: {value}; valid: {', '.join(RNG)} "
                                  "(none written: GPU)")
            out.append(f"rng={RNG[value]}")
            continue
        if key == "Denoising strength" and "Hires upscale" in fields:
            target = "hires.strength"             # a hires-fix image: the strength of its second pass
        if target == INFOTEXT["VAE"]:
            out.append("vae=auto" if value == "Automatic" else f"vae={value}" if value in _conf_names("vae")
                       else f"vae_file={_quote(value)}")
        elif target == "refiner":
            out.append(f"refiner={_quote(SHORT_HASH.sub('', value))}")
        elif target == INFOTEXT["Model"]:
            out.append(f"model={value}" if value in _conf_names("model") else f"checkpoint={_quote(value)}")
        else:
            out.append(f"{target}={value if NUMBER.fullmatch(value) else _quote(value)}")
    return out


def _conf_names(group: str) -> list[str]:
    from .paths import CONF_DIR

    return [p.stem for p in (CONF_DIR / group).glob("*.yaml")]


def _quote(value: str) -> str:
    """A Hydra override value that stays one string, whatever it holds."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def compose_job(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .hydra_setup import register_all
    from .paths import CONF_DIR

    register_all()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=overrides)
    except Exception as e:       # Hydra's own errors name the override; keep them to one line
        raise ConfigError(f"cannot build a config from the parameters: {str(e).splitlines()[0]}") from None
    finally:
        GlobalHydra.instance().clear()


# ------------------------------------------------------------------ rendering

def render_cells(cfg, cells: list, out: Path, batch_size: int, source: str, log=print) -> list[dict]:
    """Render these cells into a new sweep folder `out` (one batch of batch_size when they share
    one), noting in out/reproduce.json what they reproduce (`source`); returns their rows."""
    import json

    from omegaconf import OmegaConf

    from .plan import make_plan
    from .store import Store
    from .sweep import render_plan

    if (out / "rows").is_dir() and any((out / "rows").iterdir()):
        raise ConfigError(f"--out {str(out)!r} already holds results; valid: a new or empty folder")
    cfg = OmegaConf.merge(cfg, {"name": out.name, "results_root": str(out.parent),
                                "run": {"batch_size": batch_size, "progress": False}})
    plan = make_plan([cfg], check_grid=False)
    plan.cells = list(cells)
    plan.folder = out
    store = Store(out)
    with store.lock():
        store.save_config([OmegaConf.to_container(cfg, resolve=True)])
        (out / MARKER).write_text(json.dumps({"source": source, "image_ids": [c.image_id for c in cells]}, indent=1))
        render_plan(plan, store, log=lambda *a: None)
    rows = store.load_rows()
    return rows.to_dict("records")


def report(original: Path, again: Path, log=print, batch: bool = False) -> dict:
    diff = pixel_difference(read_pixels(original), read_pixels(again))
    same_bytes = original.read_bytes() == again.read_bytes()
    if not diff["same_size"]:
        log(f"sdexp: reproduced {again}: a different size from {original}")
    else:
        log(f"sdexp: reproduced {again}")
        log(f"sdexp: pixel difference from {original}: max {diff['max']}/255, mean {diff['mean']:.4f}"
            + ("; byte-identical PNG" if same_bytes else "; pixels identical" if diff["equal"] else ""))
        if not batch and not diff["equal"]:
            log("sdexp: note: an image rendered inside a batch differs slightly from one rendered alone; "
                "--batch renders its whole batch")
    return {**diff, "bytes_equal": same_bytes, "image": again}


def reproduce_stored(key: str, results: Path, out: Path | None, batch: bool, log=print,
                     folders: list[Path] | None = None) -> dict:
    folder, row, rows = find_image(key, results, folders, log)
    if batch and row.get("batch_id") is not None:
        mates = rows[rows["batch_id"] == row["batch_id"]].sort_values("batch_index", kind="stable")
        ids = [row["image_id"]] + [i for i in mates["image_id"] if i != row["image_id"]]
        size = int(mates["batch_index"].nunique())
    else:
        ids, size = [row["image_id"]], 1
    cells, cfg = stored_cells(folder, ids)
    order = ids if not batch else list(mates["image_id"])
    out = out or new_folder(folder.parent / f"{folder.name}-reproduce-{row['image_id'][:8]}{'-batch' if batch else ''}")
    log(f"sdexp: reproducing {row['image_id']} of {folder}" + (f" with its batch of {size}" if batch else ""))
    new_rows = render_cells(cfg, [cells[i] for i in order], out, size, str(folder / row["image_path"]), log)
    again = next(r for r in new_rows if r["image_id"] == row["image_id"])
    return report(folder / row["image_path"], out / again["image_path"], log, batch=batch)


def reproduce_png(png: Path, out: Path | None, overrides: list[str], allow_unknown: bool, batch: bool = False,
                  log=print) -> dict:
    """A PNG of a stored sweep (in its images/ folder, its id in the rows) is reproduced from that
    sweep's config; any other PNG from its parameters text."""
    from .report.images import png_head

    store = _store_of(png)
    if store is not None and not overrides:
        return reproduce_stored(png.stem, store.parent, out, batch, log, folders=[store])
    if batch:
        raise ConfigError(f"--batch: {str(png)!r} is not an image of a stored sweep (results/NAME/images/); "
                          "valid: an image id or a PNG in a sweep folder")
    text = png_head(png).text.get("parameters")
    if not text:
        raise ConfigError(f"{str(png)!r} carries no 'parameters' text chunk; valid: a PNG written by sdexp "
                          "or AUTOMATIC1111, or an image id")
    job = parameters_overrides(text, allow_unknown, log) + list(overrides)
    cfg = compose_job(job)
    from .plan import make_plan

    cells = make_plan([cfg], check_grid=False).cells
    if len(cells) != 1:
        raise ConfigError(f"the parameters plan {len(cells)} images; valid: one (give prompt= and seed= one value)")
    out = out or new_folder(png.parent / f"{png.stem}-reproduce")
    log(f"sdexp: reproducing {png} from its parameters: {' '.join(job)}")
    new_rows = render_cells(cfg, cells, out, 1, str(png), log)
    return report(png, out / new_rows[0]["image_path"], log)


def new_folder(base: Path) -> Path:
    """`base`, or base-2, base-3, ... when it already holds results: the default --out of each run is new."""
    k, out = 1, base
    while (out / "rows").is_dir() and any((out / "rows").iterdir()):
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def _store_of(png: Path) -> Path | None:
    """The sweep folder of a PNG that lies in its images/ folder and whose name is an image id of its rows."""
    from .store import Store

    if not re.fullmatch(r"[0-9a-f]{16}", png.stem):
        return None
    for parent in png.resolve().parents:
        if parent.name == "images" and (parent.parent / "rows").is_dir():
            return parent.parent if png.stem in Store(parent.parent).image_ids() else None
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sdexp reproduce",
        description="Render one image again, from its image id or a PNG, into a new folder, and print "
                    "the pixel difference from the original.")
    parser.add_argument("source", help="an image id (or unique prefix) of a stored sweep, or a PNG file "
                                       "(sdexp's or AUTOMATIC1111's, read through its parameters text)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides on top of a PNG's parameters, e.g. checkpoint=/models/x.safetensors")
    parser.add_argument("--results", default="results", help="where stored sweeps are searched (default: results)")
    parser.add_argument("--out", default=None, help="the new sweep folder (default: beside the original)")
    parser.add_argument("--batch", action="store_true",
                        help="render the image's whole batch (its batch_id), for a byte-identical result")
    parser.add_argument("--allow-unknown", action="store_true",
                        help="render even when the parameters hold keys sdexp cannot reproduce (they are named)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else None
    try:
        source = Path(args.source)
        if source.suffix.lower() == ".png" or source.is_file():
            if not source.is_file():
                raise ConfigError(f"{args.source!r} is not a file; valid: a PNG path or an image id")
            reproduce_png(source, out, args.overrides, args.allow_unknown, args.batch)
        else:
            if args.overrides:
                raise ConfigError("KEY=VALUE overrides apply to a PNG's parameters only; an image id "
                                  "is reproduced with its own stored config")
            reproduce_stored(args.source, Path(args.results), out, args.batch)
    except ConfigError as e:
        print(f"sdexp: error: {e}", file=sys.stderr)
        return 2
    return 0
