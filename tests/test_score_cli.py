"""`sdexp score`: the console script end to end (the README's example), rescoring, another CLIP model
beside the first, a preference-model plugin from local weights, and bad input that changes nothing."""
from __future__ import annotations

import hashlib
import shutil
import textwrap

import numpy as np
import pandas as pd
import pytest

import sdexp
from sdexp.axes import AXES
from sdexp.metrics.fid import save_npz
from sdexp.metrics.registry import METRICS
from sdexp.metrics.tables import GROUP_SCHEMA
from sdexp.score import main
from helpers import run_cli, tree_state
from metrics_helpers import copy_scored, copy_sweep, random_inception, reference_folder

# The groups table: its own keys, then one column per axis of the registry, then the statistic.
GROUP_COLUMNS = (["sweep", "metric", "statistic", "grouping", "group", "cell_id"] + list(AXES)
                 + ["value", "ci_low", "ci_high", "std", "confidence", "n", "n_reference", "reference",
                    "reference_kind", "reference_hash", "feature_extractor", "resize", "subset_size",
                    "implementation", "implementation_version", "sdexp_version", "warning"])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return random_inception(tmp_path_factory)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    return reference_folder(tmp_path_factory)


@pytest.fixture
def sweep(tmp_path_factory, tmp_path):
    return copy_sweep(tmp_path_factory, tmp_path / "results" / "metrics")


def files(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("groups", "image_metrics") for p in sorted((folder / sub).glob("*")) if p.is_file()}


@pytest.mark.slow
def test_score_a_sweep_against_a_reference_folder(ref, weights, tmp_path_factory, tmp_path):
    """README: `sdexp score results/NAME metrics=[clip_score,fid,kid] reference=FOLDER`, then load_groups.
    (The sweep's Inception features were extracted by an earlier score, metrics_helpers.scored_sweep.)"""
    sweep = copy_scored(tmp_path_factory, tmp_path / "results" / "metrics")
    shutil.rmtree(sweep / "groups")
    args = ["score", str(sweep), "metrics=[clip_score,fid,kid]", f"reference={ref}", f"inception.weights={weights}"]
    first = run_cli(args, cwd=tmp_path)
    assert "Inception features for" not in first.stdout and "sdexp.load_groups(" in first.stdout
    assert "fid (value, grouping cell, reference" in first.stdout and "fid.min_images=50" in first.stdout
    groups = sdexp.load_groups(sweep)
    assert list(groups.columns) == GROUP_COLUMNS == GROUP_SCHEMA.names
    assert sorted(groups.metric.unique()) == ["clip_score", "fid", "kid"] and len(groups) == 3 * 4
    assert groups[groups.metric != "clip_score"].reference_hash.nunique() == 1
    assert set(groups.metric) <= set(METRICS)
    # plain pandas reads the same table
    direct = pd.concat([pd.read_parquet(p) for p in sorted((sweep / "groups").glob("*.parquet"))], ignore_index=True)
    pd.testing.assert_frame_equal(direct, groups)
    before = files(sweep)
    run_cli(args, cwd=tmp_path)
    assert files(sweep) == before                                          # identical tables, nothing duplicated
    pd.testing.assert_frame_equal(sdexp.load_groups(sweep), groups)


