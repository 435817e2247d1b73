"""The launcher composes each multirun job as Hydra's own `load_sweep_config` does, while Hydra
composes only once per distinct set of config-group choices (hydra_plugins/sdexp_launcher/compose.py).

The reference is Hydra itself: every config file, every sweep file (its real job list) and seeded
random override sets over real keys are composed both ways, and the configs compared as YAML
(which tells 7 from 7.0), as containers (unresolved and resolved) and node by node (node class,
declared type, optional, flags), hydra node included where the launcher builds it."""
from __future__ import annotations

import itertools
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError

from hydra_plugins.sdexp_launcher.compose import FULL_COMPOSE_ENV, JobComposer
from sdexp.hydra_setup import register_all
from sdexp.paths import CONF_DIR, SWEEPS_DIR

GROUP_OPTIONS = [(g.name, f.stem) for g in sorted(CONF_DIR.iterdir()) if g.is_dir() for f in sorted(g.glob("*.yaml"))]
# the samplers sweep (20 samplers, the largest file) composes under make test-all
SWEEPS = [pytest.param(n, marks=pytest.mark.slow) if n == "samplers" else n
          for n in sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))]


@pytest.fixture(scope="module")
def hydra_app():
    """Hydra initialised on sdexp's conf/ as the console script does (sweeps registered)."""
    register_all()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()


def master_config(hydra_app, overrides=()) -> DictConfig:
    """The multirun's own config, as Hydra hands it to the sweeper and the launcher."""
    return hydra_app.compose_config("config", list(overrides), run_mode=RunMode.MULTIRUN)


def node_signature(node, path="") -> list:
    """Every node of a config: path, node class, declared type, object type, optional, own flags."""
    md = node._metadata
    out = [(path, type(node).__name__, repr(md.ref_type), repr(md.object_type), md.optional,
            tuple(sorted((md.flags or {}).items())), getattr(md, "key_type", None), getattr(md, "element_type", None))]
    if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing() \
            and not node._is_interpolation():
        for key in node.keys():
            out += node_signature(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig) and not node._is_none() and not node._is_missing() \
            and not node._is_interpolation():
        for i in range(len(node)):
            out += node_signature(node._get_node(i), f"{path}[{i}]")
    return out


def without_hydra(cfg: DictConfig) -> DictConfig:
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def assert_same(fast: DictConfig, ref: DictConfig, resolve: bool = True) -> None:
    assert OmegaConf.to_yaml(fast) == OmegaConf.to_yaml(ref)
    assert OmegaConf.to_container(fast, resolve=False) == OmegaConf.to_container(ref, resolve=False)
    if resolve:
        assert OmegaConf.to_yaml(fast, resolve=True) == OmegaConf.to_yaml(ref, resolve=True)
        assert OmegaConf.to_container(fast, resolve=True) == OmegaConf.to_container(ref, resolve=True)
    assert node_signature(fast) == node_signature(ref)
    assert OmegaConf.is_struct(fast) == OmegaConf.is_struct(ref)


def hydra_outcome(loader, master, job):
    """Hydra's composition of one job without its hydra node, or the error it raises."""
    try:
        return without_hydra(loader.load_sweep_config(master, list(job)))
    except Exception as e:          # noqa: BLE001 - the fast path must raise the same
        return e


def check_jobs(hydra_app, master, jobs, composer=None) -> JobComposer:
    """Every job composed by the fast path equals Hydra's composition, or raises Hydra's error; where
    the resolved path answers, its plain values are Hydra's resolved container and its interpolated
    top-level keys Hydra's. Sets `composer.resolved_jobs` to the number of jobs it answered."""
    composer = composer or JobComposer(hydra_app.config_loader, master)
    assert composer.fast
    composer.resolved_jobs = 0
    for job in jobs:
        ref = hydra_outcome(hydra_app.config_loader, master, job)
        resolved = composer.resolved(job)
        if isinstance(ref, Exception):
            assert resolved is None, job          # a job Hydra refuses takes compose, which raises
            with pytest.raises(type(ref)) as info:
                composer.compose(job)
            assert str(info.value) == str(ref), job
        else:
            assert_same(composer.compose(job), ref)
            if resolved is not None:
                composer.resolved_jobs += 1
                assert resolved == OmegaConf.to_container(ref, resolve=True), job
                assert resolved.interpolations == {k for k in ref if OmegaConf.is_interpolation(ref, k)}, job
    return composer


