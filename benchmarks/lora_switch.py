"""Benchmark: what a LoRA x weight sweep costs per switch, against reloading the base model.

sdexp loads the base model once, loads each LoRA file once as a named adapter, and switches LoRA
and weight with `set_adapters`. A loop that reloads the checkpoint for each LoRA/weight pair (as a
script calling `from_pretrained` per cell does) pays a full model load per switch. Both are timed
here side by side, on the same model, in one process. Prints the seconds of each step and, last,
`switch_vs_reload=<ratio>` (model load time / weight-switch time).

    python benchmarks/lora_switch.py                   # tiny model, CPU
    python benchmarks/lora_switch.py --full-size --device cuda --dtype float16
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from adapter_files import write_kohya_lora  # noqa: E402  (tests/ builds LoRA files from code)
from sweep_vs_naive import full_size_folder  # noqa: E402

from sdexp.lora import LoraSpec, activate_lora  # noqa: E402
from sdexp.models import ModelSpec, load_model  # noqa: E402
from sdexp.renderer import quiet_libraries  # noqa: E402


def timed(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full-size", action="store_true", help="SD1.5 architecture, random weights")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    quiet_libraries()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    source = str(full_size_folder(dtype)) if args.full_size else "tiny"
    spec = ModelSpec("bench", source)

    load_s = timed(lambda: load_model(spec, device, dtype), repeat=3)
    model = load_model(spec, device, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        loras = [LoraSpec(f"lora{i}", str(write_kohya_lora(Path(tmp) / f"lora{i}.safetensors", model.pipe, seed=i)))
                 for i in range(2)]
        first_s = [timed(lambda lora=lora: activate_lora(model, lora, 1.0)) for lora in loras]
        weights = [0.0, 0.25, 0.5, 0.75, 1.0]
        pairs = [(lora, w) for lora in loras for w in weights]
        switch_s = timed(lambda: [activate_lora(model, lora, w) for lora, w in pairs], repeat=5) / len(pairs)
        off_s = timed(lambda: activate_lora(model, None, None), repeat=5)
    print(f"model: {'full-size SD1.5 (random weights)' if args.full_size else 'tiny'}, {device}, {args.dtype}")
    print(f"base model load (median of 3)       {load_s:8.3f} s")
    print(f"first load of each LoRA file         {', '.join(f'{s:.3f}' for s in first_s)} s")
    print(f"LoRA/weight switch (median per pair) {switch_s:8.4f} s   ({len(pairs)} pairs)")
    print(f"switch LoRA off                      {off_s:8.4f} s")
    print(f"switch_vs_reload={load_s / switch_s:.1f}")


if __name__ == "__main__":
    main()
