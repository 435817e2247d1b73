"""`sdexp score results/NAME key=value ...`: score or rescore a stored sweep without rendering.

    sdexp score results/demo                                   # clip_score means per cell (+ CIs)
    sdexp score results/demo metrics=[clip_score,fid,kid] reference=path/to/real_images
    sdexp score results/demo metrics=[fid] reference=stats.npz group_by=[sampler,cfg]
    sdexp score results/demo reference=cell:3f2a9c               # paired CLIP differences, FID/KID vs a cell
    sdexp score results/demo metrics=[clip_score] clip.backend=open_clip clip.source=ViT-H-14 \
                clip.pretrained=/models/open_clip_vit_h14.safetensors

Arguments are `key=value` in Hydra's override style (lists as `[a,b]`); `sdexp score --help` lists
every key. Per-image values go to results/NAME/image_metrics/, group values to results/NAME/groups/
(README, "Metrics"). Bad input stops before any model loads and before anything under results/ changes.
"""
from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
from pathlib import Path

from .axes import ConfigError
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
}
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


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _scorer_options(metric: str, cfg: dict, plan: dict) -> dict:
    return plan["clip"] if metric == "clip_score" else cfg["options"].get(metric, {})


def prepare_image_metric(metric: str, rows, cfg: dict, plan: dict, device) -> dict:
    """What a per-image metric still needs: stored values, the images to score, and the scorer (loaded
    only when something is left to score). Runs before the store is locked: a model that cannot be
    loaded stops the run with nothing written."""
    from .metrics.tables import read_image_metric

    options = _scorer_options(metric, cfg, plan)
    scorer = None
    model_id = _model_id(metric, options)
    if model_id is None:                      # a plugin metric: its factory says which model it is
        scorer = _load_scorer(metric, options, device)
        model_id = scorer.model_id
    stored = {} if cfg["force"] else read_image_metric(plan["folder"], metric, model_id)
    if metric == "clip_score" and not cfg["force"] and options["backend"] == "transformers" \
            and "clip_model" in rows.columns:
        # values the sweep computed while rendering, with the same scorer
        same = rows[(rows["clip_model"] == options["source"]) & rows["clip_score"].notna()]
        stored = {**dict(zip(same["image_id"], same["clip_score"].astype(float))), **stored}
    todo = rows[~rows["image_id"].isin(set(stored))].drop_duplicates("image_id")
    if len(todo) and scorer is None:
        scorer = _load_scorer(metric, options, device)
    return {"metric": metric, "options": options, "model": model_id, "stored": stored, "todo": todo,
            "scorer": scorer}


def image_metric_values(job: dict, folder: Path, batch_size: int, log) -> tuple[dict, dict]:
    """Score the images `prepare_image_metric` left to do. Returns (image_id -> value, the scorer's
    identity: model, implementation, version)."""
    from PIL import Image

    stored, todo, scorer = dict(job["stored"]), job["todo"], job["scorer"]
    if len(todo):
        log(f"sdexp: {job['metric']} for {len(todo)} images with {job['model']}")
        for start in range(0, len(todo), batch_size):
            chunk = todo.iloc[start:start + batch_size]
            images = []
            for p in chunk["image_path"]:
                with Image.open(folder / p) as im:
                    images.append(im.convert("RGB"))
            for image_id, value in zip(chunk["image_id"], scorer.score(images, list(chunk["prompt"]))):
                stored[image_id] = float(value)
    if scorer is not None:
        impl, version = scorer.implementation, scorer.version
    else:
        impl, version = _implementation_of(job["metric"], job["options"])
    return stored, {"model": job["model"], "implementation": impl, "version": version}


def _load_scorer(metric: str, options: dict, device):
    from .metrics.registry import METRICS

    try:
        return METRICS[metric].scorer(options, device)
    except Exception as e:  # a model that cannot be loaded: nothing has been written
        raise ConfigError(f"{metric}: cannot load its model with {_describe_options(metric, options)}: "
                          f"{type(e).__name__}: {e}") from None


def _model_id(metric: str, options: dict) -> str | None:
    """The image_metrics key of clip_score's scorer, known without loading it (None for plugin metrics,
    whose factory is called to learn it)."""
    from .metrics.clip_backends import clip_model_id

    return clip_model_id(options) if metric == "clip_score" else None


def _describe_options(metric: str, options: dict) -> str:
    prefix = "clip" if metric == "clip_score" else f"options.{metric}"
    return ", ".join(f"{prefix}.{k}={v!r}" for k, v in options.items()) or "no options"


