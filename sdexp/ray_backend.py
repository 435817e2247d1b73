"""run.backend=ray: a sweep's work units (sdexp.work_units) on long-lived Ray actors
(sdexp.ray_worker), this process the store's single writer.

- Connecting: ray.address=local starts a cluster on this machine (or uses the one this process
  has already started), auto joins the running cluster, host:port or ray://host:port a given one.
- Workers: ray.workers actors (default one per GPU of the cluster; without GPUs one per
  ray.cpus_per_worker CPUs), each holding ray.gpus_per_worker GPUs and ray.cpus_per_worker CPUs
  (also its torch threads) and its own cache of run.max_resident_models checkpoints.
- Affinity: units queue per model; a worker takes the next unit of the model it holds, and when
  that queue is empty, of the model no other worker holds with the most units left. So a worker
  loads each checkpoint at most once, and LoRA switches stay switches on a loaded model.
- Results stream back batch by batch (Ray streaming generators) and go through the local run's
  writer (sdexp.writer): images durable before the rows that name them, so a driver killed with
  kill -9 resumes on rerun as a local sweep does.
- Faults: a worker that dies (killed, node lost, out of memory) is replaced and its unfinished
  units run again whole, on the same batches; images already written are not written twice.
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field

from .cell import Cell
from .plan import ConfigError, Plan
from .stages import StageLog
from .store import Store
from .work_units import WorkUnit, work_units
from .writer import Writer

IN_FLIGHT = 2              # units handed to a worker at once: the next one waits there, not on the driver
MAX_REPLACEMENTS = 8       # workers replaced in one sweep before it stops


class WorkerFault(RuntimeError):
    """Workers kept dying: the sweep stops (what is stored stays stored; a rerun resumes)."""


@dataclass
class Slot:
    """One worker place: its current actor, the model it holds, its units in flight, its figures."""
    index: int
    actor: object = None
    model: object = None
    in_flight: list = field(default_factory=list)     # [(generator, unit)]
    images: int = 0
    busy: float = 0.0
    replaced: int = 0
    info: dict = field(default_factory=dict)


_started = False           # this process started the local cluster it is connected to (and shuts it down)


def connect(address: str) -> None:
    """Connect this process to Ray (once; a process already connected keeps its cluster)."""
    global _started
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, namespace="sdexp", include_dashboard=False if address == "local" else None,
                 logging_level=logging.WARNING, log_to_driver=True)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"ray.address={address!r}: cannot connect to a Ray cluster ({e}); valid: local, "
                          f"auto (a running cluster) or the head's host:port") from None
    _started = address == "local"


def disconnect() -> None:
    """Shut down the local cluster this process started; a cluster it joined stays up."""
    global _started
    import ray

    if _started:
        ray.shutdown()
        _started = False


def check_cluster(plan: Plan) -> None:
    """Connect and check that the plan's workers fit the cluster: a ConfigError (one line) before
    any file of the sweep changes."""
    import ray

    connect(plan.ray["address"])
    try:
        worker_shape(plan.ray, ray.cluster_resources(), len(plan.cells))
    except ConfigError:
        disconnect()
        raise


def worker_shape(ray_conf: dict, resources: dict, units: int) -> tuple[int, float, float]:
    """(workers, gpus and cpus per worker) for the cluster's resources; raises when they do not fit."""
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    per_gpu = ray_conf["gpus_per_worker"]
    per_gpu = (1.0 if gpus else 0.0) if per_gpu is None else float(per_gpu)
    per_cpu = float(ray_conf["cpus_per_worker"])
    workers = ray_conf["workers"]
    if workers is None:
        workers = int(gpus // per_gpu) if per_gpu else int(cpus // per_cpu)
        workers = max(1, min(workers, units))
    for name, need, have in (("GPU", per_gpu, gpus), ("CPU", per_cpu, cpus)):
        if workers * need > have + 1e-9:
            raise ConfigError(f"ray.workers={workers} with ray.{name.lower()}s_per_worker={need:g} needs "
                              f"{workers * need:g} {name}s; the cluster has {have:g}; valid: at most "
                              f"{int(have // need) if need else workers} workers")
    return workers, per_gpu, per_cpu


class Dispatcher:
    """Units queued per model, handed to slots with model affinity."""

    def __init__(self, units: list[WorkUnit]):
        self.queues: dict[object, deque] = {}
        for u in units:
            self.queues.setdefault(u.model, deque()).append(u)

    def next_for(self, slot: Slot, slots: list[Slot]):
        if self.queues.get(slot.model):
            return self.queues[slot.model].popleft()
        left = [m for m, q in self.queues.items() if q]
        if not left:
            return None
        held = {s.model for s in slots if s is not slot}
        slot.model = max(left, key=lambda m: (m not in held, len(self.queues[m])))
        return self.queues[slot.model].popleft()

    def again(self, units: list[WorkUnit]) -> None:
        for u in reversed(units):
            self.queues.setdefault(u.model, deque()).appendleft(u)

    def empty(self) -> bool:
        return not any(self.queues.values())


def render_on_ray(plan: Plan, store: Store, todo: list[Cell], log=print, on_batch=None) -> dict:
    """Render `todo` on Ray actors, writing into `store`. `on_batch(slots)`, if given, is called after
    each batch is handed to the writer. Returns the figures: images, seconds, workers (per slot:
    images, images/s, replaced, loads)."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    from .ray_worker import RenderWorker
    from .sweep import WRITER_THREADS, progress_bar

    connect(plan.ray["address"])
    slots: list[Slot] = []
    try:
        workers, per_gpu, per_cpu = worker_shape(plan.ray, ray.cluster_resources(), len(todo))
        remote = ray.remote(RenderWorker)
        threads = max(1, round(per_cpu))
        token = uuid.uuid4().hex[:6]

        def new_actor(slot: Slot):
            slot.actor = remote.options(
                name=f"{plan.name}-worker-{slot.index}-{token}-{slot.replaced}", num_gpus=per_gpu,
                num_cpus=per_cpu, max_concurrency=1).remote(plan.run, plan.scorer, threads)
            slot.model, slot.in_flight = None, []

        slots = [Slot(i) for i in range(workers)]
        for s in slots:
            new_actor(s)
        for s, info in zip(slots, ray.get([s.actor.describe.remote() for s in slots])):
            s.info = info
        batch_size = min(ray.get([s.actor.auto_batch_size.remote(plan.run, plan.cells) for s in slots]))
        units = work_units(todo, batch_size)
        if plan.ray["workers"] is None and len(units) < workers:     # by default no worker waits idle
            for s in slots[len(units):]:
                ray.kill(s.actor)
            slots, workers = slots[:len(units)], len(units)
        log(f"sdexp: ray: {len(units)} work units on {workers} worker{'s' * (workers > 1)} "
            f"({per_gpu:g} GPU, {per_cpu:g} CPU each; {', '.join(sorted({s.info['device'] for s in slots}))}), "
            f"batch size {batch_size}")
        dispatch = Dispatcher(units)
        t_start = time.perf_counter()        # the workers are up: from here the sweep's own throughput
        owner: dict = {}                 # generator -> (slot, unit)
        written: set[str] = set()
        stages = StageLog()
        bar = progress_bar(plan, len(todo))
        try:
            with Writer(store, threads=WRITER_THREADS) as writer:
                while not dispatch.empty() or owner:
                    for s in slots:
                        while len(s.in_flight) < IN_FLIGHT and (unit := dispatch.next_for(s, slots)):
                            gen = s.actor.render_unit.remote(plan.name, unit.cells, batch_size)
                            s.in_flight.append((gen, unit))
                            owner[gen] = (s, unit)
                    ready, _ = ray.wait(list(owner), num_returns=1)
                    gen = ready[0]
                    slot, unit = owner[gen]
                    try:
                        payload = ray.get(next(gen))
                    except StopIteration:
                        slot.in_flight.remove((gen, unit))
                        del owner[gen]
                        continue
                    except RayTaskError as e:          # the unit failed on the worker: its error, as local
                        cause = getattr(e, "cause", None)
                        raise (cause if isinstance(cause, BaseException) else e) from None
                    except RayActorError as e:         # died, killed, node lost, out of memory
                        lost = [u for _, u in slot.in_flight]
                        for g, _ in slot.in_flight:
                            owner.pop(g, None)
                        if sum(s.replaced for s in slots) >= MAX_REPLACEMENTS:
                            raise WorkerFault(f"ray: {MAX_REPLACEMENTS} workers died in this sweep; the last: "
                                              f"{str(e).splitlines()[0]}") from None
                        slot.replaced += 1
                        log(f"sdexp: ray: worker {slot.index} died ({type(e).__name__}); replaced, and its "
                            f"{len(lost)} unfinished unit{'s' * (len(lost) != 1)} run again")
                        dispatch.again(lost)
                        new_actor(slot)
                        continue
                    keep = [k for k, (image_id, _) in enumerate(payload["images"]) if image_id not in written]
                    if keep:
                        images = [payload["images"][k] for k in keep]
                        written.update(image_id for image_id, _ in images)
                        writer.submit(len(stages.batches), images, [payload["rows"][k] for k in keep])
                        stages.batches.append({**payload["record"], "worker": slot.index})
                        slot.images += len(keep)
                        slot.busy += payload["record"]["wall"]
                        bar.update(len(keep))
                    if on_batch:
                        on_batch(slots)
            for k, b in enumerate(stages.batches):
                b["write"] = b.get("write", 0.0) + writer.seconds.get(k, 0.0)
        finally:
            bar.close()
        figures = _figures(ray, slots, time.perf_counter() - t_start)
    finally:
        for s in slots:               # on every way out (an error, Ctrl-C): a joined cluster keeps no actor
            ray.kill(s.actor)
        disconnect()
    store.save_timings(stages.batches)
    log(f"sdexp: {stages.line()}")
    log("sdexp: ray: " + "; ".join(
        f"worker {w['index']} ({w['host']}): {w['images']} images, {w['images_per_s']:.2f} img/s"
        + (f", replaced {w['replaced']}x" if w["replaced"] else "") for w in figures["workers"])
        + f"; {figures['images_per_s']:.2f} img/s in all")
    return figures


def _figures(ray, slots: list[Slot], seconds: float) -> dict:
    loads = ray.get([s.actor.loads.remote() for s in slots])
    images = sum(s.images for s in slots)
    return {"images": images, "seconds": seconds, "images_per_s": images / seconds if seconds else math.nan,
            "workers": [{"index": s.index, "host": s.info.get("host"), "images": s.images,
                         "images_per_s": s.images / s.busy if s.busy else 0.0, "replaced": s.replaced,
                         "loads": Counter(loaded)} for s, loaded in zip(slots, loads)]}
