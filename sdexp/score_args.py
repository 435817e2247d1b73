"""The `sdexp score` command's keys: their defaults and help, the parsing of `key=value` arguments,
plugin imports, and the checks of a scoring job before any model loads (sdexp.score runs it)."""
from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
from pathlib import Path

from .axes import ConfigError
from .config import RayConf
from .image_health import healthy

# key: (default, help). Dotted keys are options of one part; `options.METRIC.KEY` passes free-form
# options to a registered per-image metric (a preference model's weights, say).
KEYS: dict[str, tuple] = {
    "metrics": (None, "metrics to compute (default: clip_score, plus fid and kid when reference= is set)"),
    "reference": (None, "FID/KID reference and paired baseline: a folder of images, an .npz with mu and sigma, "
                        "cell:CELL_ID, or group:AXIS=VALUE,..."),
    "group_by": (["cell"], "what a group is: cell (one cell over its seeds and prompts), all, or a list of axes"),
    "clip.backend": ("transformers", "transformers | open_clip"),
    "clip.source": (None, "transformers: tiny, a folder or a hub id (default: the rows' clip_model); "
                          "open_clip: an architecture (ViT-H-14), hf-hub:org/repo, a folder, or tiny"),
    "clip.pretrained": (None, "open_clip with an architecture name: a pretrained tag or a weights file"),
    "inception.weights": (None, "torch-fidelity's weights-inception-2015-12-05-6726825d.pth "
                                "(default: $TORCH_HOME/hub/checkpoints/)"),
    "inception.resize": ("tf1", "tf1 (torch-fidelity / TF FID; torchmetrics antialias=False) | antialias"),
    "inception.batch_size": (32, "images per Inception batch"),
    "fid.min_images": (50, "warn when a group or the reference has fewer images (FID is biased at small N)"),
    "kid.subset_size": (1000, "KID subset size; adapted down to min(subset_size, N, N_reference)"),
    "kid.subsets": (100, "KID subsets"),
    "kid.seed": (2020, "seed of the KID subset sampling (torch-fidelity's default)"),
    "kid.min_images": (50, "warn when a group or the reference has fewer images"),
    "bootstrap.n": (2000, "bootstrap resamples for intervals"),
    "bootstrap.confidence": (0.95, "interval coverage"),
    "bootstrap.seed": (0, "bootstrap seed (intervals are reproducible)"),
    "batch_size": (16, "images per per-image-metric batch"),
    "device": ("auto", "auto | cpu | cuda | cuda:N"),
    "force": (False, "recompute stored per-image values and Inception features"),
    "plugins": ([], "modules (or .py files) to import first; they may register metrics"),
    "run.backend": ("local", "local | ray: Inception and CLIP image features extracted on Ray actors"),
    # the ray.* keys of a sweep, with the sweep's defaults (sdexp.config.RayConf)
    **{f"ray.{name}": (getattr(RayConf(), name), text) for name, text in (
        ("address", "local (a cluster on this machine), auto (the running one) or host:port"),
        ("workers", "actors (default: one per GPU of the cluster, per ray.cpus_per_worker CPUs without)"),
        ("gpus_per_worker", "GPUs per actor (default: 1 on a cluster with GPUs, 0 without)"),
        ("cpus_per_worker", "CPUs per actor, also its torch threads"))},
}
RAY_KEYS = tuple(k for k in KEYS if k.startswith("ray."))
# numeric ray.* keys: (an integer?, null allowed?)
RAY_NUMBERS = {"ray.workers": (True, True), "ray.gpus_per_worker": (False, True), "ray.cpus_per_worker": (False, False)}
LIST_KEYS = ("metrics", "group_by", "plugins")
INT_KEYS = ("inception.batch_size", "fid.min_images", "kid.subset_size", "kid.subsets", "kid.seed",
            "kid.min_images", "bootstrap.n", "bootstrap.seed", "batch_size")


