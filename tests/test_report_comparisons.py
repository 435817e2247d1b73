"""The report's comparisons on a sweep rendered by the real engine: every cell against a baseline
cell (paired on prompt and seed, equal to sdexp.stats.paired_difference_ci), the per-prompt
breakdown, and every result set of groups/ with its N and warnings."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import sdexp
from conftest import EVIL_PROMPT
from sdexp.axes import ConfigError
from sdexp.estimates import decimals, format_number
from sdexp.report import build_report, main
from sdexp.stats import bootstrap_mean_ci, paired_difference_ci
from test_report import Tags, cells_data, index_of, write_groups


@pytest.fixture
def sweep_copy(report_sweep, tmp_path) -> Path:
    folder = tmp_path / "rep"
    shutil.copytree(report_sweep["folder"], folder)
    return folder


def paired(rows, cell, base):
    a = rows[rows.cell_id == cell].sort_values(["prompt", "seed"])
    b = rows[rows.cell_id == base].sort_values(["prompt", "seed"])
    assert a[["prompt", "seed"]].values.tolist() == b[["prompt", "seed"]].values.tolist()
    return paired_difference_ci(a.clip_score.to_numpy(), b.clip_score.to_numpy())


def test_each_cell_against_the_baseline_cell_paired_on_prompt_and_seed(report_sweep):
    folder = Path(report_sweep["folder"])
    rows = sdexp.load_rows(folder)
    base = rows.loc[rows.cfg == 3, "cell_id"].iloc[0]                  # the first value of CFG
    other = rows.loc[rows.cfg == 7, "cell_id"].iloc[0]
    data = {c["id"]: c for c in cells_data(folder)}
    assert data[base]["d"][0][0] == "baseline"
    mean, low, high, n = paired(rows, other, base)
    value, interval, sort, pairs, _ = data[other]["d"][0]
    assert float(sort) == pytest.approx(mean) and pairs == "4" and n == 4
    lo, hi = (float(x) for x in interval.strip("[]").split(", "))
    assert (lo, hi) == pytest.approx((low, high), abs=0.01)
    text = " ".join(" ".join(Tags(index_of(folder)).text).split())
    assert base[:10] in text and ": CFG scale: 3)" in text and "vs baseline, N pairs" in text


def test_a_chosen_baseline_and_a_bad_one(sweep_copy, capsys):
    rows = sdexp.load_rows(sweep_copy)
    base = rows.loc[rows.cfg == 7, "cell_id"].iloc[0]
    other = rows.loc[rows.cfg == 3, "cell_id"].iloc[0]
    assert main([str(sweep_copy), f"--baseline={base[:6]}"]) == 0
    data = {c["id"]: c for c in cells_data(sweep_copy)}
    assert data[base]["d"][0][0] == "baseline"
    assert float(data[other]["d"][0][2]) == pytest.approx(paired(rows, other, base)[0])
    with pytest.raises(ConfigError, match="baseline='zzz' names no single cell"):
        build_report(sweep_copy, baseline="zzz")
    assert main([str(sweep_copy), "--baseline=zzz"]) == 2
    assert "sdexp: error: baseline='zzz' names no single cell; valid: a cell id" in capsys.readouterr().err


def test_per_prompt_breakdown_pools_every_cell(report_sweep):
    folder = Path(report_sweep["folder"])
    rows = sdexp.load_rows(folder)
    page = Tags(index_of(folder))
    text = " ".join(" ".join(page.text).split())
    assert "Per prompt" in text and EVIL_PROMPT in text
    for prompt in ("a red apple on a table", EVIL_PROMPT):
        mean, low, high = bootstrap_mean_ci(rows[rows.prompt == prompt].clip_score)
        places = decimals(mean)
        assert f"{format_number(mean, places)} [{format_number(low, places)}, {format_number(high, places)}]" in text


def test_every_result_set_of_groups_with_n_and_warnings(sweep_copy):
    rows = sdexp.load_rows(sweep_copy)
    cell = {c: rows.loc[rows.cfg == c, "cell_id"].iloc[0] for c in (3.0, 7.0)}
    base = {"statistic": "value", "grouping": "cell", "reference": "real/", "n": 4}
    write_groups(sweep_copy, [
        {**base, "metric": "fid", "cell_id": cell[3.0], "cfg": 3.0, "value": 50.0,
         "warning": "fewer than 50 images: FID is biased upward at small N"},
        {**base, "metric": "fid", "cell_id": cell[7.0], "cfg": 7.0, "value": 40.0,
         "warning": "fewer than 50 images: FID is biased upward at small N"},
        {**base, "metric": "kid", "cell_id": cell[7.0], "cfg": 7.0, "value": 0.012, "ci_low": 0.01, "ci_high": 0.014},
        {**base, "metric": "clip_score", "statistic": "paired_diff", "cell_id": cell[7.0], "cfg": 7.0,
         "value": 1.5, "ci_low": 0.5, "ci_high": 2.5, "reference": "cell:" + cell[3.0][:8]},
    ])
    build_report(sweep_copy)
    text = " ".join(" ".join(Tags(index_of(sweep_copy)).text).split())
    assert "FID (lower is better)" in text and "KID (lower is better)" in text
    assert "CLIP score paired difference (higher is better)" in text
    assert "2 with a warning" in text and "FID is biased upward at small N" in text
    assert "0.0120 [0.0100, 0.0140]" in text and cell[7.0][:10] in text
    assert f"reference cell:{cell[3.0][:8]}" in text
