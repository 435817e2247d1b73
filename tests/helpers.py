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


def ctrl_c_once_stored(args: list[str], cwd: Path, rows: Path, timeout: float = 180) -> tuple[int, str]:
    """Run the console script in its own process group and, once a part file appears under `rows`,
    send SIGINT to the whole group as a terminal's Ctrl-C does. Returns (exit code, stderr)."""
    import signal
    import time

    proc = subprocess.Popen([*SDEXP, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not list(rows.glob("part-*.parquet")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def tree_state(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its content, to prove a failed run changed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