def sweep_jobs(master: DictConfig, arguments=()) -> list[list[str]]:
    """The job list Hydra's basic sweeper makes of the sweep file's params and the command line."""
    params = [f"{k}={v}" for k, v in (master.hydra.sweeper.params or {}).items()] + list(arguments)
    overrides = OverridesParser.create().parse_overrides(params)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


@pytest.mark.parametrize("group,option", GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_config_file(group, option, hydra_app):
    """Each config file as the group choice of a job, with value overrides on and off its keys."""
    master = master_config(hydra_app)
    jobs = [[f"{group}={option}", "cfg=3", "steps=5", "width=${model.width}"],
            ["cfg=2.5", f"{group}={option}", "model.width=96", "height=${model.width}"]]
    composer = check_jobs(hydra_app, master, jobs)
    assert composer.full_compositions == 1      # one composition per distinct group choice


@pytest.mark.parametrize("name", SWEEPS)
def test_every_sweep_file(name, hydra_app):
    """Each sweep file's real job list (its params expanded by Hydra's basic sweeper, with command-line
    values on top) composes as Hydra composes it."""
    master = master_config(hydra_app, [f"sweep={name}"])
    jobs = sweep_jobs(master, [f"sweep={name}", "cfg=7.5", "seed=[5,6]"])
    assert len(jobs) >= 2
    composer = check_jobs(hydra_app, master, jobs)
    groups = {tuple(o for o in job if o.split("=")[0] in ("model", "vae", "prompts", "scorer", "sweep"))
              for job in jobs}
    assert composer.full_compositions == len(groups)
    assert composer.resolved_jobs >= len(jobs) // 2      # most sweep jobs skip the DictConfig entirely


# --- seeded random override sets over real keys ----------------------------------------------------
PROMPTS = ["'a photo of a cat, on a sofa'", '"a watercolor lake, at sunrise"', "'it\\'s raining'",
           "'brackets [x] and {y}, commas'", "plain_word", "'  leading spaces'"]


def _value_override(rng: random.Random) -> list[str]:
    seeds = ",".join(str(rng.randrange(100)) for _ in range(rng.randrange(1, 5)))
    choices = [
        lambda: [f"cfg={rng.choice(['1', '3', '7.5', '12', '0'])}"],
        lambda: [f"steps={rng.randrange(1, 60)}"],
        lambda: [f"sampler={rng.choice(['euler', 'euler_a', 'ddim', 'unipc', 'lcm', chr(39) + 'Euler a' + chr(39)])}"],
        lambda: [f"clip_skip={rng.randrange(1, 5)}"],
        lambda: [f"seed={rng.randrange(1000)}"],
        lambda: [f"seed=[{seeds}]"],
        lambda: [f"prompt={rng.choice(PROMPTS)}"],
        lambda: [f"negative_prompt={rng.choice(PROMPTS)}"],
        lambda: [f"prompts.items=[{', '.join(rng.sample(PROMPTS, 2))}]"],
        lambda: [f"width={rng.choice(['64', '96', '${model.width}', '${model.height}'])}"],
        lambda: [f"height={rng.choice(['64', '${model.height}', '${width}'])}"],
        lambda: [f"model.width={rng.choice([64, 128])}"],
        lambda: ["+checkpoints.x=/models/x.safetensors"],
        lambda: ["++checkpoints.y=/models/y.safetensors", "checkpoint=y"],
        lambda: ["+checkpoints.z=/models/z.safetensors", "~checkpoints.z"],
        lambda: ["++checkpoints={a: /m/a.safetensors, b: /m/b.safetensors}"],
        lambda: [f"grid.x={rng.choice(['cfg', 'steps', 'null'])}", "grid.y=sampler"],
        lambda: [f"grid.seed={rng.choice(['all', 'first', '3'])}"],
        lambda: ["prompt_sr=[cat,dog]"],
        lambda: [f"size={rng.choice(['64x96', '128x64'])}"],
        lambda: ["run.batch_size=4", "run.progress=false"],
        lambda: [f"lcm.steps={rng.choice(['4', 'null'])}"],
        lambda: ["name=random_job", "+extra_key=1"],
        lambda: ["model={width: 80}"],                       # a dict for a group key is a value override
        lambda: ["~negative_prompt"],
        lambda: ["+loras.a=/l/a.safetensors", "+extra_loras.a=0.5"],
        # errors Hydra raises, which the fast path must raise the same
        lambda: [rng.choice(["no_such_key=1", "+steps=3", "model.width=wide", "~no_such_key", "model.nope=1",
                             "run.max_resident_models=many", "checkpoints.q=1"])],
    ]
    return rng.choice(choices)()


def _group_override(rng: random.Random) -> list[str]:
    return rng.choice([[], ["model=tiny"], ["model=tiny_sdxl"], ["vae=tiny_alt"], ["prompts=varied"],
                       ["scorer=none"], ["sweep=demo"], ["vae=tiny", "prompts=single"], ["model=sd15"]])


def random_jobs(seed: int, n: int) -> list[list[str]]:
    rng = random.Random(seed)
    jobs = []
    for _ in range(n):
        job = [o for _ in range(rng.randrange(0, 7)) for o in _value_override(rng)]
        for group in _group_override(rng):
            job.insert(rng.randrange(len(job) + 1), group)
        jobs.append(job)
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_override_sets(seed, hydra_app):
    check_jobs(hydra_app, master_config(hydra_app), random_jobs(seed, 25))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 110))
