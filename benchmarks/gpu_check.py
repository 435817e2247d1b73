"""One command for a CUDA machine: sdexp's throughput on full-size architectures, as JSON.

    python benchmarks/gpu_check.py            # CUDA: about 5-8 minutes
    python benchmarks/gpu_check.py --quick    # the CPU smoke test: tiny models, a small grid

On CUDA (fp16, random weights: speed does not depend on weight values):
  sd15            the reference grid of benchmarks/sweep_vs_naive.py (3 VAEs x 2 clip skips x 3 CFG x
                  4 seeds x 2 prompts) on SD1.5 at 512 px, 20 steps: sdexp, the naive loop (one
                  pipeline call per image, timed on the first --naive-images images) and the bare UNet
                  loop; then sdexp with CLIP scoring (ViT-L/14) against the bare necessary work
  sd15_compile    the same grid with run.compile=true (its first batch, the compilation, apart)
  sdxl            a small SDXL grid at 1024 px: sdexp against the bare UNet loop
  batch_size_auto the grid with run.batch_size=auto: the batch size it chose and
                  torch.cuda.max_memory_allocated against the device's memory
  goals           fraction of the bare UNet loop >= 0.85; SD1.5 512 px >= 12 images/s (H100 class)
`steady_images_per_s` leaves out each run's warm-up batches (first batch of a model and size).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import sweep_vs_naive as svn  # noqa: E402

import sdexp  # noqa: E402
from sdexp.clipscore import ClipScorer  # noqa: E402
from sdexp.models import ModelSpec, VaeSpec  # noqa: E402
from sdexp.renderer import quiet_libraries  # noqa: E402


def steady(folder: Path) -> dict:
    """Images per second past warm-up, from the stored rows (warm-up rows keep only warmup_seconds)."""
    rows = sdexp.load_rows(folder, columns=["seconds", "warmup_seconds"])
    timed = rows.seconds.dropna()
    return {"steady_images_per_s": round(len(timed) / timed.sum(), 3) if len(timed) else None,
            "warmup_seconds": round(float(rows.warmup_seconds.sum()), 2)}


def sweep(grid, device, dtype, out: Path, batch_size, scorer=None, compile_unet: bool = False) -> dict:
    r = svn.sdexp_sweep(grid, device, dtype, out, batch_size, scorer, compile_unet=compile_unet)
    return {"images": len(grid), "seconds": round(r["seconds"], 2),
            "images_per_s": round(len(grid) / r["seconds"], 3), **steady(out), "stages": r["stages"]}


def progress(section: str, out: dict) -> None:
    """Each section on stderr as it finishes, so a run cut short still tells what it measured."""
    print(json.dumps({"section": section, **out[section]}), file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny models and a small grid, on the CPU")
    ap.add_argument("--naive-images", type=int, default=24, help="images of the grid the naive loop renders")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    quiet_libraries()
    cuda = torch.cuda.is_available() and not args.quick
    if not cuda and not args.quick:
        print("sdexp: error: no CUDA device; run with --quick for the CPU smoke test", file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    size, steps, sdxl_size = (512, 20, 1024) if cuda else (64, 3, 64)
    if cuda:
        source = str(svn.full_size_folder(dtype))
        model = ModelSpec("sd15-random", source)
        vaes = [VaeSpec("Automatic", None), VaeSpec("vae-a", f"{source}/vae"), VaeSpec("vae-b", f"{source}/vae/")]
        grid = svn.cells(model, vaes, steps, size)
        scorer = ClipScorer(str(svn.full_size_clip_folder()), device)
        xl = ModelSpec("sdxl-random", str(svn.full_size_folder(dtype, "sdxl")), skeleton="sdxl")
    else:
        model = ModelSpec("tiny", "tiny")
        vaes = [VaeSpec("Automatic", None), VaeSpec("tiny_alt", "tiny_alt")]
        grid = svn.cells(model, vaes, steps, size, seeds=(0, 1), prompts=svn.PROMPTS[:1], cfgs=(1.0, 7.0),
                         clip_skips=(1,))
        scorer = ClipScorer("tiny", device)
        xl = ModelSpec("tiny_sdxl", "tiny_sdxl", skeleton="sdxl")
    out: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "dtype": str(dtype).split(".")[1],
                 "torch": torch.__version__, "quick": not cuda}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "naive").mkdir()
        naive = svn.naive(grid[:args.naive_images], device, dtype, tmp / "naive")
        sd15 = sweep(grid, device, dtype, tmp / "sd15", args.batch_size)
        bare = svn.bare_work(grid, device, dtype, args.batch_size)["seconds"]
        scored = sweep(grid, device, dtype, tmp / "sd15-clip", args.batch_size, scorer)
        work = svn.bare_work(grid, device, dtype, args.batch_size, scorer, decode=True)["seconds"]
        naive_rate = min(args.naive_images, len(grid)) / naive["seconds"]
        out["sd15"] = {"size": size, "steps": steps, "sdexp": sd15,
                       "naive": {"images": min(args.naive_images, len(grid)), "seconds": round(naive["seconds"], 2),
                                 "images_per_s": round(naive_rate, 3)},
                       "bare_unet_loop_seconds": round(bare, 2),
                       "fraction_of_bare_unet_loop": round(bare / sd15["seconds"], 3),
                       "speedup_vs_naive": round(sd15["images_per_s"] / naive_rate, 2),
                       "sdexp_with_clip": scored, "bare_work_seconds": round(work, 2),
                       "fraction_of_bare_work": round(work / scored["seconds"], 3)}
        progress("sd15", out)
        if cuda:
            out["sd15_compile"] = sweep(grid, device, dtype, tmp / "sd15-compile", args.batch_size,
                                        compile_unet=True)
        else:
            out["sd15_compile"] = {"skipped": "run.compile applies on CUDA only"}
        progress("sd15_compile", out)
        xl_grid = svn.cells(xl, [VaeSpec("Automatic", None)], steps, sdxl_size, seeds=(0, 1),
                            prompts=svn.PROMPTS[:1] if not cuda else svn.PROMPTS, cfgs=(5.0,), clip_skips=(1,))
        xl_batch = 4 if cuda else args.batch_size
        xl_run = sweep(xl_grid, device, dtype, tmp / "sdxl", xl_batch)
        xl_bare = svn.bare_work(xl_grid, device, dtype, xl_batch)["seconds"]
        out["sdxl"] = {"size": sdxl_size, "steps": steps, "batch_size": xl_batch, "sdexp": xl_run,
                       "bare_unet_loop_seconds": round(xl_bare, 2),
                       "fraction_of_bare_unet_loop": round(xl_bare / xl_run["seconds"], 3)}
        progress("sdxl", out)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        from sdexp.renderer import resolve_batch_size

        chosen = resolve_batch_size({"batch_size": "auto"}, grid, device)
        auto = sweep(grid, device, dtype, tmp / "auto", "auto")
        memory = {"max_memory_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                  "total_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 2)} \
            if cuda else {"max_memory_allocated_gib": None, "total_memory_gib": None}
        if cuda:
            memory["fraction_of_total"] = round(memory["max_memory_allocated_gib"] / memory["total_memory_gib"], 3)
        out["batch_size_auto"] = {"batch_size": chosen, **memory, "sdexp": auto}
    out["goals"] = {"fraction_of_bare_unet_loop_at_least_0.85": out["sd15"]["fraction_of_bare_unet_loop"] >= 0.85,
                    "sd15_512_images_per_s_at_least_12": cuda and out["sd15"]["sdexp"]["images_per_s"] >= 12}
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
