"""Test helpers: run the real `sdexp` console script."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SDEXP = [sys.executable, "-m", "sdexp.cli"]


def run_cli(args: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", **kw.pop("env", {})}
    proc = subprocess.run([*SDEXP, *args], cwd=cwd, env=env, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"sdexp {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def tree_state(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its content, to prove a failed run changed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
