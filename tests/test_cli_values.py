"""What a user types at the shell, through the real console script: prompts with commas, A1111
ranges, in-job lists planned like the multirun, and typos that fail with a suggestion."""
from __future__ import annotations

import re

import pytest

from helpers import run_cli


def _counts(stdout: str) -> dict:
    """The dry run's numbers: {"images (cells x prompts x seeds)": 12, ...}."""
    return {m[1].strip(): int(m[2]) for m in re.finditer(r"^\s+([a-zA-Z][^\d\n]*?)\s+(\d+)\b", stdout, re.M)}


@pytest.mark.slow
def test_a_prompt_with_commas_is_one_prompt_and_ranges_expand(tmp_path):
    root = f"results_root={tmp_path / 'r'}"
    one = run_cli(["plan", "-m", "prompt=masterpiece, best quality, a cat", "seed=0", root], cwd=tmp_path)
    assert _counts(one.stdout)["images (cells x prompts x seeds)"] == 1
    ranged = run_cli(["plan", "prompt=a cat", "steps=10-30 (+10)", "seed=1-4", "cfg=3-7 [3]", root], cwd=tmp_path)
    assert _counts(ranged.stdout)["images (cells x prompts x seeds)"] == 3 * 4 * 3
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.png"))


@pytest.mark.slow
def test_in_job_lists_plan_like_the_multirun(tmp_path):
    root = f"results_root={tmp_path / 'r'}"
    lists = run_cli(["plan", "cfg=[1,7]", "sampler=[euler_a,ddim]", "clip_skip=[1,2]", "seed=[0,1]", root],
                    cwd=tmp_path)
    jobs = run_cli(["plan", "-m", "cfg=1,7", "sampler=euler_a,ddim", "clip_skip=1,2", "seed=[0,1]", root],
                   cwd=tmp_path)
    a, b = _counts(lists.stdout), _counts(jobs.stdout)
    assert a["images (cells x prompts x seeds)"] == 2 * 2 * 2 * 2 * 2      # two prompts in the default set
    for key in ("images (cells x prompts x seeds)", "prompt encodings", "denoise trajectories", "batches",
                "UNet evaluations", "VAE decodes"):
        assert a[key] == b[key], key
    assert "x=cfg y=sampler z=clip_skip" in lists.stdout and "x=cfg y=sampler z=clip_skip" in jobs.stdout


@pytest.mark.slow
def test_typos_and_seeds_outside_the_sweep_fail_with_one_line(tmp_path):
    root = f"results_root={tmp_path / 'r'}"
    typo = run_cli(["-m", "+samplr=euler", root], cwd=tmp_path, check=False)
    assert typo.returncode == 2 and "Traceback" not in typo.stderr
    assert "samplr is not a config key; did you mean sampler?" in typo.stderr
    seed = run_cli(["seed=[0,1]", "grid.seed=9", root], cwd=tmp_path, check=False)
    assert seed.returncode == 2 and "grid.seed=9 is not a seed of this sweep" in seed.stderr
    inf = run_cli(["cfg=inf", root], cwd=tmp_path, check=False)
    assert inf.returncode == 2 and "cfg=inf must be a finite number" in inf.stderr
    assert not (tmp_path / "r").exists()


def test_argv_is_prepared_before_hydra_sees_it():
    """The same preparation the console script applies, in-process: a prompt with commas stays one
    prompt, a spaced A1111 range is quoted for Hydra, a comma list without -m is one in-job list, and a
    typo fails with a suggestion."""
    from sdexp.axes import ConfigError
    from sdexp.overrides import prepare

    out = prepare(["prompt=masterpiece, best quality, a cat", "steps=10-30 (+10)", "cfg=3,7", "sampler=euler"])
    assert out[0] == "prompt='masterpiece, best quality, a cat'"
    assert out[1] == "steps='10-30 (+10)'" and out[2] == "cfg='3,7'" and out[3] == "sampler=euler"
    assert prepare(["-m", "cfg=3,7"])[1] == "cfg=3,7"                # with -m: Hydra's sweep, one job per value
    assert prepare(["seed=1", "-m", "cfg=3,7"]) == ["-m", "seed=1", "cfg=3,7"]   # -m anywhere: Hydra needs it first
    with pytest.raises(ConfigError) as err:
        prepare(["-m", "+samplr=euler"])
    assert "samplr is not a config key; did you mean sampler?" in str(err.value)


def test_ctrl_c_in_a_subcommand_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    """Ctrl-C during `sdexp score` (or any subcommand) ends with one line, not a traceback."""
    import sys

    from sdexp import cli, score

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(score, "main", interrupted)
    monkeypatch.setattr(sys, "argv", ["sdexp", "score", str(tmp_path)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 130
    assert capsys.readouterr().err.strip() == "sdexp: score interrupted"
