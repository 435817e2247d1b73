"""One job's settings: every axis key read through the registry, lists and A1111 ranges expanded.

A job config may give any axis several values (`cfg='[3,5,7]'`, `steps='10-30 (+10)'`,
`sampler='[euler_a,dpmpp_2m]'`); `settings` expands them into one `JobView` per combination (seeds
and prompt sets stay inside a view: they never change what a view resolves). Resolvers that read
files (checkpoint headers, LoRAs, embeddings, init images, prompt files) run once per distinct
input through a `Memo`, so a 720-view job costs about what one view costs.
"""
from __future__ import annotations

import itertools

from omegaconf import OmegaConf

from .axes import setting_axes
from .axis_values import expand


class _Node(dict):
    """A plain config node read by attribute or key (`view.model.name`, `view.prompts["items"]`)."""

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _plain(value):
    if isinstance(value, dict):
        return _Node({k: _plain(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def job_container(cfg) -> dict:
    """A job config resolved to plain values: a DictConfig's `to_container(resolve=True)`, or the
    launcher's ResolvedJob (already resolved) as a plain dict (YAML and JSON take no dict subclass)."""
    return dict(cfg) if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)


def interpolated(cfg, key: str) -> bool:
    """True when the job config's top-level `key` is an interpolation (`width: ${model.width}`)."""
    return key in cfg.interpolations if isinstance(cfg, dict) else OmegaConf.is_interpolation(cfg, key)


class Job:
    """One job config as plain values (read once: OmegaConf access is slow for thousands of views)."""

    def __init__(self, cfg, container: dict | None = None):
        """`cfg`: a DictConfig or the launcher's ResolvedJob; `container`: job_container(cfg), when the
        caller has it already."""
        self.values = _plain(job_container(cfg) if container is None else container)
        self.follows_model = {k: interpolated(cfg, k) for k in ("width", "height")}


class JobView:
    """A job config with some top-level keys set to one value each (one item of an in-job list)."""

    def __init__(self, job: Job, settings: dict):
        self._job = job
        self._settings = settings

    def __getattr__(self, key: str):
        settings = self.__dict__["_settings"]
        return settings[key] if key in settings else self.__dict__["_job"].values[key]

    def __getitem__(self, key: str):
        """A top-level or dotted key (`view["hires.scale"]`), with this view's setting of it."""
        if key in self._settings or "." not in key:
            return self.__getattr__(key)
        head, rest = key.split(".", 1)
        return _get(self.__getattr__(head), rest)

    def follows_model(self, key: str) -> bool:
        """True when `key` (width, height) was not set by the user: it is the model group's size."""
        return self._job.follows_model[key]



def _get(node, dotted: str):
    for part in dotted.split("."):
        node = node[part]
    return node


class Memo:
    """Results (or the ValueError) of resolver calls, one per distinct argument tuple, for one plan."""

    def __init__(self):
        self._done: dict = {}

    def __call__(self, fn, *args):
        key = (fn, args)
        if key not in self._done:
            try:
                self._done[key] = (fn(*args), None)
            except ValueError as e:
                self._done[key] = (None, e)
        value, error = self._done[key]
        if error is not None:
            raise error
        return value


_MISSING = object()
# keys whose lists stay inside one view: the engine loops over them itself
INNER_KEYS = ("seed",)


def _select(values, dotted: str):
    """A dotted key of a job's plain values, or _MISSING."""
    node = values
    for part in dotted.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError):
            return _MISSING
    return node


def settings(cfg, errors: list[str], job: Job | None = None) -> list[JobView]:
    """The views of one job: one per combination of the values its axis keys list. Bad values are
    appended to `errors` (once each) and left out. Values are read from the job's resolved plain
    values (`job`, when the caller has made it), not through OmegaConf: a multirun has thousands."""
    base, lists = {}, {}
    job = job or Job(cfg)
    for axis in setting_axes():
        key = axis.config_key
        if key in INNER_KEYS:
            continue
        raw = _select(job.values, key)
        if raw is _MISSING:
            continue
        is_list = isinstance(raw, tuple)
        if raw is None or (axis.kind == "file" and not is_list):
            continue
        try:
            items = expand(raw, axis.kind, axis.splits)
        except ValueError as e:
            errors.append(f"{key}={list(raw) if is_list else raw!r}: {e}")
            continue
        if not items:
            errors.append(f"{key}=[] holds no values; valid: {axis.doc or 'one value or a list of them'}")
            continue
        values = []
        for item in items:
            try:
                values.append(axis.convert(item) if axis.kind not in ("text", "file", "size") else item)
            except ValueError as e:
                if str(e) not in errors:
                    errors.append(str(e))
        values = list(dict.fromkeys(values))
        if len(values) == 1:
            base[key] = values[0]
        elif values:
            lists[key] = values
    keys = list(lists)
    return [JobView(job, {**base, **dict(zip(keys, combo))}) for combo in itertools.product(*lists.values())]
