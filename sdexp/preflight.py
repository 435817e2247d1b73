"""Checks a planned sweep passes before anything under results/ is written: the results folder can
be made and written, weight files are whole (a safetensors header that fits its file), hub ids
are in the local cache or reachable, and the local files a rerun uses are the ones the stored
rows were rendered with (a checkpoint, VAE, LoRA or embedding replaced at the same path is an
error: the stored images would otherwise count as rendered with it)."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from .axes import ConfigError
from .store import Store

NAME_MAX = 255


def check_inputs(plan) -> None:
    """Every check above; raises ConfigError naming the key, the value and what is valid."""
    check_results_folder(plan.folder)
    files = weight_files(plan)
    for key, path in sorted({(f[0], f[1]) for f in files}):
        if path.suffix == ".safetensors" and path.is_file():
            check_layout(key, path, check_safetensors(key, path))
    check_hub_ids(plan)
    check_unchanged(plan, files)


def check_results_folder(folder: Path) -> None:
    folder = Path(folder)
    if len(folder.name.encode()) > NAME_MAX:
        raise ConfigError(f"name={folder.name[:40]!r}... is {len(folder.name.encode())} bytes long; "
                          f"valid: a folder name of at most {NAME_MAX} bytes")
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
    key = "name" if parent == folder else "results_root"
    if not parent.is_dir():
        raise ConfigError(f"{key}: {str(parent)!r} is a file, not a folder; valid: a folder (created if missing)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}: {str(parent)!r} cannot be written (permission denied); "
                          f"valid: a folder this user can write")
    for sub in ("rows", "images", "config", "grids"):
        if (folder / sub).exists() and not (folder / sub).is_dir():
            raise ConfigError(f"name: {str(folder / sub)!r} is a file, not a folder; valid: a sweep folder "
                              f"written by sdexp, or a new name")


# What a single-file checkpoint or VAE must hold, by key prefix (the original / A1111 layout that
# diffusers' from_single_file reads): (prefixes, what they are)
LAYOUTS = {
    "model.source": ((("model.diffusion_model.",), "UNet"), (("cond_stage_model.", "conditioner.embedders."),
                     "text encoder"), (("first_stage_model.",), "VAE")),
    "vae.source": ((("encoder.", "decoder.", "first_stage_model.", "vae."), "VAE encoder/decoder"),),
}


def check_layout(key: str, path: Path, header: dict) -> None:
    """A checkpoint or VAE file holds weights of each part it must have (header keys alone)."""
    names = [k for k in header if k != "__metadata__"]
    for prefixes, what in LAYOUTS.get(key, ()):
        if not any(n.startswith(prefixes) for n in names):
            shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
            raise ConfigError(f"{key}={str(path)!r} holds no {what} weights (no tensor named {prefixes[0]}*; "
                              f"it has {len(names)}: {shown}); valid: a Stable Diffusion "
                              f"{'checkpoint' if key == 'model.source' else 'VAE'} file in the original (A1111) "
                              f"layout")


def check_safetensors(key: str, path: Path) -> dict:
    """A .safetensors file whose header is JSON and whose tensors lie inside the file; returns the header."""
    size = path.stat().st_size
    problem = None
    header: dict = {}
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (None,)
            if n is None or n > size - 8:
                problem = "its header is cut off"
            else:
                header = json.loads(fh.read(n))
                end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
                if 8 + n + end > size:
                    problem = f"it is cut off ({size} bytes, its header needs {8 + n + end})"
    except (ValueError, KeyError, TypeError, IndexError) as e:
        problem = f"its header cannot be read ({type(e).__name__})"
    if problem:
        raise ConfigError(f"{key}={str(path)!r} is not a whole .safetensors file: {problem}; valid: a complete "
                          f"safetensors file (download or convert it again)")
    return header


def weight_files(plan) -> list[tuple[str, Path, str, str, str]]:
    """(key, path, source column, hash column, source as given) of every local weight file or folder
    the plan uses, with the row columns that record its source and hash."""
    out = []
    for c in _distinct_files(plan.cells):
        for key, spec, cols in (("model.source", c.model, ("model_source", "model_hash")),
                                ("vae.source", c.vae, ("vae_source", "vae_hash")),
                                ("lora", c.lora, ("lora_source", "lora_hash")),
                                ("embedding", c.embedding, ("embedding_source", "embedding_hash")),
                                ("refiner", c.refiner, ("refiner_source", "refiner_hash")),
                                ("lcm.lora", c.lcm_lora, ("lcm_lora_source", "lcm_lora_hash")),
                                *((f"extra_loras.{s.name}", s, (None, "extra_lora_hashes"))
                                  for s, _ in c.extra_loras or ())):
            source = getattr(spec, "source", None) if spec is not None else None
            if source and Path(source).expanduser().exists():
                out.append((key, Path(source).expanduser().resolve(), *cols, source))
    return list(dict.fromkeys(out))


def _distinct_files(cells) -> list:
    """One cell per distinct combination of the files cells use (a plan may hold 10^5 cells)."""
    seen = {}
    for c in cells:
        seen.setdefault((c.model, c.vae, c.lora, c.embedding, c.refiner, c.lcm_lora, c.extra_loras), c)
    return list(seen.values())


def _stored_hashes(stored, key: str, path: Path, source_col: str | None, hash_col: str, given: str) -> set:
    """The hashes stored rows record for one file: by its source column, or for an extra LoRA (no
    source column) by its name in the "name:hash, ..." list."""
    if source_col is None:
        name = key.split(".", 1)[1]
        return {h for v in stored[hash_col].dropna() for n, _, h in (e.rpartition(":") for e in v.split(", "))
                if n == name} - {""}
    named = stored[source_col].isin({str(path), given})
    return set(stored.loc[named, hash_col].dropna()) - {""}


def _current_hash(hash_column: str, path: Path) -> str:
    from .hashing import path_sha256, safetensors_data_sha256

    lora = hash_column in ("lora_hash", "lcm_lora_hash", "extra_lora_hashes")     # the addnet hash
    return safetensors_data_sha256(path) if lora else path_sha256(path)


def check_unchanged(plan, files) -> None:
    """On a rerun: each local file the plan uses hashes as in the stored rows that name it."""
    store = Store(plan.folder)
    if not files or not store.part_files():
        return
    columns = sorted({c for f in files for c in f[2:4] if c})
    stored = store.load_rows(columns=columns)
    for key, path, source_col, hash_col, given in files:
        hashes = _stored_hashes(stored, key, path, source_col, hash_col, given)
        if not hashes:
            continue
        now = _current_hash(hash_col, path)
        if now not in hashes:
            before = ", ".join(sorted(h[:12] for h in hashes))
            raise ConfigError(
                f"{key}={str(path)!r} has changed since its images were rendered: sha256 {now[:12]} now, "
                f"{before} in the rows of {plan.folder}; the stored images would count as rendered with it. "
                f"To render anew, give another name (name=...) or move {plan.folder} away")


def check_hub_ids(plan) -> None:
    """A hub id must be in the local Hugging Face cache, or (unless HF_HUB_OFFLINE is set) answer
    the hub: no run waits on retries after the store is written."""
    from .models import MODEL_BUILTINS, classify_source
    from .tiny import TINY_VAES

    ids = set()
    for c in _distinct_files(plan.cells):
        specs = (("model.source", c.model, MODEL_BUILTINS), ("vae.source", c.vae, TINY_VAES),
                 ("refiner", c.refiner, MODEL_BUILTINS))
        for key, spec, builtins in specs:
            if spec is None or spec.source is None:
                continue
            try:
                kind = classify_source(key, spec.source, builtins, spec.allow_pickle)
            except ValueError:
                continue          # the planner reports it
            if kind == "hub":
                ids.add((key, spec.source))
    for key, repo in sorted(ids):
        if _cached(repo):
            continue
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        reason = "HF_HUB_OFFLINE is set" if offline else _unreachable(repo)
        if reason:
            raise ConfigError(f"{key}={repo!r} is not in the local Hugging Face cache and cannot be downloaded "
                              f"({reason}); valid: a cached hub id, a local folder or a .safetensors file")


def _cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for name in ("model_index.json", "config.json"):
        if isinstance(try_to_load_from_cache(repo, name), str):
            return True
    return False


def _unreachable(repo: str) -> str | None:
    """Why the hub cannot answer for this repo, or None when it does (one try, a short timeout)."""
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(repo, timeout=5)
    except Exception as e:  # connection errors, timeouts, 404s and auth errors all mean: cannot fetch
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else 'no answer'}"
    return None


def checked_plan(cfgs, override_keys=(), single_job_of_multirun: bool = False):
    """The plan with its inputs checked: every ConfigError a user can cause, raised before anything
    loads or any file changes. Imports no rendering library, so the console script reports bad
    input before it imports diffusers."""
    from .plan import make_plan

    plan = make_plan(cfgs, override_keys, check_grid=not single_job_of_multirun)
    check_inputs(plan)                # results folder, whole weight files, hub ids, files changed since stored
    return plan
