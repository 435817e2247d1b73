"""benchmarks/gpu_check.py --quick: the CUDA check's every section runs on the CPU with tiny models
and prints one JSON object. In the default run (about 30 s here): it is the CI smoke test of the GPU
check, which a changed engine signature once broke unseen while it was marked slow."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path


BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_quick_prints_every_section(capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--naive-images", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quick"] is True and out["device"] == "cpu"
    sd15 = out["sd15"]
    assert sd15["sdexp"]["images"] == 8 and sd15["naive"]["images"] == 2
    for key in ("fraction_of_bare_unet_loop", "fraction_of_bare_work", "speedup_vs_naive"):
        assert sd15[key] > 0
    assert sd15["sdexp"]["stages"].startswith("stages: ")
    assert out["sdxl"]["sdexp"]["images"] == 2 and out["sdxl"]["fraction_of_bare_unet_loop"] > 0
    assert out["batch_size_auto"]["batch_size"] == 8 and out["batch_size_auto"]["sdexp"]["images"] == 8
    assert "skipped" in out["sd15_compile"] and set(out["goals"]) == {
        "fraction_of_bare_unet_loop_at_least_0.85", "sd15_512_images_per_s_at_least_12"}
