"""scripts/slurm_ray.sbatch: valid bash, and its dry run starts a Ray head on the first node, a worker
on every other node, and an sdexp command that plans against the head's address."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from helpers import run_cli

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm_ray.sbatch"


def dry_run(*args: str, **env) -> list[str]:
    out = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "SDEXP_DRY_RUN": "1", **env})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


def test_script_is_valid_bash():
    out = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_dry_run_starts_the_head_then_the_workers_then_the_sweep(tmp_path):
    lines = dry_run("-m", "sweep=demo", f"results_root={tmp_path}", SLURM_JOB_NODELIST="gpu01,gpu02,gpu03",
                    SLURM_GPUS_ON_NODE="8", SLURM_CPUS_ON_NODE="64")
    heads = [ln for ln in lines if "ray start --head" in ln]
    workers = [ln for ln in lines if "ray start --address=gpu01:6379" in ln]
    assert len(heads) == 1 and "-w gpu01" in heads[0] and "--num-gpus 8" in heads[0] and heads[0].endswith("&")
    assert [w.split("-w ")[1].split()[0] for w in workers] == ["gpu02", "gpu03"]
    assert lines.index(heads[0]) < lines.index(workers[0])
    sweep = shlex.split(lines[-1])
    assert sweep[0] == "sdexp" and sweep[-2:] == ["run.backend=ray", "ray.address=gpu01:6379"]
    # the printed command is a valid sweep: its dry run plans the demo's 432 images for the cluster
    proc = run_cli([*sweep[1:], "plan.dry_run=true"], cwd=tmp_path)
    assert "432" in proc.stdout, proc.stdout[-2000:]
