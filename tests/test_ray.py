"""run.backend=ray on a real local Ray cluster started by the test (2 CPUs and 2 logical GPUs: the
workers never touch CUDA on this machine, so they render on the CPU): the images are byte for byte
the local backend's, each checkpoint loads at most once per worker, and a worker killed mid-sweep
leaves every image stored exactly once."""
from __future__ import annotations

import pytest
import torch

from sdexp.plan import make_plan
from sdexp.store import Store
from sdexp.sweep import render_plan

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, namespace="sdexp-test", logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def second_checkpoint(tmp_path_factory):
    """The tiny model saved as a diffusers folder: a second checkpoint (its own load) of known pixels."""
    from render_helpers import tiny_pipeline

    folder = tmp_path_factory.mktemp("ckpt") / "copy"
    tiny_pipeline().save_pretrained(folder, safe_serialization=True)
    return folder


def plan_for(compose_cfg, name: str, backend: str, checkpoint, **extra):
    common = ["cfg=[3,7]", "seed=[0,1,2]", "steps=3", "prompts=single", "width=64", "height=64", "run.batch_size=2", "run.progress=false",
              f"name={name}", f"run.backend={backend}", "ray.workers=2", "ray.address=auto",
              *[f"{k}={v}" for k, v in extra.items()]]
    return make_plan([compose_cfg(["model=tiny", *common]), compose_cfg([f"checkpoint={checkpoint}", *common])])


def stored_images(store: Store) -> dict[str, bytes]:
    rows = store.load_rows()
    assert rows.image_id.is_unique
    return {r.image_id: (store.folder / r.image_path).read_bytes() for r in rows.itertuples()}


@pytest.fixture(scope="module")
def local_images(tmp_path_factory, second_checkpoint):
    """The same sweep on the local backend, one torch thread as each worker has."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from sdexp.hydra_setup import register_all
    from sdexp.paths import CONF_DIR

    register_all()
    root = tmp_path_factory.mktemp("local") / "results"

    def compose_cfg(overrides):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"results_root={root}", *overrides])

    plan = plan_for(compose_cfg, "local", "local", second_checkpoint)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        store = Store(plan.folder)
        with store.lock():
            render_plan(plan, store, log=lambda *a: None)
    finally:
        torch.set_num_threads(threads)
        GlobalHydra.instance().clear()
    return plan, stored_images(store)


def render_on_cluster(plan, **kw):
    from sdexp.ray_backend import render_on_ray

    store = Store(plan.folder)
    with store.lock():
        todo = [c for c in plan.cells if c.image_id not in store.image_ids()]
        figures = render_on_ray(plan, store, todo, log=lambda *a: None, **kw)
    return figures, stored_images(store)


def test_two_workers_make_the_local_images_loading_each_checkpoint_once_per_worker(
        cluster, compose_cfg, second_checkpoint, local_images):
    plan = plan_for(compose_cfg, "two", "ray", second_checkpoint)
    figures, images = render_on_cluster(plan)
    local_plan, local = local_images
    assert [c.image_id for c in plan.cells] == [c.image_id for c in local_plan.cells]
    assert len(images) == len(plan.cells) == 12
    assert images.keys() == local.keys()
    assert [k for k in images if images[k] != local[k]] == []          # byte for byte
    loads = [w["loads"] for w in figures["workers"]]
    assert len(loads) == 2 and all(n == 1 for per in loads for n in per.values()), loads
    assert set().union(*loads) == {"tiny", "copy"}
    assert sum(w["images"] for w in figures["workers"]) == 12


def test_a_worker_killed_mid_sweep_leaves_every_image_exactly_once(
        cluster, compose_cfg, second_checkpoint, local_images):
    plan = plan_for(compose_cfg, "killed", "ray", second_checkpoint)
    killed = []

    def kill_first_worker(slots):
        if not killed:
            killed.append(slots[0].actor)
            ray.kill(slots[0].actor, no_restart=True)

    figures, images = render_on_cluster(plan, on_batch=kill_first_worker)
    assert figures["workers"][0]["replaced"] == 1
    assert sum(w["images"] for w in figures["workers"]) == 12      # none written twice
    _, local = local_images
    assert images == local


def test_by_default_no_worker_waits_without_a_unit(cluster, compose_cfg):
    """ray.workers unset: one worker per GPU, but no more than the sweep has work units."""
    cfg = compose_cfg(["model=tiny", "cfg=[3]", "seed=[0,1]", "steps=2", "prompts=single", "width=64", "height=64",
                       "run.batch_size=2", "run.progress=false", "name=one_unit", "run.backend=ray",
                       "ray.address=auto"])
    figures, images = render_on_cluster(make_plan([cfg]))
    assert len(images) == 2 and [w["images"] for w in figures["workers"]] == [2]


def test_score_extracts_features_on_the_cluster_as_it_does_locally(cluster, local_images, tmp_path):
    """`sdexp score ... run.backend=ray`: Inception (random weights) and CLIP image features of the
    sweep's images computed by two actors equal the local extraction, and so do FID and FD."""
    import shutil

    import numpy as np

    from sdexp.metrics.inception import FeatureStore, make_random_weights
    from sdexp.metrics.tables import load_groups
    from sdexp.score import run as score
    from sdexp.score_args import parse_args

    plan, _ = local_images
    weights = make_random_weights(tmp_path / "inception.pth")
    said = {}
    for backend in ("local", "ray"):
        folder = tmp_path / backend
        shutil.copytree(plan.folder, folder)
        args = [str(folder), "metrics=[fid,fd_clip]", "reference=group:cfg=3", f"inception.weights={weights}",
                "clip.source=tiny", "bootstrap.n=20", "inception.batch_size=4", f"run.backend={backend}",
                "ray.address=auto", "ray.workers=2"]
        said[backend] = []
        score(parse_args(args), log=said[backend].append)
    assert any("features of 1 chunk on 2 workers" in line for line in said["ray"]), said["ray"]
    assert not any("sdexp: ray:" in line for line in said["local"])
    for key in [p.name for p in (tmp_path / "local" / "features").iterdir()]:
        local, remote = (FeatureStore(tmp_path / b, key).load() for b in ("local", "ray"))
        assert local.keys() == remote.keys() and len(local) == 12
        assert all(np.allclose(local[i], remote[i], rtol=1e-4, atol=1e-5) for i in local), key
    values = {b: load_groups(tmp_path / b).sort_values(["metric", "group"])["value"].to_numpy() for b in said}
    assert np.allclose(values["local"], values["ray"], rtol=1e-3, atol=1e-6)


