"""Checkpoints of the shapes training (safetensors only): weights, optimiser state, step, losses and
the module's architecture, so a run cut off resumes where it stopped and never into another model."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch


def save_checkpoint(path: Path, step: int, modules: dict, optimizer, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {f"{name}.{k}": v.detach().contiguous() for name, m in modules.items()
               for k, v in m.state_dict().items()}
    for i, state in optimizer.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"opt.{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
    meta = {"step": str(step), **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(path: Path, modules: dict, optimizer, arch: str | None = None) -> tuple[int, dict]:
    """Restore modules and optimiser from a checkpoint; (0, {}) when there is none. A checkpoint of
    another architecture than `arch` (architecture() of the first module) is refused."""
    from safetensors import safe_open

    if not path.is_file():
        return 0, {}
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        if arch is not None and json.loads(meta.get("arch", json.dumps(arch))) != arch:
            raise SystemExit(f"sdexp: error: {path} holds a model of another architecture; "
                             f"delete it or pass another --work")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for name, m in modules.items():
        m.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, key = k.split(".", 2)
            state.setdefault(int(i), {})[key] = v
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    extra = {k: json.loads(v) for k, v in meta.items() if k != "step"}
    return int(meta["step"]), extra


def architecture(module) -> str:
    """A module's config as JSON, without version stamps: a checkpoint resumes only into the same one."""
    config = module.config
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.dumps({k: v for k, v in config.items() if not k.startswith("_") and "version" not in k
                       and k != "scaling_factor"}, sort_keys=True, default=str)


class Stage:
    """A training loop's bookkeeping: resume, periodic checkpoints, a running loss and timing."""

    def __init__(self, name: str, work: Path, steps: int, modules: dict, optimizer, save_every: int, log):
        self.name, self.path, self.steps = name, work / f"{name}.safetensors", steps
        self.modules, self.optimizer, self.save_every, self.log = modules, optimizer, save_every, log
        self.arch = architecture(next(iter(modules.values())))
        self.step, extra = load_checkpoint(self.path, modules, optimizer, self.arch)
        self.losses: list[float] = extra.get("losses", [])
        self.seconds = float(extra.get("seconds", 0.0))
        self._t = time.perf_counter()
        self._recent: list[float] = []
        if self.step:
            log(f"{name}: resumed at step {self.step}/{steps}")

    def done(self) -> bool:
        return self.step >= self.steps

    def record(self, loss: float) -> None:
        self.step += 1
        self._recent.append(loss)
        if self.step % 50 == 0 or self.step == self.steps:
            now = time.perf_counter()
            self.seconds += now - self._t
            self._t = now
            self.losses.append(float(np.mean(self._recent)))
            self._recent = []
            self.log(f"{self.name}: step {self.step}/{self.steps} loss {self.losses[-1]:.5f} "
                     f"({self.seconds:.0f} s)")
        if self.step % self.save_every == 0 or self.step == self.steps:
            self.save()

    def save(self) -> None:
        save_checkpoint(self.path, self.step, self.modules, self.optimizer,
                        {"losses": self.losses, "seconds": self.seconds, "arch": self.arch})

    def summary(self) -> dict:
        return {"steps": self.step, "seconds": round(self.seconds, 1),
                "final_loss": self.losses[-1] if self.losses else None}


def cached(path: Path, compute) -> tuple:
    """Tensors kept in the work folder (safetensors) so a resumed run does not recompute them."""
    from safetensors.torch import load_file, save_file

    if path.is_file():
        data = load_file(str(path))
        return tuple(data[str(i)] for i in range(len(data)))
    values = tuple(compute())
    save_file({str(i): v.contiguous() for i, v in enumerate(values)}, str(path))
    return values
