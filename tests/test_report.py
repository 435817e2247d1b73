"""The static HTML report, built from a sweep rendered by the real engine: escaping, offline
links, the cell table with intervals and best marks, plots, and `sdexp report` rebuilding it
from the store alone."""
from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest

import sdexp
from conftest import EVIL_PROMPT
from helpers import run_cli, tree_state
from sdexp.estimates import read_groups
from sdexp.report import build_report, main
from sdexp.report.plots import series
from sdexp.report.tables import cell_table
from sdexp.metrics.registry import get_metric
from sdexp.stats import bootstrap_mean_ci


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def sweep_copy(report_sweep, tmp_path) -> Path:
    folder = tmp_path / "rep"
    shutil.copytree(report_sweep["folder"], folder)
    return folder


def index_of(folder: Path) -> str:
    return (folder / "report" / "index.html").read_text()


def cells_data(folder: Path) -> list[dict]:
    """The rows of the cells table, as report/data/cells.js gives them to the page."""
    text = (folder / "report" / "data" / "cells.js").read_text()
    assert text.startswith("sdexpReport.cells(") and text.rstrip().endswith(");")
    return json.loads(text.strip()[len("sdexpReport.cells("):-2])


def test_the_sweep_builds_its_report_when_it_ends(report_sweep):
    folder = Path(report_sweep["folder"])
    index = folder / "report" / "index.html"
    assert report_sweep["report"] == index and index.exists()
    page = Tags(index.read_text())
    srcs = [a["src"] for t, a in page.tags if t == "img"]
    # the grids (as thumbnails linking to the PNG originals), a thumbnail per cell, the plots
    grids = sorted(p.name for p in (folder / "grids").glob("*.png"))
    assert grids == ["grid-cfg-x-prompt-y.png"]
    assert "thumbs/grids/grid-cfg-x-prompt-y.png" in srcs
    assert ("a", {"class": "zoom", "href": "../grids/grid-cfg-x-prompt-y.png",
                  "data-title": "All cells"}) in page.tags
    cells = cells_data(folder)
    assert len(cells) == 2                                               # two cells: cfg 3 and 7
    rows = sdexp.load_rows(folder)
    for c in cells:                 # each row's image: the cell's first image, shown as it is (64 px)
        first = rows[rows.cell_id == c["id"]].sort_values("seed").image_path.iloc[0]
        assert c["thumb"] == c["href"] == "../" + first
    assert {s for s in srcs if s.startswith("plots/")} == {
        "plots/clip_score-vs-cfg.svg", "plots/clip_score-vs-prompt-by-cfg.svg"}
    assert (folder / "report" / "cells.csv").exists()


def test_prompts_holding_html_show_as_text(report_sweep):
    html = index_of(Path(report_sweep["folder"]))
    page = Tags(html)
    assert EVIL_PROMPT in "".join(page.text)                  # shown, as text
    assert "<script>alert" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in html
    # no element and no attribute came from the prompt: only the page's own script, no <b>,
    # no event-handler attribute anywhere (the prompt's quote did not break out of an attribute)
    assert [a for t, a in page.tags if t == "script"] == [{"src": "assets/report.js", "defer": None},
                                                          {"src": "data/cells.js", "defer": None}]
    assert not [t for t, _ in page.tags if t == "b"]
    assert not [k for _, a in page.tags for k in a if k.startswith("on")]
    # the prompt is also a grid label: inside alt/data-title attributes it stays one value
    headings = [a.get("alt") for t, a in page.tags if t == "img" and a.get("alt")]
    assert headings


def test_report_opens_offline_every_link_resolves(report_sweep):
    folder = Path(report_sweep["folder"])
    report = folder / "report"
    page = Tags(index_of(folder))
    refs = [a[k] for _, a in page.tags for k in ("src", "href") if k in a]
    assert refs
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "//")), ref
        if ref.startswith("#") or ref == "data:,":
            continue
        assert (report / unquote(ref)).is_file(), ref
    for asset in ("assets/report.js", "assets/report.css"):
        text = (report / asset).read_text()
        assert "http" not in text and "@import" not in text


