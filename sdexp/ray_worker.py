"""One Ray actor of a sweep (sdexp.ray_backend): a long-lived renderer with its own bounded model
cache, CLIP scorer and device, rendering work units (sdexp.work_units) with the local engine.

It yields each batch as it finishes: PNG bytes (encoded in a background thread while the next
batch renders), the rows of its images and the batch's stage timings. It writes no file: the
driver is the store's single writer."""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import torch

from .stages import StageLog
from .store import png_bytes


class RenderWorker:
    def __init__(self, run: dict, scorer: dict, threads: int):
        torch.set_num_threads(max(1, threads))
        from .renderer import Renderer

        self.renderer = Renderer.for_run(run, scorer)
        self.stages = StageLog()           # warm-up is per worker: each one's first batch of a model and size
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="sdexp-png")

    def describe(self) -> dict:
        import socket

        return {"host": socket.gethostname(), "pid": os.getpid(), "device": str(self.renderer.device)}

    def auto_batch_size(self, run: dict, cells: list) -> int:
        from .renderer import resolve_batch_size

        return resolve_batch_size(run, cells, self.renderer.device)

    def loads(self) -> list[str]:
        """The name of each checkpoint this worker has loaded, once per load."""
        return list(self.renderer.cache.loaded)

    def render_unit(self, sweep: str, cells: list, batch_size: int):
        """Render one work unit; yields one dict per batch and VAE: images ((image_id, PNG bytes)),
        rows and record (batch_id, images, warmup, wall and each stage's seconds)."""
        clock = self.renderer.clock()
        pending: deque = deque()
        with clock.active():
            start = time.perf_counter()
            for items, rows, warmup in self.renderer.batches(sweep, cells, batch_size, self.stages):
                images = [(i["cell"].image_id, i["image"]) for i in items]
                now = time.perf_counter()
                record = {"batch_id": items[0]["batch_id"], "images": len(items), "warmup": warmup,
                          "wall": now - start, **clock.take()}
                start = now
                pending.append((self._encoder.submit(_encode, images), rows, record))
                while len(pending) > 1 or (pending and pending[0][0].done()):
                    yield _finished(pending.popleft())
        while pending:
            yield _finished(pending.popleft())


def _encode(images: list) -> tuple[list, float]:
    t0 = time.perf_counter()
    return [(image_id, png_bytes(image)) for image_id, image in images], time.perf_counter() - t0


def _finished(entry) -> dict:
    future, rows, record = entry
    images, seconds = future.result()
    return {"images": images, "rows": rows, "record": {**record, "write": seconds}}
