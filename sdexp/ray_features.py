"""`sdexp score run.backend=ray`: the Inception or CLIP image features of a sweep's images (and of a
reference folder) extracted on Ray actors, each holding its own copy of the network on its device.
This process reads the PNG bytes, hands out chunks (two per actor in flight) and gets the features
back in order; it stays the one writer of the feature store (sdexp.metrics.inception.FeatureStore).
The actors take the same ray.* keys as a sweep (sdexp.ray_backend: connect, worker_shape). A weights
file or model folder is opened by its path on the actor's node: on a multi-node cluster it must be
on a shared file system (as results/ is for the driver)."""
from __future__ import annotations

import io
from collections import deque
from pathlib import Path

import numpy as np

IN_FLIGHT = 2          # chunks waiting at each actor


class FeatureWorker:
    """A Ray actor holding one feature extractor (`make(**kwargs, device=...)`) on its device."""

    def __init__(self, make, kwargs: dict, threads: int):
        import torch

        from .devices import resolve_device

        torch.set_num_threads(threads)
        self.extractor = make(**kwargs, device=resolve_device("auto"))

    def features(self, pngs: list[bytes]) -> np.ndarray:
        from .metrics.inception import load_rgb

        return self.extractor.features([load_rgb(io.BytesIO(b)) for b in pngs])


def ray_extract(make, kwargs: dict, ray_conf: dict, log=print):
    """An `extract` for store_features/folder_features: chunks of image paths -> their features, in
    order, computed on Ray actors. The cluster is joined (or started) only when there is a chunk."""

    def extract(chunks):
        import ray

        from .ray_backend import connect, disconnect, worker_shape

        chunks = list(chunks)
        if not chunks:
            return
        connect(ray_conf["address"])
        actors = []
        try:
            workers, per_gpu, per_cpu = worker_shape(ray_conf, ray.cluster_resources(), len(chunks))
            remote = ray.remote(FeatureWorker).options(num_gpus=per_gpu, num_cpus=per_cpu)
            actors = [remote.remote(make, kwargs, max(1, round(per_cpu))) for _ in range(workers)]
            log(f"sdexp: ray: {getattr(make, 'what', 'Inception')} features of {len(chunks)} chunk"
                f"{'s' * (len(chunks) != 1)} on {workers} worker{'s' * (workers != 1)} "
                f"({per_gpu:g} GPU, {per_cpu:g} CPU each)")
            pending: deque = deque()
            for k, chunk in enumerate(chunks):
                pending.append(actors[k % workers].features.remote([Path(p).read_bytes() for p in chunk]))
                if len(pending) >= IN_FLIGHT * workers:
                    yield ray.get(pending.popleft())
            while pending:
                yield ray.get(pending.popleft())
        finally:
            for actor in actors:
                ray.kill(actor)
            disconnect()

    return extract
