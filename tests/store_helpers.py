"""Stores for the store tests (real Parquet part files and real PNGs, no rendering) and runs of
sdexp killed with SIGKILL."""
from __future__ import annotations

import hashlib
import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from sdexp.schema import rows_table
from sdexp.store import Store, image_relpath


def tiny_png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), i % 251, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def synthetic_store(folder: Path, parts: int, rows_per_part: int, images: bool = True) -> Store:
    """A store as a sweep of parts * rows_per_part images leaves it, one part file per batch (real
    Parquet in the declared schema, written directly: append_rows would fsync each)."""
    store = Store(folder)
    store.rows.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in range(parts * rows_per_part):
        image_id = hashlib.sha256(str(n).encode()).hexdigest()[:16]
        data = tiny_png(n)
        if images:
            path = store.folder / image_relpath(image_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        rows.append({"sweep": folder.name, "cell_id": f"c{n % 7}", "image_id": image_id, "seed": n,
                     "cfg": float(n % 5), "image_path": image_relpath(image_id),
                     "image_sha256": hashlib.sha256(data).hexdigest(), "image_bytes": len(data)})
    table = rows_table(rows)
    for k in range(parts):
        pq.write_table(table.slice(k * rows_per_part, rows_per_part), store.rows / f"part-{k:06d}.parquet")
    return store


def killed_after(fn, seconds: float) -> int:
    """Run fn() in a forked child (modules already loaded, so the clock starts with fn) and SIGKILL it
    after `seconds`. Returns the child's wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            os._exit(0)
    time.sleep(seconds)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return os.waitpid(pid, 0)[1]


def killed_at_step(fn, step: int) -> bool:
    """Run fn() in a forked child that SIGKILLs itself at its `step`-th file-system change (a rename or
    a deletion): every point at which a kill leaves a different store. True when it was killed."""
    pid = os.fork()
    if pid == 0:
        count = [0]

        def counted(real):
            def wrapped(*a, **k):
                count[0] += 1
                if count[0] == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(*a, **k)
            return wrapped

        os.replace, os.unlink = counted(os.replace), counted(os.unlink)
        try:
            fn()
        finally:
            os._exit(0)
    status = os.waitpid(pid, 0)[1]
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
