"""Benchmark: writing a sweep's images and rows with one fsync per file (before) against the writer
pool's one sync per batch (sdexp.writer), into the same file system, in this one process.

Both write the same PNGs (noise, so zlib works as hard as on a real render) in batches, each batch's
images then its part file, through `sdexp.writer.Writer`; `durable_each` switches the baseline's
per-file fsync on. Prints key=value lines, the last `speedup=<per-file seconds / per-batch seconds>`.

    python benchmarks/store_sync.py                           # 256 images of 64x64, batches of 8, in /tmp
    python benchmarks/store_sync.py --size 512 --images 64 --dir results/bench-sync
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sdexp import store as store_module
from sdexp.store import Store
from sdexp.writer import Writer


def batches(n: int, batch: int, size: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(0, n, batch):
        images = [(f"{seed:02d}{i:014x}", Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
                  for i in range(b, min(n, b + batch))]
        out.append((b, images, [{"sweep": "bench", "image_id": i, "seed": k} for k, (i, _) in enumerate(images)]))
    return out


class Calls:
    """Counts os.fsync and syncfs calls."""

    def __init__(self):
        self.fsync = self.syncfs = 0
        self._fsync, self._syncfs = os.fsync, store_module._syncfs

    def __enter__(self):
        real = self._syncfs()

        def fsync(fd):
            self.fsync += 1
            return self._fsync(fd)

        def syncfs(fd):
            self.syncfs += 1
            return real(fd)

        os.fsync = fsync
        store_module._syncfs = (lambda: syncfs) if real is not None else (lambda: None)
        return self

    def __exit__(self, *exc):
        os.fsync, store_module._syncfs = self._fsync, self._syncfs


def run(folder: Path, work: list, durable_each: bool, threads: int) -> tuple[float, Calls]:
    with Calls() as calls:
        t0 = time.perf_counter()
        with Store(folder).lock() as store, Writer(store, threads=threads, durable_each=durable_each) as writer:
            for key, images, rows in work:
                writer.submit(key, images, rows)
        return time.perf_counter() - t0, calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the best of each counts")
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary folder under /tmp)")
    args = ap.parse_args()
    parent = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sdexp-sync-"))
    parent.mkdir(parents=True, exist_ok=True)
    best = {"per_file": float("inf"), "per_batch": float("inf")}
    counts = {}
    try:
        for r in range(args.repeats):
            for name, each in (("per_file", True), ("per_batch", False)):
                work = batches(args.images, args.batch, args.size, seed=r)
                seconds, calls = run(parent / f"{name}-{r}", work, each, args.threads)
                best[name] = min(best[name], seconds)
                counts[name] = (calls.fsync, calls.syncfs)
    finally:
        if not args.dir:
            shutil.rmtree(parent, ignore_errors=True)
    print(f"images={args.images}")
    print(f"batch={args.batch}")
    print(f"size={args.size}")
    print(f"threads={args.threads}")
    print(f"filesystem_dir={parent}")
    for name in ("per_file", "per_batch"):
        print(f"{name}_seconds={best[name]:.3f}")
        print(f"{name}_fsyncs={counts[name][0]}")
        print(f"{name}_syncfs={counts[name][1]}")
    print(f"speedup={best['per_file'] / best['per_batch']:.2f}")


if __name__ == "__main__":
    main()