def _show(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(value) + "]"
    return str(value)


def usage() -> str:
    lines = ["usage: sdexp score RESULTS_FOLDER [key=value ...]", "", "keys (default):"]
    for key, (default, text) in KEYS.items():
        lines.append(f"  {key}={_show(default)}".ljust(34) + f" {text}")
    lines.append("  options.METRIC.KEY=VALUE".ljust(34) + " options of a registered per-image metric (plugins)")
    return "\n".join(lines)


def _parse_list(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    return [s.strip().strip("'\"") for s in raw.split(",") if s.strip()]


def _parse_scalar(raw: str):
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _parse_number(key: str, raw: str, whole: bool, nullable: bool):
    """A number (an integer with `whole`), or null where `nullable`."""
    value = raw.strip()
    if nullable and value.lower() in ("null", "none"):
        return None
    try:
        return int(value) if whole else float(value)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not {'an integer' if whole else 'a number'}"
                          f"{' or null' if nullable else ''}") from None


def ray_conf(cfg: dict) -> dict:
    """The ray.* keys of a score job as sdexp.ray_backend reads them (address, workers, ...)."""
    return {k.split(".", 1)[1]: cfg[k] for k in RAY_KEYS}


def parse_args(argv: list[str]) -> dict:
    """RESULTS_FOLDER then key=value pairs -> a config dict (checked types; unknown keys fail)."""
    cfg = {k: copy.deepcopy(v[0]) for k, v in KEYS.items()}
    cfg["options"] = {}
    folder = None
    for arg in argv:
        key, eq, raw = arg.partition("=")
        key = key.strip().lstrip("+")
        if not eq:
            if folder is not None:
                raise ConfigError(f"{arg!r} is not key=value (the results folder is already {folder!r}); "
                                  f"valid keys: {', '.join(KEYS)}")
            folder = arg
            continue
        if key.startswith("options."):
            parts = key.split(".")
            if len(parts) != 3 or not all(parts):
                raise ConfigError(f"{key}={raw!r}: per-metric options are written options.METRIC.KEY=VALUE")
            cfg["options"].setdefault(parts[1], {})[parts[2]] = _parse_scalar(raw)
            continue
        if key not in KEYS:
            raise ConfigError(f"{key}={raw!r}: unknown key {key!r}; valid: {', '.join(KEYS)}, options.METRIC.KEY")
        if key in LIST_KEYS:
            cfg[key] = _parse_list(raw)
        elif key in INT_KEYS:
            try:
                cfg[key] = int(raw)
            except ValueError:
                raise ConfigError(f"{key}={raw!r} is not an integer") from None
        elif key in RAY_NUMBERS:
            cfg[key] = _parse_number(key, raw, *RAY_NUMBERS[key])
        elif key == "bootstrap.confidence":
            try:
                cfg[key] = float(raw)
            except ValueError:
                raise ConfigError(f"{key}={raw!r} is not a number") from None
        elif key == "force":
            if raw.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"force={raw!r} is not valid; valid: true, false")
            cfg[key] = raw.strip().lower() in ("true", "1", "yes")
        else:
            value = raw.strip()
            cfg[key] = None if value.lower() in ("", "null", "none") else value
    if folder is None:
        raise ConfigError("no results folder given; usage: sdexp score results/NAME [key=value ...]")
    cfg["folder"] = folder
    return cfg