def _implementation_of(metric: str, options: dict) -> tuple[str, str]:
    import importlib.metadata as md

    if metric == "clip_score" and options["backend"] == "transformers":
        return "sdexp.clipscore.ClipScorer", f"transformers {md.version('transformers')}"
    if metric == "clip_score":
        return "sdexp.metrics.clip_backends.OpenClipScorer", f"open_clip {md.version('open_clip_torch')}"
    return "", ""


def run(cfg: dict, log=print) -> dict:
    """Check, then score: per-image metrics, their group means (and paired differences against a group
    reference), FID and KID per group. Returns {'written': [paths], 'groups': DataFrame}."""
    import pandas as pd

    from . import __version__
    from .metrics import groups as G
    from .metrics.inception import RESIZE_NAMES, InceptionExtractor, folder_features, store_features
    from .metrics.registry import METRICS
    from .metrics.tables import load_groups, write_groups, write_image_metric
    from .store import TMP_SUFFIX, Store

    rows, plan = check(cfg)
    folder, grouping, ref = plan["folder"], plan["grouping"], plan["reference"]
    device = resolve_device(cfg["device"])
    boot = dict(confidence=cfg["bootstrap.confidence"], n_boot=cfg["bootstrap.n"], seed=cfg["bootstrap.seed"])
    sweep = str(rows["sweep"].iloc[0]) if "sweep" in rows.columns else folder.name
    ref_cols = {"reference": ref.spec if ref else None, "reference_kind": ref.kind if ref else None,
                "reference_hash": ref.hash if ref else None}
    extractor = None
    if any(METRICS[m].features == "inception" for m in plan["metrics"]):
        extractor = InceptionExtractor(cfg["inception.weights"], cfg["inception.resize"], device,
                                       cfg["inception.batch_size"])
    extractors = {"inception": extractor}
    if any(METRICS[m].features == "clip" for m in plan["metrics"]):
        extractors["clip"] = _clip_features(plan["clip"]["source"], device)
    jobs = {m: prepare_image_metric(m, rows, cfg, plan, device) for m in plan["metrics"]
            if METRICS[m].per == "image"}
    if extractor is not None and _needs_network(folder, rows, ref, extractor, cfg["force"]):
        try:
            extractor.net
        except Exception as e:  # a damaged weights file: nothing has been written
            raise ConfigError(f"inception.weights={str(extractor.weights)!r}: cannot load it as "
                              f"torch-fidelity's InceptionV3 state dict: {type(e).__name__}: {e}") from None
    written = []

    def common(metric: str, extra: dict) -> dict:
        return {"sweep": sweep, "metric": metric, "grouping": grouping.label, "sdexp_version": __version__, **extra}

    store = Store(folder)
    with store.lock():
        for sub in ("features", "groups", "image_metrics"):
            for tmp in (folder / sub).rglob(f".*{TMP_SUFFIX}") if (folder / sub).is_dir() else []:
                tmp.unlink(missing_ok=True)
        by_kind: dict = {}          # features kind -> (the sweep's features, the reference's)
        for metric in plan["metrics"]:
            info = METRICS[metric]
            if info.per == "image":
                values, ident = image_metric_values(jobs[metric], folder, cfg["batch_size"], log)
                impl, version = ident["implementation"], ident["version"]
                ours = {i: values[i] for i in rows["image_id"] if i in values}
                written.append(write_image_metric(folder, metric, ident["model"], ours, impl, version))
                series = pd.Series(ours, dtype=float)
                extra = {"feature_extractor": ident["model"], "implementation": impl,
                         "implementation_version": version}
                out = [{**common(metric, extra), **r} for r in G.mean_rows(rows, series, grouping, **boot)]
                written.append(write_groups(folder, metric, "mean", (grouping.label, ident["model"]), out))
                if ref is not None and ref.kind == "group":
                    out = [{**common(metric, {**extra, **ref_cols}), **r}
                           for r in G.paired_rows(rows, series, grouping, ref, **boot)]
                    written.append(write_groups(folder, metric, "paired_diff",
                                                (grouping.label, ident["model"], ref.hash), out))
                continue
            if info.features not in by_kind:
                ex = extractors[info.features]
                features = store_features(folder, list(rows["image_id"]), [folder / p for p in rows["image_path"]],
                                          ex, force=cfg["force"], log=log)
                ref_features = None
                if ref.kind == "folder":
                    ref_features = folder_features(folder, Path(ref.spec), ref.files, ref.hash, ex,
                                                   force=cfg["force"], log=log)
                elif ref.kind == "group":
                    position = {i: k for k, i in enumerate(rows["image_id"])}
                    ref_features = features[[position[i] for i in ref.image_ids]]
                by_kind[info.features] = (features, ref_features)
            features, ref_features = by_kind[info.features]
            if info.features == "clip":
                written.append(_clip_group_metric(metric, folder, rows, features, ref_features, grouping, cfg,
                                                  extractors["clip"], {**ref_cols, **common(metric, {})}, ref))
                continue
            extra = {**ref_cols, "feature_extractor": extractor.name, "resize": RESIZE_NAMES[extractor.resize]}
            if metric == "fid":
                extra.update(implementation="sdexp.metrics.fid.frechet_distance",
                             implementation_version=f"sdexp {__version__}")
                out = G.fid_rows(rows, features, grouping, ref, ref_features, cfg["fid.min_images"])
            else:
                extra.update(implementation="sdexp.metrics.kid.kid (torch-fidelity subset sampling)",
                             implementation_version=f"sdexp {__version__}")
                out = G.kid_rows(rows, features, grouping, ref_features, cfg["kid.subset_size"], cfg["kid.subsets"],
                                 cfg["kid.seed"], cfg["kid.min_images"])
            for r in out:
                r["warning"] = "; ".join(w for w in (r["warning"], extractor.warning) if w)
            out = [{**common(metric, extra), **r} for r in out]
            written.append(write_groups(folder, metric, "value",
                                        (grouping.label, extractor.key, ref.hash), out))
    result = load_groups(folder)
    for path in written:
        if path.parent.name == "groups":
            log_table(path, log)
    log(f"sdexp: groups table  {(folder / 'groups').resolve()}  (sdexp.load_groups({str(folder)!r}))")
    return {"written": written, "groups": result, "rows": len(rows)}


