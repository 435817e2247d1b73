"""Sweeps of 10^5 images on one machine, without rendering: synthetic rows (every column of the
declared schema, realistic strings) and tiny PNGs. Prints one `key=value` line per figure, with
the peak RSS of the process that measured it (each figure runs in a fresh child process).

    .venv/bin/python benchmarks/scale.py                   # every figure
    .venv/bin/python benchmarks/scale.py load_rows_200k_s  # some of them
    .venv/bin/python benchmarks/scale.py --before-parts 25000   # the "before" store at 200,000 rows

Store figures, "after" (compacted, as a sweep leaves its store now) and "before" (one part file of 8
rows per batch, as every store was before compaction; 2,500 part files = 20,000 rows, the store
size measured in the December notes, or --before-parts N), measured side by side in one run:
  load_rows_200k_s        sdexp.load_rows of 200,000 compacted rows
  load_rows_before_s      sdexp.load_rows of the part-file store; `_per_file_loop` the former reader
                          (one pandas read per part file) on the same files
  stored_ids_200k_s       the resume check's stored image ids (image_id alone), 200,000 compacted rows
  stored_ids_before_s     the same on the part-file store
  rerun_noop_100k_s       the store's share of a rerun that finds all 100,000 images stored: the cheap
                          store check (footers, ids, each image's presence and size) and the stored ids
                          against 100,000 planned ids; `rerun_noop_before_s` on the part-file store
  report_100k_s         `sdexp report` rebuilt over 100,000 stored images (grids, tables, plots, viewer data);
                        `_first` the first build, which reads each PNG's header once
  viewer_10k_open_s     the viewer of a 10 CFG x 10 steps x 4 samplers x 25 seeds sweep opened in headless
                        Chromium with all 10,000 images in its grid (every seed side by side), from the
                        page's start until the first frame with its grid; `_setup` the page's own script
                        time; `_thumbs_loaded_s` until the thumbnails within reach of the view (their
                        number `_thumbs_loaded`) are loaded
Targets: load_rows_200k_s < 3, stored_ids_200k_s < 1, rerun_noop_100k_s < 20, report_100k_s < 60.

Planning figures: wall time of `sdexp plan ...` through the console script, less a 2-job plan
(`plan_2_jobs_s`, mostly imports) timed in the same run, each with the peak RSS of that command:
  plan_512_jobs_s       `-m` over 8 CFG x 4 steps x 4 clip skips x 4 samplers; `plan_512_jobs_before_s`
                        the former path (hydra/sweeper=basic and SDEXP_LAUNCHER_FULL_COMPOSE=1: Hydra
                        composes every job twice), side by side
  plan_4096_jobs_s      `-m` over 8 CFG x 8 steps x 4 clip skips x 8 samplers x 2 seeds
  plan_100k_cells_s     one job listing its values: 4 CFG x 8 prompts x seeds 0-3124 (100,000 images)
Target: plan_4096_jobs_s < 10.

Add a figure: a function `def my_figure_s(work: Path) -> dict` returning {"my_figure_s": seconds, ...},
listed in FIGURES; main runs it in its own process and adds `my_figure_peak_rss_mib`.
"""
from __future__ import annotations

import hashlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdexp.schema import row_schema  # noqa: E402
from sdexp.store import Store, image_relpath  # noqa: E402

BATCH = 8       # rows per part file of an uncompacted store: one batch each
BEFORE_PARTS = [2500]   # part files of the "before" store (--before-parts N)


def image_ids(n: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(n)]


