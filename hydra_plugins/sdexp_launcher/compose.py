"""Job configs of a multirun, identical to Hydra's `load_sweep_config`, at a fraction of its cost.

Hydra composes every job from scratch (defaults list, config files, schema merge): about 0.1 to
0.2 s a job. Most overrides of a sweep set values, not config-group choices, so this composes
once per distinct set of *composition overrides* (config-group choices such as `model=tiny`, and
anything under `hydra`) and applies each job's *value overrides* to a copy of that config, with
the same classification and the same apply function Hydra uses inside `load_configuration`
(`group_exists` on the config repository, `_apply_overrides_to_config`): `+key=`, `++key=`,
`~key`, lists, dicts, quoted strings and interpolations behave as in Hydra, struct mode included.

Anything this cannot do exactly goes through Hydra's full composition instead: an override that
fails to parse, a sweep value, an override that fails to apply (Hydra then raises its own error),
a Hydra without the functions used here, or `SDEXP_LAUNCHER_FULL_COMPOSE=1` in the environment.

`resolved` goes one step further for the common case, a job whose value overrides each set one
existing key to a literal: it returns the job's config already resolved to plain values (what
`OmegaConf.to_container(cfg, resolve=True)` of the composed job gives) without making a DictConfig.
Each distinct override line is applied by Hydra once, to a copy of its base, and the resolved value
at its key kept; a job is then its base's resolved container with those values put in. That is
exact when no interpolation of the base can see the key (no interpolation names any part of its
path, and the base calls no resolver that could read the config by itself) and the job's keys do
not nest in one another; any other job returns None and takes `compose`.
"""
from __future__ import annotations

import copy
import os
import pickle
import re
from typing import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

try:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
except ImportError:     # another Hydra: every job takes the full composition
    ConfigLoaderImpl = get_overrides_dirname = None

FULL_COMPOSE_ENV = "SDEXP_LAUNCHER_FULL_COMPOSE"   # "1": compose every job with Hydra (the slow reference path)
_HOOKS = ("_parse_overrides_and_create_caching_repo", "_apply_overrides_to_config")
# resolvers that read only their arguments (a key they read is named in the interpolation's text)
PURE_RESOLVERS = frozenset({"oc.env", "oc.decode", "oc.select", "oc.create", "oc.deprecated", "oc.dict.keys",
                            "oc.dict.values", "now"})
_RESOLVER_CALL = re.compile(r"\$\{\s*([\w.]+)\s*:")
_KEY_PART = re.compile(r"^[A-Za-z_][\w-]*$")
_UNSET = object()


class ResolvedJob(dict):
    """A job's config resolved to plain values, as `OmegaConf.to_container(cfg, resolve=True)` gives
    it. `interpolations`: its top-level keys whose value is an interpolation (`width: ${model.width}`).
    Jobs share the subtrees no override touched: read a ResolvedJob, never change it."""

    def __init__(self, values: dict, interpolations: frozenset):
        super().__init__(values)
        self.interpolations = interpolations