def _clip_features(source: str, device):
    from .metrics.clip_features import ClipImageFeatures

    try:
        return ClipImageFeatures(source, device)
    except Exception as e:  # a model that cannot be loaded: nothing has been written
        raise ConfigError(f"clip.source={source!r}: cannot load it for CLIP image features: "
                          f"{type(e).__name__}: {e}") from None


def _clip_group_metric(metric, folder, rows, features, ref_features, grouping, cfg, extractor, common, ref):
    """fd_clip or cmmd per group, with bootstrap intervals (sdexp.metrics.clip_features)."""
    from .metrics.clip_features import IMPLEMENTATIONS, bootstrap_rows
    from .metrics.tables import write_groups

    out = bootstrap_rows(metric, rows, features, grouping, ref_features, cfg["bootstrap.confidence"],
                         cfg["bootstrap.n"], cfg["bootstrap.seed"], cfg["fid.min_images"])
    extra = {**common, "feature_extractor": extractor.name, "implementation": IMPLEMENTATIONS[metric],
             "implementation_version": extractor.version}
    return write_groups(folder, metric, "value", (grouping.label, extractor.key, ref.hash),
                        [{**extra, **r} for r in out])


def _needs_network(folder: Path, rows, ref, extractor, force: bool) -> bool:
    """Whether any Inception feature is missing (the sweep's images, or a reference folder's)."""
    from .metrics.inception import FeatureStore

    if force or not set(rows["image_id"]) <= set(FeatureStore(folder, extractor.key).load()):
        return True
    if ref is not None and ref.kind == "folder":
        return not (FeatureStore(folder, extractor.key).dir / "references" / f"{ref.hash}.npy").is_file()
    return False


def log_table(path: Path, log=print) -> None:
    """Print one result set: a header, warnings shared by every group once, then one line per group."""
    import pandas as pd

    df = pd.read_parquet(path)
    if df.empty:
        return
    first = df.iloc[0]
    head = f"{first['metric']} ({first['statistic']}, grouping {first['grouping']}"
    if pd.notna(first["reference"]):
        head += f", reference {first['reference']}"
    log(f"sdexp: {head})")
    notes = [set(w.split("; ")) - {""} for w in df["warning"].fillna("")]
    shared = set.intersection(*notes) if notes else set()
    for w in sorted(shared):
        log(f"  warning: {w}")
    for (_, r), mine in zip(df.iterrows(), notes):
        ci = f" [{r['ci_low']:.4g}, {r['ci_high']:.4g}]" if pd.notna(r["ci_low"]) else ""
        std = f" +/- {r['std']:.3g} (std over subsets)" if pd.notna(r["std"]) else ""
        own = "; ".join(w for w in r["warning"].split("; ") if w in mine - shared) if r["warning"] else ""
        log(f"  {r['group']}: {r['value']:.6g}{ci}{std}  n={r['n']}" + (f"  warning: {own}" if own else ""))


def main(argv: list[str]) -> int:
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    try:
        run(parse_args(argv))
    except ConfigError as e:
        print(f"sdexp: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if "being written by another sdexp run" not in str(e):
            raise
        print(f"sdexp: error: {e}", file=sys.stderr)       # a render (or another score) holds the lock
        return 2
    return 0