def test_many_random_override_sets(seed, hydra_app):
    check_jobs(hydra_app, master_config(hydra_app), random_jobs(seed, 60))


@pytest.mark.slow
def test_random_override_sets_with_hydra_node(hydra_app):
    """The whole job config, hydra node included (overrides.task, override_dirname, choices, id, num),
    as Hydra's launchers give it to a job; hydra overrides are composed by Hydra."""
    master = master_config(hydra_app, ["hydra.job.chdir=false", "hydra.verbose=false"])
    composer = JobComposer(hydra_app.config_loader, master)
    jobs = [job + ["hydra.job.chdir=false"] * (i % 3 == 0) for i, job in enumerate(random_jobs(7, 20))]
    compared = 0
    for idx, job in enumerate(jobs):
        try:
            ref = hydra_app.config_loader.load_sweep_config(master, job)
        except Exception:       # noqa: BLE001 - error jobs are covered above
            continue
        with open_dict(ref):
            ref.hydra.job.id, ref.hydra.job.num = f"{idx}", idx
        assert_same(composer.compose_with_hydra(job, idx), ref, resolve=False)
        compared += 1
    assert compared >= 12


def test_resolved_jobs_of_a_plain_sweep_and_where_they_step_aside(hydra_app):
    """A grid of literal values resolves without DictConfigs; a key an interpolation reads
    (model.width, read by width), an interpolated value, nested or repeated keys and `+`/`~`
    overrides take the composed path, and every answer is still Hydra's."""
    master = master_config(hydra_app)
    plain = [[f"cfg={c}", f"steps={s}", "sampler=ddim", "seed=[1,2]", "prompt='a, b'", "grid.x=cfg"]
             for c in (1, 7.5) for s in (3, 4)]
    composer = check_jobs(hydra_app, master, plain)
    assert composer.resolved_jobs == len(plain)
    stepping_aside = [["model.width=96"], ["width=96"], ["cfg=${steps}"], ["grid={x: cfg}", "grid.y=steps"],
                      ["cfg=3", "cfg=4"], ["+extra=1"], ["~negative_prompt"], ["model=tiny_sdxl", "model.width=80"]]
    composer = check_jobs(hydra_app, master, stepping_aside)
    assert composer.resolved_jobs == 0
    a, b = composer.resolved(["cfg=3", "grid.x=steps"]), composer.resolved(["cfg=4"])
    assert a["grid"]["x"] == "steps" and b["grid"]["x"] != "steps"      # a copied path, the rest shared
    assert a["cfg"] == 3 and b["cfg"] == 4 and b["model"] is a["model"]


