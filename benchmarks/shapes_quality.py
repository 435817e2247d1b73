"""Quality of the shapes model, through the real sweep and score commands; prints key=value lines.

1. the judge on held-out real shapes (its accuracy on colour, shape and background);
2. a sweep of every caption of the set at the default settings (Euler a, 20 steps, CFG 7),
   `--seeds` seeds each, with model=shapes scorer=shapes; the judge's colour, shape and background
   rates on the generated images;
3. `sdexp score`: CLIP score (shapes CLIP), FD and CMMD on its image embeddings against a folder of
   held-out shapes, with N and 95% intervals.

    .venv/bin/python benchmarks/shapes_quality.py                 # 126 captions x 2 seeds, about 2 min on 2 cores
    .venv/bin/python benchmarks/shapes_quality.py --seeds 1 --steps 20 --cfg 7 --sampler euler_a
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SDEXP = [sys.executable, "-c", "from sdexp.cli import main; main()"]


def sdexp(args: list[str], cwd: Path) -> str:
    proc = subprocess.run([*SDEXP, *args], check=False, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"sdexp {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.0)
    p.add_argument("--sampler", default="euler_a")
    p.add_argument("--reference", type=int, default=378, help="held-out images in the reference folder")
    p.add_argument("--work", type=Path, default=None, help="keep the sweep here (default: a temporary folder)")
    args = p.parse_args()

    import sdexp as sd
    from sdexp.shapes import dataset, judge
    from sdexp.shapes.reference import write_captions

    # 1. the judge on held-out real images
    real = [dataset.image("heldout", i) for i in range(args.reference)]
    items = [dataset.item("heldout", i) for i in range(args.reference)]
    acc = judge.rates(real, items)
    print(f"judge_real_n={len(real)}")
    for k in ("colour", "shape", "background", "all"):
        print(f"judge_real_{k}_accuracy={acc[k]:.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ref = work / "heldout"
        dataset.write_folder(ref, "heldout", args.reference)
        prompts = write_captions(work / "captions.txt")
        seeds = ",".join(str(s) for s in range(args.seeds))
        t0 = time.perf_counter()
        sdexp(["model=shapes", "scorer=shapes", f"prompts.file={prompts}", f"seed=[{seeds}]",
               f"steps={args.steps}", f"cfg={args.cfg}", f"sampler={args.sampler}", *(["grid.x=seed"] if args.seeds > 1 else []),
               f"results_root={work / 'results'}", "name=quality"], ROOT)
        render_s = time.perf_counter() - t0
        folder = work / "results" / "quality"
        sdexp(["score", str(folder), "metrics=[clip_score,fd_clip,cmmd,shapes_judge]", f"reference={ref}",
               "group_by=all", "bootstrap.n=500"], ROOT)
        rows = sd.load_rows(folder)
        groups = sd.load_groups(folder)

        # 2. the judge on generated images
        from PIL import Image

        images = [np.array(Image.open(folder / p).convert("RGB")) for p in rows["image_path"]]
        wanted = [dataset.parse_caption(t) for t in rows["prompt"]]
        got = judge.rates(images, wanted)
        print(f"generated_n={len(images)}")
        print(f"settings=sampler:{args.sampler},steps:{args.steps},cfg:{args.cfg:g},size:64x64")
        for k in ("colour", "shape", "background", "all"):
            print(f"generated_{k}_rate={got[k]:.4f}")
        print(f"render_seconds={render_s:.1f}")

        # 3. CLIP score, FD and CMMD with N and intervals
        for metric in ("clip_score", "fd_clip", "cmmd", "shapes_judge"):
            g = groups[groups["metric"] == metric].iloc[0]
            print(f"{metric}={g['value']:.4f}")
            print(f"{metric}_ci95={g['ci_low']:.4f},{g['ci_high']:.4f}")
            print(f"{metric}_n={int(g['n'])}")
            if metric in ("fd_clip", "cmmd"):
                print(f"{metric}_n_reference={int(g['n_reference'])}")
        # the same metrics between two halves of the held-out set: the floor a perfect model reaches
        from sdexp.metrics.clip_features import ClipImageFeatures
        from sdexp.metrics.cmmd import cmmd
        from sdexp.metrics.fid import fid_from_features

        ex = ClipImageFeatures("shapes")
        more = [dataset.image("heldout", i) for i in range(args.reference, args.reference + len(images))]
        f_ref, f_more = ex.features(real), ex.features(more)
        print(f"fd_clip_real_vs_real={fid_from_features(f_more, f_ref):.4f}")
        print(f"cmmd_real_vs_real={cmmd(f_more, f_ref):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
