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

import sys
from pathlib import Path

from .axes import ConfigError
from .devices import resolve_device
from .score_args import check, parse_args, ray_conf, usage


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
    extracts = {kind: None for kind in extractors}      # None: in this process
    if cfg["run.backend"] == "ray":
        from .metrics.clip_features import ClipImageFeatures
        from .ray_features import ray_extract

        conf = ray_conf(cfg)
        if extractor is not None:
            extracts["inception"] = ray_extract(InceptionExtractor, {
                "weights": str(extractor.weights), "resize": extractor.resize,
                "batch_size": extractor.batch_size}, conf, log)
        if "clip" in extractors:
            extracts["clip"] = ray_extract(ClipImageFeatures, {"source": plan["clip"]["source"]}, conf, log)
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
                                          ex, force=cfg["force"], log=log, extract=extracts[info.features])
                ref_features = None
                if ref.kind == "folder":
                    ref_features = folder_features(folder, Path(ref.spec), ref.files, ref.hash, ex,
                                                   force=cfg["force"], log=log, extract=extracts[info.features])
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