def test_cell_table_has_every_cell_with_interval_and_best_marked(report_sweep):
    folder = Path(report_sweep["folder"])
    rows = sdexp.load_rows(folder)
    table = cell_table(rows, read_groups(folder))
    assert table.axes == ["cfg"] and [m.name for m in table.metrics] == ["clip_score"]
    by_cell = rows.groupby("cell_id")
    assert len(table.cells) == by_cell.ngroups == 2
    for cell in table.cells:
        values = rows.loc[rows.cell_id == cell.cell_id, "clip_score"]
        assert cell.n_images == len(values) == 4              # 2 seeds x 2 prompts
        mean, lo, hi = bootstrap_mean_ci(values)
        est = cell.estimates["clip_score"]
        assert (est.value, est.low, est.high) == pytest.approx((mean, lo, hi))
        assert lo <= mean <= hi
    best_id = by_cell.clip_score.mean().idxmax()
    assert [c.cell_id for c in table.cells if c.best] == [best_id]
    html = index_of(folder)
    data = cells_data(folder)
    assert [c["id"] for c in data if c["m"][0][3]] == [best_id]          # one best mark, on the best cell
    assert [c["id"] for c in data] == [c.cell_id for c in table.cells]    # cell ids in the table
    best_cfg = rows.loc[rows.cell_id == best_id, "cfg"].iloc[0]
    assert f"at CFG scale: {best_cfg:g}" in html
    csv = pd.read_csv(folder / "report" / "cells.csv")
    assert set(csv.columns) >= {"cell_id", "cfg", "images", "clip_score", "clip_score_ci_low",
                                "clip_score_ci_high", "clip_score_best"}
    assert csv.loc[csv.clip_score_best, "cell_id"].tolist() == [best_id]


def test_summary_tells_axes_counts_time_hardware_and_versions(report_sweep):
    folder = Path(report_sweep["folder"])
    rows = sdexp.load_rows(folder)
    text = " ".join(" ".join(Tags(index_of(folder)).text).split())
    for fact in ("Images 8", "Prompts 2", "Seeds per cell and prompt 2", "CFG scale 3, 7", "Seed 0, 1",
                 "Device cpu", "Precision float32", f"torch {rows.torch_version.iloc[0]}",
                 f"diffusers {rows.diffusers_version.iloc[0]}", "Render time", "Runs 1"):
        assert fact in text, fact