def test_second_clip_model_keeps_the_first(sweep):
    assert main([str(sweep), "metrics=[clip_score]"]) == 0
    assert main([str(sweep), "metrics=[clip_score]", "clip.backend=open_clip", "clip.source=tiny"]) == 0
    im = sdexp.load_image_metrics(sweep)
    assert sorted(im.scorer.unique()) == ["open_clip:tiny", "transformers:tiny"] and len(im) == 16
    rows = sdexp.load_rows(sweep).merge(im[im.scorer == "transformers:tiny"], on="image_id")
    assert (rows.clip_score == rows.value).all()                         # the render-time scores, kept
    means = sdexp.load_groups(sweep)
    means = means[means.metric == "clip_score"]
    assert sorted(means.feature_extractor.unique()) == ["open_clip:tiny", "transformers:tiny"]
    assert len(means) == 8 and means.groupby("feature_extractor").n.sum().eq(8).all()
    # force=true recomputes from the PNGs with the transformers backend: the render's values (up to float
    # round-off of another batch composition)
    assert main([str(sweep), "metrics=[clip_score]", "force=true"]) == 0
    im = sdexp.load_image_metrics(sweep)
    again = sdexp.load_rows(sweep).merge(im[im.scorer == "transformers:tiny"], on="image_id")
    assert np.allclose(again.value, again.clip_score, rtol=0, atol=1e-4)


PLUGIN = '''
"""A toy preference model: a linear head on mean RGB, weights from a local safetensors file."""
import numpy as np
from safetensors.numpy import load_file

from sdexp.metrics.registry import register_image_metric


class ToyPreference:
    implementation = "toy_pref.ToyPreference"
    version = "toy 1"

    def __init__(self, weights):
        self.w = load_file(weights)["head"]
        self.model_id = f"toy_pref:{weights}"

    def score(self, images, prompts):
        return [float(np.asarray(im, np.float64).mean(axis=(0, 1)) @ self.w) for im in images]


def factory(options, device):
    return ToyPreference(options["weights"])


register_image_metric("toy_pref", "Toy preference", factory, higher_is_better=True, short="Toy")
'''


@pytest.fixture
def plugin(tmp_path):
    from safetensors.numpy import save_file

    (tmp_path / "toy_pref.py").write_text(textwrap.dedent(PLUGIN))
    save_file({"head": np.array([0.5, -0.25, 1.0])}, tmp_path / "toy_pref.safetensors")
    yield tmp_path / "toy_pref.py", tmp_path / "toy_pref.safetensors"
    METRICS.pop("toy_pref", None)


def test_preference_model_plugin(sweep, plugin):
    from PIL import Image

    code, head = plugin
    assert main([str(sweep), "metrics=[toy_pref,clip_score]", f"plugins=[{code}]",
                 f"options.toy_pref.weights={head}"]) == 0
    info = METRICS["toy_pref"]
    assert info.per == "image" and info.higher_is_better and info.short == "Toy"
    im = sdexp.load_image_metrics(sweep)
    toy = im[im.metric == "toy_pref"].set_index("image_id")
    rows = sdexp.load_rows(sweep)
    for _, r in rows.iterrows():
        expected = np.asarray(Image.open(sweep / r.image_path).convert("RGB"), np.float64).mean(axis=(0, 1)) \
            @ np.array([0.5, -0.25, 1.0])
        assert toy.loc[r.image_id, "value"] == pytest.approx(expected)
    groups = sdexp.load_groups(sweep)
    toy_groups = groups[groups.metric == "toy_pref"]
    assert len(toy_groups) == 4 and (toy_groups.statistic == "mean").all() and toy_groups.ci_low.notna().all()
    assert (toy_groups.implementation == "toy_pref.ToyPreference").all()


def test_plugin_that_cannot_load_its_weights_changes_nothing(sweep, plugin, capsys):
    code, _ = plugin
    before = tree_state(sweep)
    assert main([str(sweep), "metrics=[toy_pref]", f"plugins=[{code}]",
                 "options.toy_pref.weights=/missing/head.safetensors"]) == 2
    err = capsys.readouterr().err
    assert "toy_pref: cannot load its model with options.toy_pref.weights='/missing/head.safetensors'" in err
    assert tree_state(sweep) == before


