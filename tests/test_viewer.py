"""The viewer's data, built from a sweep rendered by the real engine: axes from the rows, one index
per image, intervals equal to the report's bootstrap, parameters read from the PNGs without
decoding them, thumbnails made once, and a page that opens offline."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import sdexp
from sdexp.report import build_report
from sdexp.report import images as report_images
from sdexp.report.images import image_facts, read_png_head
from sdexp.report.intervals import group_means_ci
from sdexp.stats import bootstrap_mean_ci


def load_js(path: Path, call: str) -> list:
    """The arguments of `call(...)` in a data file (they are JSON)."""
    text = path.read_text()
    assert text.startswith(call + "(") and text.rstrip().endswith(");")
    return json.loads("[" + text[len(call) + 1:text.rstrip().rindex(")")] + "]")


def viewer_data(folder: Path) -> dict:
    return load_js(folder / "report" / "data" / "viewer.js", "sdexpViewer.load")[0]


@pytest.fixture
def sweep_copy(report_sweep, tmp_path) -> Path:
    folder = tmp_path / "rep"
    shutil.copytree(report_sweep["folder"], folder)
    return folder


def test_viewer_data_has_every_swept_axis_and_image(report_sweep):
    folder = Path(report_sweep["folder"])
    rows = sdexp.load_rows(folder)
    data = viewer_data(folder)
    assert [a["key"] for a in data["axes"]] == ["cfg", "seed", "prompt"]
    assert [a["label"] for a in data["axes"]] == ["CFG scale", "Seed", "Prompt"]
    assert data["axes"][0]["values"] == ["3", "7"] and data["axes"][0]["numeric"]
    assert data["n"] == len(rows) == 8 and data["imageId"] == rows.image_id.tolist()
    for a in data["axes"]:
        values = [a["values"][k] for k in data["index"][a["key"]]]
        assert values == [sdexp.grid.format_value(v) for v in rows[a["key"]]]
    # images of 64 px fit the thumbnail box: shown as they are, no thumbnail file made
    assert data["thumb"] == [None] * 8
    assert data["full"] == ["../" + p for p in rows.image_path]
    assert (data["w"], data["h"]) == ([64] * 8, [64] * 8)
    assert data["default"] == {"x": "cfg", "y": "prompt", "xs": None, "ys": None, "seed": "first",
                               "metric": "clip_score"}
    assert data["constant"]["sweep"] == "rep" and "cfg" not in data["constant"]


def test_group_estimates_equal_the_reports_bootstrap(report_sweep):
    folder = Path(report_sweep["folder"])
    rows = sdexp.load_rows(folder)
    data = viewer_data(folder)
    clip = next(m for m in data["metrics"] if m["name"] == "clip_score")
    assert clip["image"] == pytest.approx(rows.clip_score.round(4).tolist())
    # a group is every axis but seed: here one (CFG, prompt) pair, pooled over its 2 seeds
    assert len(clip["groups"]) == 4 == len(set(data["group"]))
    for g in set(data["group"]):
        members = [i for i, k in enumerate(data["group"]) if k == g]
        assert len({(rows.cfg[i], rows.prompt[i]) for i in members}) == 1 and len(members) == 2
        mean, lo, hi = bootstrap_mean_ci(rows.clip_score[members])
        assert clip["groups"][g] == pytest.approx([mean, lo, hi, 2], abs=1e-4)


def test_many_groups_at_once_equal_one_at_a_time():
    rng = np.random.default_rng(5)
    sizes = [1, 2, 2, 3, 7, 7, 7, 40, 0, 5]
    values, group = [], []
    for g, n in enumerate(sizes):
        values += list(rng.normal(30, 3, n))
        group += [g] * n
    values[3] = float("nan")                       # left out, as bootstrap_mean_ci leaves it out
    out = group_means_ci(np.array(values), np.array(group), len(sizes))
    for g in range(len(sizes)):
        own = [v for v, k in zip(values, group) if k == g]
        mean, lo, hi = bootstrap_mean_ci(own)
        n = sum(not np.isnan(v) for v in own)
        np.testing.assert_allclose(out[g], [mean, lo, hi, n], equal_nan=True)


def test_details_carry_each_pngs_parameters_and_varying_fields(report_sweep):
    folder = Path(report_sweep["folder"])
    rows = sdexp.load_rows(folder)
    shard, part = load_js(folder / "report" / "data" / "images-0000.js", "sdexpViewer.details")
    assert shard == 0 and len(part) == 8
    for rec, d in zip(rows.to_dict("records"), part):
        with Image.open(folder / rec["image_path"]) as im:
            assert d["p"] == im.text["parameters"]                  # Pillow reads the same text
        assert d["f"]["image_id"] == rec["image_id"] and d["f"]["prompt"] == rec["prompt"]
        assert "sweep" not in d["f"]                              # constant: stored once


def test_png_head_reads_text_chunks_without_decoding():
    import io

    info = PngInfo()
    info.add_text("parameters", "un chat \u00e9l\u00e9gant \u2603\nSteps: 2")    # not latin-1: iTXt
    info.add_text("plain", "ascii")
    info.add_text("packed", "x" * 500, zip=True)                        # zTXt
    buf = io.BytesIO()
    Image.new("RGB", (40, 24), (9, 9, 9)).save(buf, format="PNG", pnginfo=info)
    head = read_png_head(buf.getvalue())
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert (head.width, head.height) == im.size == (40, 24)
        assert head.text == im.text
    with pytest.raises(ValueError):
        read_png_head(b"GIF89a")


def test_thumbnails_are_made_once_and_a_rebuild_opens_no_image(sweep_copy, monkeypatch):
    folder = sweep_copy
    rows = sdexp.load_rows(folder)
    big = rows.image_path.iloc[0]
    Image.new("RGB", (600, 300), (200, 10, 10)).save(folder / big)        # larger than the box
    shutil.rmtree(folder / "report", ignore_errors=True)
    report = folder / "report"
    facts = image_facts(folder, rows, report)
    thumb = facts.thumb.iloc[0]
    assert thumb.startswith("report/thumbs/images/") and thumb.endswith(".jpg")
    with Image.open(folder / thumb) as im:
        assert im.size == (256, 128)
    assert facts.thumb.iloc[1:].tolist() == rows.image_path.iloc[1:].tolist()
    made = (folder / thumb).stat().st_mtime_ns

    def refuse(*a, **k):
        raise AssertionError("an image was opened again")

    monkeypatch.setattr(report_images, "png_head", refuse)
    monkeypatch.setattr(report_images, "make_thumbnail", refuse)
    monkeypatch.setattr(report_images.Image, "open", refuse)
    again = image_facts(folder, rows, report)
    assert again.equals(facts)
    assert (folder / thumb).stat().st_mtime_ns == made


def test_viewer_page_opens_offline(report_sweep):
    report = Path(report_sweep["folder"]) / "report"
    html = (report / "viewer.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "assets/viewer.js" in refs and "data/viewer.js" in refs
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "//")), ref
        if ref != "data:,":
            assert (report / unquote(ref)).is_file(), ref
    for asset in ("viewer.js", "viewer.css"):
        text = (report / "assets" / asset).read_text()
        assert "http" not in text and "@import" not in text and "innerHTML" not in text
    assert 'href="viewer.html"' in (report / "index.html").read_text()


def test_group_metrics_reach_the_viewer_per_cell_and_per_group(sweep_copy):
    from test_report import write_groups

    rows = sdexp.load_rows(sweep_copy)
    cell = rows.loc[rows.cfg == 3.0, "cell_id"].iloc[0]
    write_groups(sweep_copy, [
        {"metric": "fid", "statistic": "value", "grouping": "cell", "cell_id": cell, "cfg": 3.0, "value": 50.0,
         "ci_low": 47.0, "ci_high": 53.0, "n": 4, "reference": "real/"},
        # by CFG alone (pooled over prompts and seeds): every image of a CFG value shares its group's value
        {"metric": "kid", "statistic": "value", "grouping": "cfg", "cfg": 7.0, "value": 0.02, "ci_low": 0.01,
         "ci_high": 0.03, "n": 4, "reference": "real/", "warning": "small N"},
        {"metric": "kid", "statistic": "value", "grouping": "cfg", "cfg": 3.0, "value": 0.05, "n": 4,
         "reference": "real/"}])
    build_report(sweep_copy)
    data = viewer_data(sweep_copy)
    fid = next(m for m in data["metrics"] if m["name"] == "fid")
    assert fid["per"] == "group" and fid["reference"] == "real/" and not fid["higher"]
    assert fid["rows"] == [[50.0, 47.0, 53.0, 4, "", ""]]
    assert fid["at"] == [0 if c == cell else -1 for c in rows.cell_id]
    kid = next(m for m in data["metrics"] if m["name"] == "kid@cfg")
    assert kid["label"] == "KID by CFG scale"
    values = [kid["rows"][k][0] for k in kid["at"]]
    assert values == [{7.0: 0.02, 3.0: 0.05}[c] for c in rows.cfg]
    assert kid["rows"][kid["at"][rows.index[rows.cfg == 7.0][0]]][4] == "small N"


def test_an_image_metric_stored_again_by_score_is_shown_once(sweep_copy):
    import pandas as pd

    rows = sdexp.load_rows(sweep_copy)
    (sweep_copy / "image_metrics").mkdir()
    same = pd.DataFrame({"image_id": rows.image_id, "metric": "clip_score", "scorer": "another:name",
                         "value": rows.clip_score})
    same.to_parquet(sweep_copy / "image_metrics" / "clip_score-a.parquet")
    other = same.assign(scorer="open_clip:ViT-B-32", value=rows.clip_score * 0.5)
    other.to_parquet(sweep_copy / "image_metrics" / "clip_score-b.parquet")
    build_report(sweep_copy)
    names = [m["name"] for m in viewer_data(sweep_copy)["metrics"]]
    assert names.count("clip_score") == 1 and "clip_score:another:name" not in names
    assert "clip_score:open_clip:ViT-B-32" in names