def full_compose_requested() -> bool:
    return os.environ.get(FULL_COMPOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class JobComposer:
    """Composes job configs of one multirun (`master_config` is the sweep's config, with its hydra node)."""

    def __init__(self, config_loader, master_config: DictConfig, full: bool | None = None) -> None:
        self.loader, self.master = config_loader, master_config
        hooks = ConfigLoaderImpl is not None and isinstance(config_loader, ConfigLoaderImpl) and all(
            hasattr(config_loader, h) for h in _HOOKS)
        self.fast = hooks and not (full_compose_requested() if full is None else full)
        self.full_compositions = 0        # jobs composed by Hydra from scratch (fallbacks and bases)
        self._parser = OverridesParser.create()
        self._parsed: dict[str, Override] = {}
        self._is_group: dict[str, bool] = {}
        self._bases: dict[tuple[str, ...], tuple[DictConfig, DictConfig, bytes | None]] = {}
        self._repo = None
        self._resolved_bases: dict[tuple[str, ...], tuple | None] = {}
        self._resolved_lines: dict[tuple, tuple | None] = {}

    # --- Hydra's own composition ---------------------------------------------------------------
    def hydra_compose(self, overrides: Sequence[str]) -> DictConfig:
        """The job's config with its hydra node, composed by Hydra."""
        self.full_compositions += 1
        return self.loader.load_sweep_config(self.master, list(overrides))

    # --- public API ----------------------------------------------------------------------------
    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The job's config without its hydra node."""
        split = self._split(overrides)
        if split is not None:
            cfg = self._apply(self._fresh(split[0]), split[1])
            if cfg is not None:
                return cfg
        cfg = self.hydra_compose(overrides)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    def resolved(self, overrides: Sequence[str]) -> ResolvedJob | None:
        """The job's config resolved to plain values, or None when only `compose` can make it exactly."""
        split = self._split(overrides)
        if split is None:
            return None
        key, values, _ = split
        base = self._resolved_base(key)
        if base is None:
            return None
        container, interpolations, words = base
        changes = []
        for o in values:
            change = self._resolved_line(key, o, container, words)
            if change is None:
                return None
            changes.append(change)
        paths = [path for path, _ in changes]
        if any(a != b and a[:len(b)] == b for a in paths for b in paths) or len(set(paths)) < len(paths):
            return None                  # keys that nest (model=..., model.width=...): applied in order by Hydra
        out = dict(container)
        for path, value in changes:
            node = out
            for part in path[:-1]:
                node[part] = node = dict(node[part])
            node[path[-1]] = copy.deepcopy(value)
        return ResolvedJob(out, interpolations - {path[0] for path in paths if len(path) == 1})

    def _resolved_base(self, key: tuple[str, ...]):
        """(resolved container, interpolated top-level keys, the words interpolations name) of a base,
        or None when its interpolations may read keys they do not name."""
        if key not in self._resolved_bases:
            self._resolved_bases[key] = None
            try:
                app = self._base(key)[1]
                raw = OmegaConf.to_container(app, resolve=False)
                texts = [t for t in _strings(raw) if "${" in t]
                if all(name in PURE_RESOLVERS for t in texts for name in _RESOLVER_CALL.findall(t)):
                    cfg = self._fresh(key)
                    OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
                    self._resolved_bases[key] = (
                        OmegaConf.to_container(cfg, resolve=True),
                        frozenset(k for k in app if OmegaConf.is_interpolation(app, k)),
                        " ".join(texts))
            except Exception:            # compose raises Hydra's own error
                pass
        return self._resolved_bases[key]

    def _resolved_line(self, key: tuple[str, ...], o: Override, container: dict, words: str):
        """(key path, resolved value) one plain `key=literal` override gives on base `key` (resolved:
        `container`; its interpolations' text: `words`), or None."""
        cache_key = (key, o.input_line)
        if cache_key not in self._resolved_lines:
            self._resolved_lines[cache_key] = None
            path = tuple(o.key_or_group.split("."))
            if (o.type == OverrideType.CHANGE and "${" not in o.input_line and all(_KEY_PART.match(p) for p in path)
                    and not any(p in words for p in path)):
                cfg = self._apply(self._fresh(key), [o])
                if cfg is not None:
                    value = _at(OmegaConf.to_container(cfg, resolve=True), path)
                    if value is not _UNSET and _at(container, path) is not _UNSET:
                        self._resolved_lines[cache_key] = (path, value)
        return self._resolved_lines[cache_key]

    def _fresh(self, key: tuple[str, ...]) -> DictConfig:
        """A copy of a base (without its hydra node) no other job shares."""
        _, app, pickled = self._base(key)
        return pickle.loads(pickled) if pickled else copy.deepcopy(app)

    def compose_with_hydra(self, overrides: Sequence[str], job_idx: int) -> DictConfig:
        """The job's whole config, hydra node included, as Hydra's launchers give it to a job
        (`load_sweep_config`, then hydra.job.id and hydra.job.num)."""
        cfg = None
        split = self._split(overrides)
        if split is not None:
            key, values, app = split
            cfg = self._apply(copy.deepcopy(self._base(key)[0]), values)
            if cfg is not None:
                job = cfg.hydra.job
                cfg.hydra.overrides.task = [o.input_line for o in app]
                job.override_dirname = get_overrides_dirname(
                    overrides=app, kv_sep=job.config.override_dirname.kv_sep,
                    item_sep=job.config.override_dirname.item_sep,
                    exclude_keys=job.config.override_dirname.exclude_keys)
        if cfg is None:
            cfg = self.hydra_compose(overrides)
        with open_dict(cfg):
            cfg.hydra.job.id = f"{job_idx}"
            cfg.hydra.job.num = job_idx
        return cfg

    # --- the fast path -------------------------------------------------------------------------
    def _split(self, overrides: Sequence[str]):
        """(composition key, value overrides, app overrides) of a job, or None for the full composition."""
        if not self.fast:
            return None
        parsed = []
        for line in overrides:
            o = self._parsed.get(line)
            if o is None:
                try:
                    o = self._parser.parse_override(line)
                except Exception:       # Hydra reports a bad override itself
                    return None
                self._parsed[line] = o
            if o.is_sweep_override():   # not legal in one job: Hydra raises its own error
                return None
            parsed.append(o)
        key = tuple(o.input_line for o in parsed if self._composes(o))
        values = [o for o in parsed if not self._composes(o)]
        return key, values, [o for o in parsed if not o.is_hydra_override()]

    def _composes(self, o: Override) -> bool:
        """True when Hydra consumes the override while building the defaults list (a config-group
        choice, as `Overrides.__init__` decides it) or it concerns Hydra's own node."""
        kog = o.key_or_group
        if kog == "hydra" or o.is_hydra_override() or o.package is not None:
            return True
        if kog not in self._is_group:
            self._is_group[kog] = self._repository().group_exists(kog)
        return self._is_group[kog] and not isinstance(o.value(), dict)

    def _repository(self):
        """The config repository Hydra composes these jobs with (the search path as the sweep's
        hydra overrides set it)."""
        if self._repo is None:
            hydra_overrides = list(OmegaConf.to_container(self.master.hydra.overrides.hydra))
            _, self._repo = self.loader._parse_overrides_and_create_caching_repo(
                self.master.hydra.job.config_name, hydra_overrides)
        return self._repo

    def _base(self, key: tuple[str, ...]) -> tuple[DictConfig, DictConfig, bytes | None]:
        """(config with hydra node, config without, the latter pickled) composed by Hydra from the
        composition overrides. Each job starts from a copy: unpickling OmegaConf's own pickle (node
        types, declared types and flags kept) costs about a fifth of a deepcopy."""
        if key not in self._bases:
            whole = self.hydra_compose(key)
            app = copy.deepcopy(whole)
            with open_dict(app):
                del app["hydra"]
            try:
                pickled = pickle.dumps(app)
            except Exception:           # a value that does not pickle: deepcopy each job instead
                pickled = None
            self._bases[key] = whole, app, pickled
        return self._bases[key]

    def _apply(self, cfg: DictConfig, values: list[Override]) -> DictConfig | None:
        """`cfg` (a fresh copy) with the value overrides applied as Hydra applies them; None when one fails."""
        OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        try:
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except Exception:               # the full composition raises Hydra's own error
            return None
        return cfg


def _strings(value):
    """Every string in a plain container."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _at(container, path: tuple[str, ...]):
    """The value at a key path of a plain container, or _UNSET."""
    for part in path:
        if not isinstance(container, dict) or part not in container:
            return _UNSET
        container = container[part]
    return container