def load_plugins(names: list[str]) -> None:
    for name in names:
        try:
            if name.endswith(".py"):
                path = Path(name).expanduser()
                if not path.is_file():
                    raise FileNotFoundError(name)
                spec = importlib.util.spec_from_file_location(f"sdexp_plugin_{path.stem}", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                importlib.import_module(name)
        except (ImportError, FileNotFoundError) as e:
            raise ConfigError(f"plugins=[{name}]: cannot import it ({e}); valid: an importable module name "
                              f"or a .py file") from None


def check(cfg: dict):
    """Everything that can be checked before a model loads or a file changes. Returns (rows, plan)."""
    from . import store
    from .metrics.groups import parse_grouping
    from .metrics.inception import RESIZE_MODES, resolve_weights
    from .metrics.reference import resolve_reference
    from .metrics.registry import METRICS
    from .metrics.clip_backends import BACKENDS

    folder = Path(cfg["folder"])
    if not (folder / "rows").is_dir():
        raise ConfigError(f"folder={str(folder)!r} holds no sdexp results (no rows/ folder); "
                          f"valid: a results/<name> folder written by a sweep")
    rows = store.load_rows(folder)
    if rows.empty:
        raise ConfigError(f"folder={str(folder)!r} holds no rows yet; render the sweep first")
    rows = rows.drop_duplicates("image_id", keep="last").reset_index(drop=True)
    rows = healthy(rows, log=lambda m: print(m, file=sys.stderr), what="scores").reset_index(drop=True)
    load_plugins(cfg["plugins"])

    metrics = cfg["metrics"]
    if metrics is None:
        metrics = ["clip_score"] + (["fid", "kid"] if cfg["reference"] else [])
    if not metrics:
        raise ConfigError(f"metrics=[] is empty; valid: {', '.join(METRICS)}")
    for m in metrics:
        if m not in METRICS:
            raise ConfigError(f"metrics=[{m}]: unknown metric {m!r}; valid: {', '.join(METRICS)}")
        if METRICS[m].per == "image" and METRICS[m].scorer is None:
            raise ConfigError(f"metrics=[{m}]: {m!r} has no scorer registered; valid: "
                              + ", ".join(k for k, v in METRICS.items() if v.scorer or v.per == "group"))
        if METRICS[m].per == "group" and not METRICS[m].features:
            raise ConfigError(f"metrics=[{m}]: sdexp score computes the group metrics "
                              + ", ".join(k for k, v in METRICS.items() if v.features) + f"; {m!r} is "
                              f"registered for display only")
    metrics = list(dict.fromkeys(metrics))
    grouping = parse_grouping(cfg["group_by"])

    ref = resolve_reference(cfg["reference"], rows) if cfg["reference"] else None
    group_metrics = [m for m in metrics if METRICS[m].per == "group"]
    if group_metrics and ref is None:
        raise ConfigError(f"metrics=[{','.join(group_metrics)}] needs reference=: a folder of images, an .npz "
                          f"with mu and sigma, cell:CELL_ID or group:AXIS=VALUE,...")
    for m in (m for m in metrics if m == "kid" or METRICS[m].features == "clip"):
        if ref is not None and ref.kind == "npz":
            name = METRICS[m].display_name
            raise ConfigError(f"metrics=[{m}] with reference={cfg['reference']!r}: {name} needs reference images, "
                              f"and an .npz holds only Inception mu and sigma; valid: a folder of images, "
                              f"cell:... or group:...")
    if cfg["clip.backend"] not in BACKENDS:
        raise ConfigError(f"clip.backend={cfg['clip.backend']!r} is not valid; valid: {', '.join(BACKENDS)}")
    if cfg["inception.resize"] not in RESIZE_MODES:
        raise ConfigError(f"inception.resize={cfg['inception.resize']!r} is not valid; "
                          f"valid: {', '.join(RESIZE_MODES)}")
    for key, low in (("inception.batch_size", 1), ("batch_size", 1), ("kid.subset_size", 2), ("kid.subsets", 1),
                     ("bootstrap.n", 1), ("fid.min_images", 0), ("kid.min_images", 0)):
        if cfg[key] < low:
            raise ConfigError(f"{key}={cfg[key]} must be >= {low}")
    if not 0 < cfg["bootstrap.confidence"] < 1:
        raise ConfigError(f"bootstrap.confidence={cfg['bootstrap.confidence']} must be between 0 and 1")
    from types import SimpleNamespace

    from .plan import check_backend

    problems = check_backend(cfg["run.backend"], SimpleNamespace(**ray_conf(cfg)))
    if problems:
        raise ConfigError(problems[0])
    if cfg["device"] != "auto" and not str(cfg["device"]).startswith(("cpu", "cuda", "mps")):
        raise ConfigError(f"device={cfg['device']!r} is not valid; valid: auto, cpu, cuda, cuda:N, mps")
    if any(METRICS[m].features == "inception" for m in group_metrics):
        try:
            resolve_weights(cfg["inception.weights"])
        except FileNotFoundError as e:
            raise ConfigError(str(e)) from None
    clip_options = {"backend": cfg["clip.backend"], "source": cfg["clip.source"], "pretrained": cfg["clip.pretrained"]}
    if any(m == "clip_score" or METRICS[m].features == "clip" for m in metrics) and not clip_options["source"]:
        used = rows["clip_model"].dropna().unique() if "clip_model" in rows.columns else []
        if cfg["clip.backend"] == "transformers" and len(used) == 1:
            clip_options["source"] = str(used[0])
        else:
            raise ConfigError(f"clip.source=null with clip.backend={cfg['clip.backend']}: name the CLIP model; "
                              "valid: transformers: tiny, a folder or a hub id (openai/clip-vit-large-patch14); "
                              "open_clip: an architecture (ViT-H-14 with clip.pretrained=...), hf-hub:org/repo, "
                              "a folder or tiny")
    clip_group = [m for m in group_metrics if METRICS[m].features == "clip"]
    if clip_group and cfg["clip.backend"] != "transformers":
        raise ConfigError(f"metrics=[{','.join(clip_group)}] with clip.backend={cfg['clip.backend']}: CLIP image "
                          f"features come from the transformers backend; valid: clip.backend=transformers")
    missing = [p for p in rows["image_path"] if not (folder / p).is_file()]
    if missing:
        raise ConfigError(f"folder={str(folder)!r}: {len(missing)} images listed in rows/ are missing, "
                          f"e.g. {missing[0]}")
    return rows, {"folder": folder, "metrics": metrics, "grouping": grouping, "reference": ref,
                  "clip": clip_options}