def tiny_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def synthetic_rows(n: int, png: bytes) -> pa.Table:
    """n rows in the declared schema, values as a sweep of 8 samplers x 8 CFG x ... would hold."""
    ids = image_ids(n)
    i = np.arange(n)
    sha = hashlib.sha256(png).hexdigest()
    text = {
        "sweep": ["scale"] * n, "image_id": ids, "cell_id": [f"{k:016x}" for k in i // 32],
        "model": ["tiny"] * n, "model_source": ["/home/user/models/v1-5-pruned-emaonly.safetensors"] * n,
        "model_hash": ["6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa"] * n,
        "vae": [f"vae{k % 2}" for k in i], "sampler": [("Euler a", "DPM++ 2M Karras", "DDIM", "UniPC")[k % 4] for k in i],
        "scheduler": ["EulerAncestralDiscreteScheduler"] * n,
        "prompt": [f"a photo of a cat number {k % 50}, highly detailed, 4k" for k in i],
        "negative_prompt": ["blurry, low quality"] * n, "size": ["512x512"] * n,
        "image_path": [image_relpath(x) for x in ids], "image_sha256": [sha] * n, "image_flags": [""] * n,
        "clip_model": ["openai/clip-vit-large-patch14"] * n, "batch_id": [f"{k:016x}" for k in i // BATCH],
        "device": ["cuda"] * n, "dtype": ["float16"] * n, "sdexp_version": ["0.1.0"] * n,
        "torch_version": ["2.14.1"] * n, "diffusers_version": ["0.42.1"] * n, "transformers_version": ["5.23.0"] * n,
        "python_version": ["3.11.9"] * n, "created_at": ["2026-12-01T12:00:00+00:00"] * n,
    }
    numbers = {"steps": 20 + i % 4 * 10, "cfg": (i % 8).astype(float) + 1.0, "clip_skip": 1 + i % 2,
               "seed": i // 64, "width": np.full(n, 512), "height": np.full(n, 512),
               "image_bytes": np.full(n, len(png)), "clip_score": 20 + (i % 97) / 10.0,
               "seconds": np.full(n, 0.8), "batch_size": np.full(n, BATCH), "batch_index": i % BATCH}
    schema = row_schema()
    columns = {**text, **numbers}
    return pa.Table.from_arrays([pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type)
                                 for f in schema], schema=schema)


def full_grid_rows(png: bytes) -> pa.Table:
    """10,000 rows of a full grid: 10 CFG x 10 step counts x 4 samplers x 25 seeds, one prompt."""
    n = 10_000
    table, i = synthetic_rows(n, png), np.arange(n)
    columns = {"cfg": (i % 10).astype(float) + 1.0, "steps": 10 + (i // 10) % 10 * 5,
               "sampler": [("Euler a", "DPM++ 2M Karras", "DDIM", "UniPC")[k] for k in (i // 100) % 4],
               "seed": i // 400, "cell_id": [f"{k:016x}" for k in i % 400], "vae": ["vae0"] * n,
               "clip_skip": np.ones(n, np.int64), "prompt": ["a photo of a cat, highly detailed, 4k"] * n}
    for name, values in columns.items():
        k = table.schema.get_field_index(name)
        table = table.set_column(k, table.schema.field(k), pa.array(values, table.schema.field(k).type))
    return table


def build_store(folder: Path, n: int, parts: bool, images: bool, rows=synthetic_rows) -> Store:
    """A store of n rows (`rows(n, png)`, or `rows(png)` for a fixed size): one compacted file, or one
    part file per batch of BATCH rows (as a sweep leaves it without compaction); with `images`, a tiny
    PNG per row in its subfolder."""
    store = Store(folder)
    store.rows.mkdir(parents=True, exist_ok=True)
    png = tiny_png()
    table = rows(n, png) if rows is synthetic_rows else rows(png)
    if parts:
        for k in range(0, n, BATCH):
            pq.write_table(table.slice(k, BATCH), store.rows / f"part-20261201T120000-{k:08x}.parquet")
    else:
        pq.write_table(table, store.rows / "part-20261201T120000-00000000-merged.parquet", row_group_size=1 << 16)
    if images:
        for rel in table.column("image_path").to_pylist():
            path = folder / rel
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True)
            path.write_bytes(png)
    return store


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def load_rows_200k(work: Path) -> dict:
    import pandas as pd

    from sdexp.store import load_rows

    out = {}
    store = build_store(work / "compacted", 200_000, parts=False, images=False)
    out["load_rows_200k_s"] = timed(lambda: load_rows(store.folder))
    store = build_store(work / "parts", BEFORE_PARTS[0] * BATCH, parts=True, images=False)
    out["load_rows_before_rows"] = BEFORE_PARTS[0] * BATCH
    out["load_rows_before_s"] = timed(lambda: load_rows(store.folder))
    out["load_rows_before_per_file_loop_s"] = timed(
        lambda: pd.concat([pd.read_parquet(p) for p in store.part_files()], ignore_index=True))
    return out


def stored_ids_200k(work: Path) -> dict:
    out = {}
    store = build_store(work / "compacted", 200_000, parts=False, images=False)
    out["stored_ids_200k_s"] = timed(store.image_ids)
    store = build_store(work / "parts", BEFORE_PARTS[0] * BATCH, parts=True, images=False)
    out["stored_ids_before_s"] = timed(store.image_ids)
    return out


def rerun_noop_100k(work: Path) -> dict:
    from sdexp.verify import quick_repair

    out = {}
    cases = (("rerun_noop_100k_s", 100_000, False), ("rerun_noop_before_s", BEFORE_PARTS[0] * BATCH, True))
    for key, n, parts in cases:
        store = build_store(work / key, n, parts=parts, images=True)
        planned = image_ids(n)

        def rerun():
            with store.lock():
                found = quick_repair(store, log=print)
                assert found.clean, found.findings[:3]
                done = store.image_ids()
                assert not [c for c in planned if c not in done]

        out[key] = timed(rerun)
    return out


def report_100k(work: Path) -> dict:
    """`sdexp report` of 100,000 stored images: the first build (each image's PNG header read once,
    no thumbnail needed for tiny images) and a rebuild (no image opened again)."""
    from sdexp.report import build_report

    store = build_store(work / "report", 100_000, parts=False, images=True)
    out = {"report_100k_first_s": timed(lambda: build_report(store.folder, log=lambda *a: None))}
    out["report_100k_s"] = timed(lambda: build_report(store.folder, log=lambda *a: None))
    return out


def viewer_10k_open(work: Path) -> dict:
    """The viewer of a full grid of 10,000 images, all of them in the view (X CFG, Y steps, Y super
    sampler, every seed side by side), opened in headless Chromium (Debian's chromium and
    chromedriver): the page's clock from its start until the first frame after its grid is drawn."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from sdexp.report import build_report

    store = build_store(work / "viewer", 10_000, parts=False, images=True, rows=full_grid_rows)
    build_report(store.folder, log=lambda *a: None)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--disable-gpu", "--no-sandbox", "--window-size=1400,1000",
                 f"--user-data-dir={work / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    # the first frame after the viewer's set-up (its DOMContentLoaded handler draws the grid): this
    # listener comes first, its frame callback runs once that handler is done and the frame is drawn
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "document.addEventListener('DOMContentLoaded', () => requestAnimationFrame(() => "
        "setTimeout(() => { window.benchPaintedMs = performance.now(); }, 0)));")})
    try:
        driver.set_page_load_timeout(300)
        driver.set_script_timeout(300)
        driver.get("about:blank")
        url = (store.folder / "report" / "viewer.html").as_uri() + "#x=cfg&y=steps&xs=&ys=sampler&seed=all"
        t0 = time.perf_counter()
        driver.get(url)
        WebDriverWait(driver, 300, poll_frequency=0.05).until(
            lambda d: d.execute_script("return window.benchPaintedMs !== undefined"))
        wall = time.perf_counter() - t0
        thumbs = driver.execute_async_script(  # every thumbnail given a src by then, loaded
            "const done = arguments[arguments.length - 1];"
            "const check = () => Array.from(document.querySelectorAll('#grid img[src]')).every(i => i.complete)"
            "  ? done([performance.now(), document.querySelectorAll('#grid img[src]').length]) : setTimeout(check, 20);"
            "check();")
        page = driver.execute_script(         # ms since the page's navigation began
            "const n = performance.getEntriesByType('navigation')[0];"
            "return {painted: window.benchPaintedMs, setup: window.sdexpViewerReadyMs, load: n.loadEventEnd,"
            "        shown: Number(document.body.dataset.images)}")
    finally:
        driver.quit()
    return {"viewer_10k_open_s": page["painted"] / 1000, "viewer_10k_setup_s": page["setup"] / 1000,
            "viewer_10k_load_event_s": page["load"] / 1000, "viewer_10k_wall_s": wall,
            "viewer_10k_images_shown": page["shown"], "viewer_10k_thumbs_loaded_s": thumbs[0] / 1000,
            "viewer_10k_thumbs_loaded": thumbs[1]}


# --- planning: `sdexp plan` through the console script, less a 2-job plan timed in the same run ------
SDEXP = Path(sys.executable).parent / "sdexp"
PLAN_2_JOBS = ["-m", "model=tiny", "cfg=1,2"]
PLAN_512_JOBS = ["-m", "model=tiny", "cfg=1,2,3,4,5,6,7,8", "steps=10,20,30,40", "clip_skip=1,2,3,4",
                 "sampler=euler,euler_a,ddim,unipc"]
PLAN_4096_JOBS = ["-m", "model=tiny", "cfg=1,2,3,4,5,6,7,8", "steps=10,20,30,40,50,60,70,80", "clip_skip=1,2,3,4",
                  "sampler=euler,euler_a,ddim,unipc,dpmpp_2m,dpmpp_2m_karras,lms,heun", "seed=0,1"]
PLAN_100K_CELLS = ["model=tiny", "prompts=varied", "cfg=3,5,7,9", "seed=0-3124"]   # one job: 4 x 8 prompts x 3125
# the former path: Hydra's basic sweeper composing each job to check it, the launcher composing each again
PLAN_BEFORE = (["hydra/sweeper=basic"], {"SDEXP_LAUNCHER_FULL_COMPOSE": "1"})


def sdexp_plan(work: Path, args: list[str], env: dict | None = None) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, images planned) of one `sdexp plan ARGS` in a fresh process."""
    import os
    import re

    log = work / "plan.log"
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([str(SDEXP), "plan", *args, f"results_root={work / 'results'}", "name=scale"],
                                cwd=work, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    text = log.read_text()
    images = re.search(r"images \(cells x prompts x seeds\)\s+(\d+)", text)
    if os.waitstatus_to_exitcode(status) != 0 or images is None:
        raise RuntimeError(f"sdexp plan {' '.join(args)} failed:\n{text[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, int(images[1])


def plan_figures(work: Path, key: str, args: list[str], before: bool) -> dict:
    """`key` (seconds beyond a 2-job plan), its peak RSS and images; with `before`, the same by the former path."""
    name = key.removesuffix("_s")
    base, base_rss, _ = sdexp_plan(work, PLAN_2_JOBS)
    out = {"plan_2_jobs_s": base, "plan_2_jobs_peak_rss_mib": base_rss}
    seconds, rss, images = sdexp_plan(work, args)
    out.update({key: seconds - base, f"{name}_peak_rss_mib": rss, f"{name}_images": images})
    if before:
        seconds, rss, _ = sdexp_plan(work, [*args, *PLAN_BEFORE[0]], PLAN_BEFORE[1])
        out.update({f"{name}_before_s": seconds - base, f"{name}_before_peak_rss_mib": rss})
    return out


def plan_512_jobs(work: Path) -> dict:
    return plan_figures(work, "plan_512_jobs_s", PLAN_512_JOBS, before=True)


def plan_4096_jobs(work: Path) -> dict:
    return plan_figures(work, "plan_4096_jobs_s", PLAN_4096_JOBS, before=False)   # before: about 8x the 512 one


def plan_100k_cells(work: Path) -> dict:
    return plan_figures(work, "plan_100k_cells_s", PLAN_100K_CELLS, before=False)


FIGURES = {"plan_512_jobs_s": plan_512_jobs, "plan_4096_jobs_s": plan_4096_jobs, "plan_100k_cells_s": plan_100k_cells,
           "load_rows_200k_s": load_rows_200k, "stored_ids_200k_s": stored_ids_200k,
           "rerun_noop_100k_s": rerun_noop_100k, "report_100k_s": report_100k,
           "viewer_10k_open_s": viewer_10k_open}


def run_one(name: str) -> None:
    """Child process: measure one figure, print its values and peak RSS as JSON."""
    with tempfile.TemporaryDirectory(prefix="sdexp-scale-") as tmp:
        values = FIGURES[name](Path(tmp))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    values.setdefault(name.removesuffix("_s") + "_peak_rss_mib", rss)   # a figure of a command gives the command's
    print(json.dumps(values))


def main(argv: list[str]) -> None:
    if "--before-parts" in argv:
        i = argv.index("--before-parts")
        BEFORE_PARTS[0] = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if argv[:1] == ["--one"]:
        run_one(argv[1])
        return
    for name in argv or list(FIGURES):
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--before-parts", str(BEFORE_PARTS[0])],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}=failed\n{proc.stderr}", file=sys.stderr)
            continue
        for key, value in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            print(f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