def test_later_changes_stay_in_their_job(hydra_app):
    """Jobs never share nodes: a change in one composed job shows in no other, nor in the next one."""
    master = master_config(hydra_app)
    composer = JobComposer(hydra_app.config_loader, master)
    a, b = composer.compose(["cfg=3"]), composer.compose(["cfg=4"])
    a.model.width = 8
    a.prompts["items"].append("x")
    assert b.model.width == 64 and composer.compose(["cfg=5"]).model.width == 64
    assert list(composer.compose([]).prompts["items"]) == list(b.prompts["items"])
    with pytest.raises(ConfigAttributeError):      # struct mode, as in Hydra's configs
        b.no_such_key = 1


def test_full_compose_switch(hydra_app, monkeypatch):
    """SDEXP_LAUNCHER_FULL_COMPOSE=1 composes every job with Hydra (the reference path, for benchmarks)."""
    master = master_config(hydra_app)
    jobs = [[f"cfg={c}", f"steps={s}"] for c in (1, 2, 3) for s in (4, 5)]
    assert JobComposer(hydra_app.config_loader, master).fast
    monkeypatch.setenv(FULL_COMPOSE_ENV, "1")
    composer = JobComposer(hydra_app.config_loader, master)
    assert not composer.fast
    for job in jobs:
        assert_same(composer.compose(job), without_hydra(hydra_app.config_loader.load_sweep_config(master, job)))
    assert composer.full_compositions == len(jobs)
    monkeypatch.setenv(FULL_COMPOSE_ENV, "0")
    composer = JobComposer(hydra_app.config_loader, master)
    for job in jobs:
        composer.compose(job)
    assert composer.full_compositions == 1


# --- end to end: the real console script -----------------------------------------------------------
@pytest.mark.slow
def test_cli_multirun_plan_matches_hydra_composition(tmp_path):
    """`sdexp plan -m ...` through the console script (the sdexp sweeper and launcher) prints the plan
    that Hydra's compose API, one job at a time, and make_plan give for the same jobs."""
    from sdexp.dryrun import format_summary, summary
    from sdexp.plan import make_plan
    from sdexp.devices import resolve_device
    from sdexp.renderer import resolve_batch_size

    root = tmp_path / "results"
    sweeps = ["cfg=3,7.5", "steps=4,8", "sampler=euler,ddim", "clip_skip=1,2", "vae=tiny,tiny_alt"]
    fixed = ["model=tiny", "seed=[0,1]", "prompt='a cat, on a sofa'", "width=${model.width}", "name=e2e",
             f"results_root={root}"]
    script = Path(sys.executable).parent / "sdexp"
    out = subprocess.run([str(script), "plan", "-m", *sweeps, *fixed], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = out.stdout[out.stdout.index("sdexp plan:"):].strip()

    args = [*sweeps, *fixed, "plan.dry_run=true"]
    jobs = [list(j) for j in itertools.product(*[[f"{a.split('=')[0]}={v}" for v in a.split("=", 1)[1].split(",")]
                                                 if a in sweeps else [a] for a in args])]
    register_all()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfgs = [compose("config", overrides=job) for job in jobs]
    GlobalHydra.instance().clear()
    plan = make_plan(cfgs, [o.split("=", 1)[0] for o in jobs[0]])
    expected = format_summary(plan, summary(plan, set(), __import__("pandas").DataFrame(),
                                            resolve_batch_size(plan.run, plan.cells, resolve_device(plan.run["device"]))))
    assert len(jobs) == 32 and plan.swept[:5] == ["cfg", "steps", "sampler", "clip_skip", "vae"]
    assert printed == expected
    assert not root.exists()        # a dry run writes nothing under results/


def test_cli_bad_override_fails_before_anything(tmp_path):
    """A job Hydra cannot compose fails the whole multirun with Hydra's own message."""
    out = subprocess.run([str(Path(sys.executable).parent / "sdexp"), "plan", "-m", "model.width=64,wide",
                          f"results_root={tmp_path / 'results'}"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode != 0
    assert "model.width=wide" in out.stderr
    assert "Value 'wide' of type 'str' could not be converted to Integer" in out.stderr
    assert not (tmp_path / "results").exists()
