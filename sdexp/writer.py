"""The store's one writer: PNG encoding, hashing and atomic writes off the render thread.

The engine hands each finished batch (its images and their rows) to `Writer.submit` and goes on
rendering. A bounded pool of threads encodes and hashes the PNGs, writes each to a temporary name
and renames it into place, makes the batch's images durable with one sync (`store.sync_files`),
and only then writes the part file of the rows that name them. So at every moment, a kill -9
included, each stored row names whole, durable images; images without a row are rendered again
(and overwritten) by the next run, and temporary files are removed when it takes the lock.

`submit` blocks while `max_pending` batches are waiting or being written (the render thread's
`wait` stage), so memory stays bounded when writing is slower than rendering. PNG encoding (zlib),
hashing and file I/O release the GIL, so the threads run beside the render thread's torch work.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from .store import Store, sync_files


class Writer:
    def __init__(self, store: Store, threads: int = 2, max_pending: int = 4, durable_each: bool = False):
        self.store = store
        self.durable_each = durable_each        # one fsync per file as it is written (the benchmark's baseline)
        self.seconds: dict = {}                 # key of a batch -> seconds the writer spent on it
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="sdexp-writer")
        self._slots = threading.BoundedSemaphore(max(1, max_pending))
        self._rows_lock = threading.Lock()      # part files are appended one at a time (compaction counts them)
        self._futures: list[Future] = []

    def submit(self, key, images: list[tuple[str, object]], rows: list[dict]) -> None:
        """Write `images` ((image_id, PIL image) pairs) of the batch `key`, then `rows` (one per
        image, in that order; each gets image_path, image_sha256 and image_bytes). Blocks while the pool is full; raises
        the error of an earlier batch that failed."""
        self._raise_failed()
        self._slots.acquire()
        try:
            future = self._pool.submit(self._write, key, images, rows)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _write(self, key, images: list[tuple[str, object]], rows: list[dict]) -> None:
        t0 = time.perf_counter()
        facts = [self.store.write_image(image_id, image, sync=self.durable_each) for image_id, image in images]
        if not self.durable_each:
            sync_files([self.store.folder / f["image_path"] for f in facts])
        with self._rows_lock:
            self.store.append_rows([{**row, **f} for row, f in zip(rows, facts)])
        self.seconds[key] = time.perf_counter() - t0

    def _raise_failed(self) -> None:
        done = [f for f in self._futures if f.done()]
        self._futures = [f for f in self._futures if not f.done()]
        for f in done:
            f.result()             # raises the batch's error (StoreError: disk full, ...)

    def close(self) -> None:
        """Wait for every submitted batch; raise the first error."""
        try:
            for f in self._futures:
                f.result()
        finally:
            self._futures = []
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:                      # the render failed: what was handed over is still written
            try:
                self.close()
            except Exception:
                pass
