"""Benchmark: the reference grid (benchmarks/sweep_vs_naive.py: 3 VAEs x 2 clip skips x 3 CFG x 4
seeds x 2 prompts, 144 images, Euler a, CLIP-scored) on the local backend, then on a local Ray
cluster with 1 worker and with 2 workers, back to back in this one process.

Each run renders into a fresh store. Times count from the moment the renderers are up (the local
one's CLIP scorer loaded; on Ray, the worker processes started with theirs) to the last row
written, model loading included. On the CPU every renderer has one torch thread (the local one too),
so 2 workers use 2 cores against 1. Prints key=value lines: images/s of each, the ratios, and
whether all three stored byte-identical images.

    python benchmarks/ray_scaling.py                                  # tiny model, CPU, 2 cores
    python benchmarks/ray_scaling.py --full-size --device cuda --dtype float16 --size 512 --steps 20
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ray
import torch

from sweep_vs_naive import PROMPTS, cells, full_size_clip_folder, full_size_folder
from sdexp.clipscore import ClipScorer
from sdexp.models import ModelSpec, VaeSpec
from sdexp.plan import Plan
from sdexp.ray_backend import render_on_ray
from sdexp.store import Store
from sdexp.sweep import render_plan


def make_plan(grid, folder: Path, args, scorer_source: str, backend: str, workers: int = 1) -> Plan:
    cpus = 1 if args.device == "cpu" else 2
    return Plan(cells=grid, folder=folder, name=folder.name, swept=[], grid={},
                scorer={"enabled": True, "source": scorer_source},
                run={"device": args.device, "dtype": args.dtype, "batch_size": args.batch_size,
                     "max_resident_models": 1, "progress": False, "channels_last": True, "compile": False,
                     "backend": backend},
                ray={"address": "auto", "workers": workers, "cpus_per_worker": cpus,
                     "gpus_per_worker": 0 if args.device == "cpu" else 1})


def stored(folder: Path) -> dict[str, bytes]:
    rows = Store(folder).load_rows()
    return {r.image_id: (folder / r.image_path).read_bytes() for r in rows.itertuples()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--full-size", action="store_true", help="SD1.5 architecture, random weights")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    source = str(full_size_folder(dtype)) if args.full_size else "tiny"
    model = ModelSpec("sd15-random" if args.full_size else "tiny", source)
    vaes = [VaeSpec("Automatic", None), VaeSpec("tiny", "tiny"), VaeSpec("tiny_alt", "tiny_alt")]
    if args.full_size:
        vaes = [VaeSpec("Automatic", None), VaeSpec("vae-a", f"{source}/vae"), VaeSpec("vae-b", f"{source}/vae/")]
    grid = cells(model, vaes, args.steps, args.size, prompts=PROMPTS)
    scorer_source = str(full_size_clip_folder()) if args.full_size else "tiny"
    gpus = torch.cuda.device_count() if args.device.startswith("cuda") else 0
    print(f"grid: {len(grid)} images, {args.steps} steps, {args.size}x{args.size}, {args.device}, {args.dtype}, "
          f"batch size {args.batch_size}")
    rates, images = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        threads = torch.get_num_threads()
        if args.device == "cpu":
            torch.set_num_threads(1)
        plan = make_plan(grid, tmp / "local", args, scorer_source, "local")
        scorer = ClipScorer(scorer_source, torch.device(args.device))
        t0 = time.perf_counter()
        store = Store(plan.folder)
        with store.lock():
            render_plan(plan, store, log=lambda *a: None, scorer=scorer)
        rates["local"] = len(grid) / (time.perf_counter() - t0)
        images["local"] = stored(plan.folder)
        torch.set_num_threads(threads)
        del scorer
        ray.init(num_cpus=2 if args.device == "cpu" else None, num_gpus=gpus or None, include_dashboard=False,
                 logging_level="ERROR")
        for workers in (1, 2):
            name = f"ray_{workers}"
            plan = make_plan(grid, tmp / name, args, scorer_source, "ray", workers)
            store = Store(plan.folder)
            with store.lock():
                figures = render_on_ray(plan, store, list(grid), log=print)
            rates[name] = figures["images_per_s"]
            images[name] = stored(plan.folder)
        ray.shutdown()
    for name, rate in rates.items():
        print(f"{name}_images_per_s={rate:.2f}")
    print(f"ray_1_vs_local={rates['ray_1'] / rates['local']:.2f}")
    print(f"ray_2_vs_ray_1={rates['ray_2'] / rates['ray_1']:.2f}")
    print(f"ray_2_vs_local={rates['ray_2'] / rates['local']:.2f}")
    print(f"identical_images={str(images['local'] == images['ray_1'] == images['ray_2']).lower()}")


if __name__ == "__main__":
    main()
