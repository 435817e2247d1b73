"""Batch sizes: chosen from available memory, and split in halves when a batch runs out of memory."""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import torch

T = TypeVar("T")
CPU_BATCH = 8
MAX_BATCH = 64
# measured order of magnitude for an SD1.5 UNet in half precision with SDPA at 512x512,
# guidance on (two UNet samples per image): activations per image in the batch
GPU_BYTES_PER_IMAGE_512 = 0.6 * 2**30


def auto_batch_size(device: torch.device, width: int, height: int) -> int:
    """Images per batch: a fixed size on the CPU; on CUDA, what fits in 70% of free memory."""
    if device.type != "cuda":
        return CPU_BATCH
    free, _ = torch.cuda.mem_get_info(device)
    per_image = GPU_BYTES_PER_IMAGE_512 * (width * height) / (512 * 512)
    return int(max(1, min(MAX_BATCH, 0.7 * free // per_image)))


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def run_split_on_oom(fn: Callable[[Sequence[T]], object], items: Sequence[T]) -> list[tuple[Sequence[T], object]]:
    """Run fn on all items; on out-of-memory, retry each half on its own (recursively).

    Returns the (items, result) chunks actually run, so callers can record true batch sizes.
    """
    try:
        return [(items, fn(items))]
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if len(items) == 1 or not is_out_of_memory(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    half = len(items) // 2
    return run_split_on_oom(fn, items[:half]) + run_split_on_oom(fn, items[half:])
