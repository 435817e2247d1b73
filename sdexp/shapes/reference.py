"""Write held-out shapes as a reference folder for FD, CMMD (and FID/KID), and score images with the judge.

    python -m sdexp.shapes.reference results/shapes-heldout            # 378 images, 3 per caption
    python -m sdexp.shapes.reference results/shapes-heldout --count 126 --captions prompts.txt
    python -m sdexp.shapes.reference results/demo-heldout --prompts conf/prompts/shapes.yaml --count 192

The folder holds PNGs of the held-out split (never seen in training) and captions.txt; `--captions`
also writes every caption of the set, one a line, for `prompts.file=`; `--prompts` keeps only the
captions a sweep renders, so FD and CMMD compare like with like.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import dataset

DEFAULT_COUNT = 3 * len(dataset.COMBINATIONS)


class JudgeScorer:
    """The `shapes_judge` per-image metric: 1 when the judge sees the prompted colour and shape, else 0
    (NaN for a prompt outside the set's grammar). Registered in sdexp.metrics.registry."""

    implementation = "sdexp.shapes.judge.judge"

    def __init__(self, options: dict | None = None, device=None):
        from .. import __version__

        self.model_id = "shapes-judge:v1"
        self.version = f"sdexp {__version__}"

    def score(self, images, prompts) -> list[float]:
        from .judge import judge

        out = []
        for im, prompt in zip(images, prompts):
            want = dataset.parse_caption(prompt)
            if want is None:
                out.append(float("nan"))
                continue
            v = judge(im)
            out.append(float(v.colour == want.colour and v.shape == want.shape))
        return out


def read_prompts(path: Path) -> list[str]:
    """Captions from a .txt (one a line) or a prompts .yaml (conf/prompts/*.yaml: a list under `items`)."""
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(path.read_text())
        items = data.get("items") if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise ValueError("no list of prompts under `items`")
        return [str(t) for t in items]
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise ValueError("no prompts in the file")
    return lines


def write_captions(path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(dataset.CAPTIONS) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"images (default {DEFAULT_COUNT})")
    p.add_argument("--split", default="heldout", choices=list(dataset.SPLITS))
    p.add_argument("--captions", type=Path, default=None, help="also write every caption to this file")
    p.add_argument("--prompts", type=Path, default=None,
                   help="only these captions (a .txt, one a line, or a prompts .yaml with `items`), each in turn")
    args = p.parse_args(argv)
    if args.count < 1:
        p.error(f"--count={args.count} must be >= 1")
    try:
        only = read_prompts(args.prompts) if args.prompts else None
        paths = dataset.write_folder(args.folder, args.split, args.count, only)
    except (OSError, ValueError) as e:
        p.exit(2, f"sdexp: error: --prompts={args.prompts}: {e}\n")
    print(f"sdexp: {len(paths)} {args.split} shapes in {args.folder.resolve()}")
    if args.captions:
        print(f"sdexp: {len(dataset.CAPTIONS)} captions in {write_captions(args.captions).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