def test_workers_that_do_not_fit_the_cluster_fail_before_any_file_changes(cluster, compose_cfg, tmp_path):
    from helpers import tree_state

    from sdexp.plan import ConfigError
    from sdexp.sweep import run_sweep

    cfg = compose_cfg(["run.backend=ray", "ray.address=auto", "ray.workers=3", "ray.gpus_per_worker=1",
                       "prompts=single", "name=big"])
    (tmp_path / "results" / "big").mkdir(parents=True)
    before = tree_state(tmp_path / "results")
    with pytest.raises(ConfigError) as err:
        run_sweep([cfg], log=lambda *a: None)
    assert "ray.workers=3" in str(err.value) and "the cluster has 2" in str(err.value)
    assert tree_state(tmp_path / "results") == before
    assert ray.is_initialized()             # the test's own cluster stays up


@pytest.mark.slow
def test_console_script_on_a_local_cluster_makes_the_local_images(tmp_path):
    """`sdexp -m ... run.backend=ray ray.address=local ray.workers=2` (a cluster the command starts and
    stops) stores the images `sdexp -m ...` stores, both with one torch thread per renderer."""
    from helpers import run_cli

    sweep = ["-m", "cfg=3,7", "seed=[0,1]", "steps=3", "sampler=euler,ddim", "prompts=single", "run.batch_size=2",
             f"results_root={tmp_path}"]
    env = {"OMP_NUM_THREADS": "1"}
    run_cli([*sweep, "name=local"], cwd=tmp_path, env=env)
    proc = run_cli([*sweep, "name=ray", "run.backend=ray", "ray.address=local", "ray.workers=2"], cwd=tmp_path,
                   env=env)
    assert "on 2 workers" in proc.stdout and "img/s in all" in proc.stdout, proc.stdout
    assert stored_images(Store(tmp_path / "ray")) == stored_images(Store(tmp_path / "local"))


@pytest.mark.slow
def test_ctrl_c_on_a_ray_sweep_says_what_is_stored_and_a_rerun_finishes_it(tmp_path):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it) mid-sweep: exit 130 with
    the count of stored images; the same command again renders only the rest."""
    from helpers import ctrl_c_once_stored, run_cli

    sweep = ["-m", "cfg=3,7", "seed=range(0,12)", "steps=3", "prompts=single", "run.batch_size=2",
             f"results_root={tmp_path}", "name=intr", "run.backend=ray", "ray.address=local", "ray.workers=2"]
    code, err = ctrl_c_once_stored(sweep, tmp_path, tmp_path / "intr" / "rows")
    assert code == 130, err
    assert "images are stored in" in err and "Traceback" not in err
    stored = len(Store(tmp_path / "intr").image_ids())
    assert 0 < stored < 24
    again = run_cli(sweep, cwd=tmp_path)
    assert f"{stored} already stored, {24 - stored} to render" in again.stdout, again.stdout
    assert len(Store(tmp_path / "intr").load_rows()) == 24
