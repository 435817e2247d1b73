"""A sweep's work units: the parts of the local engine's work that can run on any worker.

Each unit is rendered by the local engine itself (`sdexp.render.render(unit.cells, ...)`) and
makes exactly the batches the local run makes of those cells, so a worker's images are
byte-identical to a local run's:
- one unit per batch of one-pass cells (one model, sampler, steps, size and guidance; the
  trajectories `plan_batches` puts together, with every VAE's cells of them);
- one unit per model for its two-pass (hires) cells: their first passes batch together and every
  second pass starts from them;
- one unit for all refiner cells with the base-alone cells that share their base denoise: the
  refiner passes start from the base latents of every base model.
Each unit names the model it loads first, so a scheduler can send it where that model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from .cell import Cell
from .render import model_parts, plan_batches


@dataclass
class WorkUnit:
    index: int
    kind: str                  # batch, two_pass or refiner
    model: object              # the ModelSpec it loads first
    cells: list[Cell]


def work_units(cells: list[Cell], batch_size: int) -> list[WorkUnit]:
    """The units of `cells`, models in order of first appearance, in the local run's order."""
    units: list[WorkUnit] = []
    refiner_cells: list[Cell] = []

    def add(kind, model, part):
        units.append(WorkUnit(len(units), kind, model, part))

    for spec in dict.fromkeys(c.model for c in cells):
        one, plain, two, refined = model_parts(cells, spec)
        for batch in plan_batches(one, batch_size):
            add("batch", spec, [c for t in batch.trajectories for c in t])
        if two:
            add("two_pass", spec, two)
        refiner_cells += refined + plain
    if refiner_cells:
        add("refiner", refiner_cells[0].model, refiner_cells)
    return units