def bad_cases(ref, weights, npz):
    return [
        (["metrics=[clip_score,foo]"], ["metrics=[foo]", "unknown metric 'foo'", "valid: clip_score, fid, kid"]),
        (["metrics=[fid]", "reference=/missing/folder", f"inception.weights={weights}"],
         ["reference='/missing/folder' not found", "a folder of images", "cell:CELL_ID"]),
        (["metrics=[fid]", f"reference={ref}", "inception.weights=/missing/w.pth"],
         ["inception.weights='/missing/w.pth'", "weights-inception-2015-12-05-6726825d.pth", "hub/checkpoints",
          "does not download"]),
        (["metrics=[fid]"], ["metrics=[fid] needs reference="]),
        (["metrics=[kid]", f"reference={npz}", f"inception.weights={weights}"], ["KID needs reference images"]),
        (["group_by=[colour]"], ["group_by='colour'", "valid: cell, all", "sampler"]),
        (["clip.backend=onnx"], ["clip.backend='onnx'", "valid: transformers, open_clip"]),
        (["reference=cell:zzzz"], ["reference='cell:zzzz' matches no cell", "valid: cell:"]),
        (["reference=group:cfg=9"], ["reference='group:cfg=9'", "cfg='9'", "valid: 3.0, 7.0"]),
        (["reference=group:colour=red"], ["'colour=red' is not AXIS=VALUE", "valid axes: model, vae"]),
        (["colour=red"], ["unknown key 'colour'", "valid: metrics, reference, group_by"]),
        (["metrics=[fid]", f"reference={ref}", "inception.resize=bicubic", f"inception.weights={weights}"],
         ["inception.resize='bicubic'", "valid: tf1, antialias"]),
        (["kid.subset_size=1"], ["kid.subset_size=1 must be >= 2"]),
        (["bootstrap.n=many"], ["bootstrap.n='many' is not an integer"]),
        (["clip.backend=open_clip"], ["clip.source=null with clip.backend=open_clip", "ViT-H-14"]),
        (["run.backend=rey"], ["run.backend='rey' is not valid", "valid: local, ray"]),
        (["run.backend=ray", "ray.workers=two"], ["ray.workers='two' is not an integer or null"]),
        (["run.backend=ray", "ray.workers=0"], ["ray.workers=0 must be >= 1 or null"]),
        (["run.backend=ray", "ray.cpus_per_worker=null"], ["ray.cpus_per_worker='null' is not a number"]),
        (["run.backend=ray", "ray.address=nowhere"], ["ray.address='nowhere' is not valid", "host:port"]),
    ]


def test_bad_input_names_key_value_and_choices_and_changes_nothing(sweep, ref, weights, tmp_path, capsys):
    npz = save_npz(tmp_path / "stats.npz", np.random.default_rng(0).normal(size=(5, 2048)))
    before = tree_state(sweep.parent)
    for args, fragments in bad_cases(ref, weights, npz):
        assert main([str(sweep), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("sdexp: error: ")
        for fragment in fragments:
            assert fragment in err, (args, fragment, err)
        assert tree_state(sweep.parent) == before, args
    assert main([str(tmp_path / "nothing")]) == 2
    assert "holds no sdexp results" in capsys.readouterr().err


def test_missing_weights_in_the_default_place(sweep, ref, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    before = tree_state(sweep.parent)
    assert main([str(sweep), "metrics=[fid]", f"reference={ref}"]) == 2
    err = capsys.readouterr().err
    assert "inception.weights=null" in err and str(tmp_path / "torch" / "hub" / "checkpoints") in err
    assert tree_state(sweep.parent) == before and not (tmp_path / "torch").exists()


@pytest.mark.slow
def test_cli_error_exit_code_and_help(sweep, tmp_path):
    proc = run_cli(["score", str(sweep), "metrics=[fidd]"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "sdexp: error: metrics=[fidd]: unknown metric 'fidd'" in proc.stderr
    assert "Traceback" not in proc.stderr
    helped = run_cli(["score", "--help"], cwd=tmp_path)
    for key in ("metrics=", "reference=", "group_by=", "clip.backend=", "inception.weights=", "kid.subset_size=",
                "options.METRIC.KEY"):
        assert key in helped.stdout