def test_plot_points_are_means_over_everything_else(report_sweep):
    rows = sdexp.load_rows(report_sweep["folder"])
    info = get_metric("clip_score")
    data = series(rows, None, info, "prompt", "cfg", ["cfg", "prompt"])
    assert set(data) == {3.0, 7.0}
    for cfg, points in data.items():
        assert [p[0] for p in points] == ["a red apple on a table", EVIL_PROMPT]
        for prompt, est in points:
            values = rows[(rows.cfg == cfg) & (rows.prompt == prompt)].clip_score
            assert est.value == pytest.approx(values.mean()) and est.n == 2
    svg = (Path(report_sweep["folder"]) / "report" / "plots" / "clip_score-vs-prompt-by-cfg.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<script" not in svg


def test_sdexp_report_rebuilds_grids_and_report_from_the_store_alone(sweep_copy):
    folder = sweep_copy
    shutil.rmtree(folder / "report")
    shutil.rmtree(folder / "grids")
    proc = run_cli(["report", str(folder), "grid.x=prompt", "grid.y=cfg", "grid.seed=all"], cwd=folder.parent)
    assert f"sdexp: report  {(folder / 'report' / 'index.html').resolve()}" in proc.stdout
    assert sorted(p.name for p in (folder / "grids").glob("*.png")) == ["grid-prompt-x-cfg-y.png"]
    html = index_of(folder)
    assert "thumbs/grids/grid-prompt-x-cfg-y.png" in html and "X: Prompt, Y: CFG scale" in html
    # without overrides the sweep's own axes come back; stale files of the report are removed
    stale = folder / "report" / "plots" / "old.svg"
    stale.write_text("<svg/>")
    assert main([str(folder)]) == 0
    assert "thumbs/grids/grid-cfg-x-prompt-y.png" in index_of(folder)
    assert sorted(p.name for p in (folder / "grids").glob("*.png")) == ["grid-cfg-x-prompt-y.png"]
    assert not stale.exists()
    assert not (folder / "report" / "thumbs" / "grids" / "grid-prompt-x-cfg-y.png").exists()


@pytest.mark.parametrize("args, fragments", [
    (["grid.x=colour"], ["grid.x='colour'", "not a swept axis", "valid: cfg"]),
    (["grid.sed=all"], ["'grid.sed=all' is not a grid option", "grid.seed=VALUE"]),
    (["grid.seed=last"], ["grid.seed='last'", "'all'"]),
    (["grid.metric=sharpness"], ["grid.metric='sharpness'", "clip_score"]),
    (["grid.max_pixels=many"], ["max_pixels"]),
])
def test_bad_report_options_name_key_value_and_choices_and_change_nothing(sweep_copy, capsys, args, fragments):
    before = tree_state(sweep_copy)
    assert main([str(sweep_copy), *args]) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert tree_state(sweep_copy) == before


def test_report_of_a_folder_without_results_fails_clearly(tmp_path, capsys):
    assert main([str(tmp_path / "nothing")]) == 2
    assert "holds no sdexp results" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def write_groups(folder: Path, records: list[dict]) -> None:
    """A groups table shaped like `sdexp score`'s (README, "Metrics"): typed axis columns, blank
    where a group pools several values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("metric", pa.string()), ("statistic", pa.string()), ("grouping", pa.string()),
                        ("cell_id", pa.string()), ("sampler", pa.string()), ("cfg", pa.float64()),
                        ("steps", pa.int64()), ("prompt", pa.string()), ("value", pa.float64()),
                        ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("n", pa.int64()),
                        ("reference", pa.string()), ("warning", pa.string())])
    (folder / "groups").mkdir(exist_ok=True)
    table = pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in records], schema=schema)
    pq.write_table(table, folder / "groups" / "fid-value-0123456789ab.parquet")


def test_group_metrics_from_the_groups_table_join_the_table_and_plots(sweep_copy):
    folder = sweep_copy
    rows = sdexp.load_rows(folder)
    cell_of = {c: rows.loc[rows.cfg == c, "cell_id"].iloc[0] for c in (3.0, 7.0)}
    base = {"metric": "fid", "statistic": "value", "grouping": "cell", "sampler": "Euler a", "steps": 1,
            "reference": "real/"}
    write_groups(folder, [
        # one FID per cell (pooled over seeds and prompts: prompt blank); lower is better
        {**base, "cell_id": cell_of[3.0], "cfg": 3.0, "value": 50.0, "ci_low": 47.0, "ci_high": 53.0, "n": 4},
        {**base, "cell_id": cell_of[7.0], "cfg": 7.0, "value": 40.0, "ci_low": 38.5, "ci_high": 41.5, "n": 4},
        # ignored: a paired difference, and a second reference with fewer rows
        {**base, "statistic": "paired_diff", "cell_id": cell_of[3.0], "cfg": 3.0, "value": -9.0, "n": 4},
        {**base, "reference": "other/", "cell_id": cell_of[3.0], "cfg": 3.0, "value": 1.0, "n": 4},
    ])
    table = cell_table(rows, read_groups(folder))
    assert [m.name for m in table.metrics] == ["clip_score", "fid"]
    fid = {c.settings["cfg"]: c.estimates["fid"] for c in table.cells}
    assert (fid[3.0].value, fid[3.0].low, fid[3.0].high, fid[3.0].n) == (50.0, 47.0, 53.0, 4)
    assert table.best["fid"].settings == {"cfg": 7.0}           # lower is better
    build_report(folder)
    html = index_of(folder)
    # the direction is said in words under the name, not as an arrow that reads as a sort indicator
    assert ('<th title="lower is better; reference real/">FID<small class="dir">lower is better; '
            'reference real/</small></th>') in html
    assert "\u2193" not in html and "\u2191" not in html
    data = {c["s"][0][0]: c for c in cells_data(folder)}
    assert data["7"]["m"][1][:2] == ["40.0", "[38.5, 41.5]"] and data["7"]["m"][1][3]
    assert sum(m[3] for c in data.values() for m in c["m"]) == 2        # one best cell per metric
    # FID against CFG: the per-cell rows pool the prompt, the only other swept axis
    assert (folder / "report" / "plots" / "fid-vs-cfg.svg").exists()
    data = series(rows, read_groups(folder), get_metric("fid"), "cfg", None, ["cfg", "prompt"])
    assert [(x, e.value) for x, e in data[None]] == [(3.0, 50.0), (7.0, 40.0)]


def test_no_groups_folder_means_per_image_metrics_only(sweep_copy):
    assert read_groups(sweep_copy) is None
    assert [m.name for m in cell_table(sdexp.load_rows(sweep_copy)).metrics] == ["clip_score"]
    assert np.isfinite(sdexp.load_rows(sweep_copy).clip_score).all()


@pytest.mark.parametrize("override, fragment", [
    ("grid.metric=sharpness", "grid.metric='sharpness' is not a known metric; valid: clip_score"),
    ("grid.seed=last", "grid.seed='last' is not valid; valid: 'first', 'all'"),
    ("grid.max_pixels=0", "grid.max_pixels=0 must be >= 1"),
])
def test_bad_grid_options_fail_before_a_sweep_renders(compose_cfg, override, fragment):
    from sdexp.plan import ConfigError, make_plan

    with pytest.raises(ConfigError) as err:
        make_plan([compose_cfg(["cfg=3", override])])
    assert fragment in str(err.value)


def test_grid_options_compose_from_the_command_line(compose_cfg):
    cfg = compose_cfg(["grid.seed=all", "grid.metric=null", "grid.max_pixels=1000000"])
    assert (cfg.grid.seed, cfg.grid.metric, cfg.grid.max_pixels) == ("all", None, 1_000_000)
    assert compose_cfg([]).grid.metric == "clip_score"


@pytest.mark.parametrize("stored, given, layout", [
    ({"x": "cfg", "y": "steps", "z": "sampler"}, {"x": "sampler", "y": "cfg"}, ("sampler", "cfg", "steps")),
    ({"x": "cfg", "y": "prompt"}, {"x": "prompt"}, ("prompt", "cfg", None)),
    ({"x": "cfg", "y": "prompt"}, {"y": "cfg"}, ("prompt", "cfg", None)),
    ({"x": "cfg", "y": "prompt"}, {"z": "seed"}, ("cfg", "prompt", "seed")),
    ({"x": "cfg", "y": "prompt", "z": "seed"}, {"x": "seed", "y": "cfg"}, ("seed", "cfg", "prompt")),
])
def test_axes_given_on_the_command_line_swap_with_the_stored_layout(stored, given, layout):
    from sdexp.report.options import swapped

    out = swapped(stored, given)
    assert (out["x"], out["y"], out["z"]) == layout


def test_a_stored_sweeps_axes_swapped_by_sdexp_report(report_sweep):
    from sdexp.report.options import grid_options

    folder = Path(report_sweep["folder"])
    rows = sdexp.load_rows(folder)
    opts = grid_options(folder, rows, ["grid.x=prompt"])        # stored: x CFG, y prompt
    assert (opts["x"], opts["y"]) == ("prompt", "cfg")


def test_a_sweep_without_scores_still_gets_grids_table_and_no_plots(sweep_copy):
    import pyarrow.parquet as pq

    for part in (sweep_copy / "rows").glob("part-*.parquet"):
        df = pq.read_table(part).to_pandas()
        df["clip_score"] = float("nan")                   # as with scorer=none
        df.to_parquet(part)
    index = build_report(sweep_copy)
    page = Tags(index.read_text())
    text = " ".join(page.text)
    assert "No metric has a value in this sweep yet." in text and "No plots" in text
    assert "CLIP score" not in [t.strip() for t in page.text]
    assert not list((sweep_copy / "report" / "plots").glob("*.svg"))        # old plots removed
    assert [c["m"] for c in cells_data(sweep_copy)] == [[], []]            # two cells, no metric
    assert any(a.get("src", "").startswith("thumbs/grids/") for t, a in page.tags if t == "img")
