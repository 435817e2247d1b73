// sdexp viewer: an X/Y grid of a stored sweep, rearranged in the browser. Plain JavaScript, no
// libraries, no network: data/viewer.js calls sdexpViewer.load(data); details and thumbnail pixels
// come later from data/*.js files added as <script> tags (file:// pages cannot fetch). Every piece of
// sweep text is set with textContent, never parsed as HTML.
"use strict";

const sdexpViewer = (function () {
  const LAYOUT = [["x", "X"], ["y", "Y"], ["xs", "X super"], ["ys", "Y super"]];
  const N_BOOT = 2000;
  let D = null;                 // the data object
  let S = null;                 // the view state (serialized in the URL hash)
  let byKey = null;             // "i0,i1,..." of every axis -> image index
  const details = {};           // shard -> [{p, f}]
  const pixels = {};            // pixel shard -> [data URL]
  const waiting = {};           // script src -> [resolve]
  let pickFirst = null;         // compare mode: the first cell picked

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const k in attrs) {
      if (k === "class") e.className = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function axis(key) { return D.axes.find(function (a) { return a.key === key; }) || null; }
  function metric(name) { return D.metrics.find(function (m) { return m.name === name; }) || null; }
  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
    const a = Math.abs(v);
    const places = a === 0 ? 1 : Math.max(0, Math.min(6, 2 - Math.floor(Math.log10(a))));
    return v.toFixed(places);
  }
  function interval(lo, hi) {
    return lo === null || hi === null || lo === undefined ? "" : " [" + fmt(lo) + ", " + fmt(hi) + "]";
  }
  function status(text) { document.getElementById("status").textContent = text; }
  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      if (waiting[src] === true) { resolve(); return; }
      if (waiting[src]) { waiting[src].push(resolve); return; }
      waiting[src] = [resolve];
      const s = el("script", { src: src });
      s.addEventListener("load", function () { const w = waiting[src]; waiting[src] = true; w.forEach(function (r) { r(); }); });
      s.addEventListener("error", function () { reject(new Error("cannot load " + src)); });
      document.head.appendChild(s);
    });
  }
  function detail(i) {
    const k = Math.floor(i / D.shard);
    const name = "data/images-" + String(k).padStart(4, "0") + ".js";
    return (details[k] ? Promise.resolve() : loadScript(name)).then(function () { return details[k][i - k * D.shard]; });
  }
  function pixel(i) {
    if (!D.pixelShard) return Promise.reject(new Error("saving is off for sweeps this large"));
    const k = Math.floor(i / D.pixelShard);
    return (pixels[k] ? Promise.resolve() : loadScript("data/" + D.pixelFiles[k])).then(function () {
      return pixels[k][i - k * D.pixelShard];
    });
  }
  function keyOf(i) { return D.axes.map(function (a) { return D.index[a.key][i]; }).join(","); }

  // ------------------------------------------------------------------ statistics
  function rng(seed) {              // mulberry32: a small seeded generator, reproducible intervals
    let t = seed >>> 0;
    return function () {
      t = (t + 0x6D2B79F5) >>> 0;
      let r = Math.imul(t ^ (t >>> 15), 1 | t);
      r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
      return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
    };
  }
  function quantile(sorted, q) {    // numpy's default (linear) quantile
    const pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  }
  function bootstrap(values) {      // mean and 95% percentile-bootstrap interval of the mean
    const n = values.length;
    if (!n) return { mean: null, lo: null, hi: null, n: 0 };
    const mean = values.reduce(function (a, b) { return a + b; }, 0) / n;
    if (n < 2) return { mean: mean, lo: null, hi: null, n: n };
    const r = rng(0), means = new Float64Array(N_BOOT);
    for (let b = 0; b < N_BOOT; b++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += values[Math.floor(r() * n)];
      means[b] = s / n;
    }
    means.sort();
    return { mean: mean, lo: quantile(means, 0.025), hi: quantile(means, 0.975), n: n };
  }

  // ------------------------------------------------------------------ state and the URL hash
  function defaults() {
    const swept = D.axes.map(function (a) { return a.key; });
    const free = swept.filter(function (a) { return a !== "seed"; });
    const s = { x: D.default.x, y: D.default.y, xs: D.default.xs, ys: D.default.ys, seed: D.default.seed || "first",
                tabs: {}, hidden: {}, metric: D.default.metric && metric(D.default.metric) ? D.default.metric : "",
                heat: false, under: true, auto: true, size: 128, open: null, cmp: null };
    if (!s.metric && D.metrics.length) s.metric = D.metrics[0].name;
    if (!s.x && !s.y) { s.x = free[0] || swept[0] || null; s.y = free[1] || null; }
    return s;
  }
  function used() { return LAYOUT.map(function (l) { return S[l[0]]; }).filter(Boolean); }
  function tabAxes() {
    const u = used();
    return D.axes.filter(function (a) { return u.indexOf(a.key) < 0 && a.key !== "seed"; });
  }
  function seedOnLayout() { return used().indexOf("seed") >= 0 || !axis("seed"); }
  function toHash() {
    const p = new URLSearchParams();
    LAYOUT.forEach(function (l) { p.set(l[0], S[l[0]] || ""); });
    p.set("seed", S.seed);
    for (const a in S.tabs) p.set("t." + a, S.tabs[a]);
    for (const a in S.hidden) if (S.hidden[a].length) p.set("h." + a, S.hidden[a].join("."));
    p.set("m", S.metric || "");
    p.set("heat", S.heat ? "1" : "0");
    p.set("under", S.under ? "1" : "0");
    p.set("auto", S.auto ? "1" : "0");
    p.set("size", String(S.size));
    if (S.open !== null) p.set("open", D.imageId[S.open]);
    if (S.cmp) p.set("cmp", S.cmp.map(function (g) { return D.imageId[firstOfGroup(g)]; }).join(","));
    return "#" + p.toString();
  }
  function fromHash(hash) {
    const s = defaults();
    if (!hash || hash.length < 2) return s;
    const p = new URLSearchParams(hash.slice(1));
    const valid = function (a) { return a && axis(a) ? a : null; };
    if (p.has("x") || p.has("y")) LAYOUT.forEach(function (l) { s[l[0]] = valid(p.get(l[0])); });
    if (p.has("seed")) s.seed = p.get("seed");
    p.forEach(function (v, k) {
      const a = axis(k.slice(2));
      if (!a) return;
      if (k.startsWith("t.")) s.tabs[a.key] = Math.max(0, Math.min(a.values.length - 1, parseInt(v, 10) || 0));
      if (k.startsWith("h.")) s.hidden[a.key] = v.split(".").map(Number).filter(function (x) { return x >= 0 && x < a.values.length; });
    });
    if (p.has("m")) s.metric = metric(p.get("m")) ? p.get("m") : "";
    ["heat", "under", "auto"].forEach(function (k) { if (p.has(k)) s[k] = p.get(k) === "1"; });
    if (p.has("size")) s.size = Math.max(24, Math.min(1024, parseInt(p.get("size"), 10) || 128));
    const img = function (id) { const i = D.imageId.indexOf(id); return i >= 0 ? i : null; };
    if (p.has("open")) s.open = img(p.get("open"));
    if (p.has("cmp")) {
      const g = p.get("cmp").split(",").map(img);
      if (g.length === 2 && g[0] !== null && g[1] !== null) s.cmp = [D.group[g[0]], D.group[g[1]]];
    }
    return s;
  }
  function save() { history.replaceState(null, "", toHash()); }
  function hiddenSet(a) { return new Set(S.hidden[a] || []); }
  function visibleValues(a) {
    if (!a) return [null];
    const h = hiddenSet(a);
    return axis(a).values.map(function (_, i) { return i; }).filter(function (i) { return !h.has(i); });
  }

  // ------------------------------------------------------------------ controls
  function select(name, options, value, onchange) {
    const lab = el("label", null, name + " ");
    const sel = el("select", { name: name });
    options.forEach(function (o) {
      const opt = el("option", { value: o[0] }, o[1]);
      if (o[0] === (value || "")) opt.selected = true;
      sel.appendChild(opt);
    });
    sel.addEventListener("change", function () { onchange(sel.value); });
    lab.appendChild(sel);
    return lab;
  }
  function checkbox(name, checked, onchange, attrs) {
    const lab = el("label", attrs || null);
    const box = el("input", { type: "checkbox", name: name });
    box.checked = checked;
    box.addEventListener("change", function () { onchange(box.checked); });
    lab.appendChild(box);
    lab.appendChild(document.createTextNode(" " + name));
    return lab;
  }
  function buildControls() {
    const layout = document.getElementById("layout");
    layout.querySelectorAll("label, button").forEach(function (e) { e.remove(); });
    const opts = [["", "none"]].concat(D.axes.map(function (a) { return [a.key, a.label]; }));
    LAYOUT.forEach(function (l) {
      layout.appendChild(select(l[1], opts, S[l[0]], function (v) {
        LAYOUT.forEach(function (o) { if (o[0] !== l[0] && S[o[0]] === v && v) S[o[0]] = null; });
        S[l[0]] = v || null;
        update(true);
      }));
    });
    const seed = axis("seed");
    if (seed) {
      const seedOpts = [["first", "first"], ["all", "all"]].concat(seed.values.map(function (v, i) { return [String(i), "seed " + v]; }));
      layout.appendChild(select("Seeds", seedOpts, S.seed, function (v) { S.seed = v; update(false); }));
    }
    const cmp = el("button", { type: "button", id: "compare-mode" }, "Compare two cells");
    cmp.addEventListener("click", function () {
      pickFirst = pickFirst === null ? -1 : null;
      document.body.classList.toggle("picking", pickFirst !== null);
      status(pickFirst !== null ? "Compare: click the first cell" : "");
    });
    layout.appendChild(cmp);
    const png = el("button", { type: "button", id: "save-png" }, "Save view as PNG");
    png.addEventListener("click", savePng);
    if (!D.pixelShard) { png.disabled = true; png.title = "off for sweeps of more than 20,000 images"; }
    layout.appendChild(png);

    const show = document.getElementById("show");
    show.querySelectorAll("label").forEach(function (e) { e.remove(); });
    const mopts = [["", "none"]].concat(D.metrics.map(function (m) {
      return [m.name, m.label + (m.higher ? " (higher is better)" : " (lower is better)")];
    }));
    show.appendChild(select("Metric", mopts, S.metric, function (v) { S.metric = v; update(false); }));
    show.appendChild(checkbox("under images", S.under, function (v) { S.under = v; update(false); }));
    show.appendChild(checkbox("heatmap", S.heat, function (v) { S.heat = v; update(false); }));
    show.appendChild(checkbox("autoscale", S.auto, function (v) { S.auto = v; update(false); }));
    const size = el("label", null, "size ");
    const range = el("input", { type: "range", name: "size", min: "24", max: "512", step: "8" });
    range.value = String(S.size);
    range.addEventListener("input", function () { S.size = Number(range.value); S.auto = false; update(true); });
    size.appendChild(range);
    show.appendChild(size);

    const values = document.getElementById("values");
    values.querySelectorAll("div").forEach(function (e) { e.remove(); });
    D.axes.forEach(function (a) {
      const row = el("div", { class: "toggles", "data-axis": a.key });
      row.appendChild(el("span", { class: "axis-name" }, a.label + ":"));
      const h = hiddenSet(a.key);
      a.values.forEach(function (v, i) {
        row.appendChild(checkbox(v, !h.has(i), function (on) {
          const s = hiddenSet(a.key);
          if (on) s.delete(i); else s.add(i);
          S.hidden[a.key] = Array.from(s).sort(function (p, q) { return p - q; });
          update(true);
        }, { class: "toggle", title: a.label + ": " + v }));
      });
      values.appendChild(row);
    });
  }
  function buildTabs() {
    const box = document.getElementById("tabs");
    box.textContent = "";
    tabAxes().forEach(function (a) {
      const vis = visibleValues(a.key);
      if (!(a.key in S.tabs) || vis.indexOf(S.tabs[a.key]) < 0) S.tabs[a.key] = vis.length ? vis[0] : 0;
      const row = el("div", { class: "tabrow", role: "tablist", "data-axis": a.key });
      row.appendChild(el("span", { class: "axis-name" }, a.label + ":"));
      vis.forEach(function (i) {
        const b = el("button", { type: "button", role: "tab", class: "tab", title: a.label + ": " + a.values[i] },
                     a.values[i]);
        b.setAttribute("aria-selected", S.tabs[a.key] === i ? "true" : "false");
        b.addEventListener("click", function () { S.tabs[a.key] = i; update(true); });
        row.appendChild(b);
      });
      box.appendChild(row);
    });
  }

  // ------------------------------------------------------------------ the grid
  function selection() {
    // images of the current tabs and shown values, bucketed by (ys, y, xs, x) value index
    const tabs = tabAxes(), buckets = new Map();
    const hidden = D.axes.map(function (a) { return [a.key, hiddenSet(a.key)]; })
                         .filter(function (h) { return h[1].size; });
    const seeds = !seedOnLayout();
    const oneSeed = seeds && S.seed !== "first" && S.seed !== "all" ? Number(S.seed) : null;
    const lay = [S.ys, S.y, S.xs, S.x];
    for (let i = 0; i < D.n; i++) {
      let ok = true;
      for (let t = 0; t < tabs.length && ok; t++) ok = D.index[tabs[t].key][i] === S.tabs[tabs[t].key];
      for (let h = 0; h < hidden.length && ok; h++) ok = !hidden[h][1].has(D.index[hidden[h][0]][i]);
      if (ok && oneSeed !== null) ok = D.index.seed[i] === oneSeed;
      if (!ok) continue;
      const key = lay.map(function (a) { return a ? D.index[a][i] : -1; }).join(",");
      if (!buckets.has(key)) buckets.set(key, []);
      buckets.get(key).push(i);
    }
    buckets.forEach(function (list, key) {
      if (seeds) list.sort(function (p, q) { return D.index.seed[p] - D.index.seed[q]; });
      if (seeds && S.seed === "first") buckets.set(key, list.slice(0, 1));
    });
    return buckets;
  }
  function cellEstimate(m, images) {
    // the metric of a grid cell: the estimate of its group (all seeds) or, with seed on the layout, the image
    if (!m || !images.length) return null;
    const i = images[0];
    if (m.per === "cell") {
      const c = m.cells[String(D.cell[i])];
      return c ? { mean: c[0], lo: c[1], hi: c[2], n: c[3], warning: c[4] } : null;
    }
    if (seedOnLayout() && axis("seed")) return { mean: m.image[i], lo: null, hi: null, n: m.image[i] === null ? 0 : 1 };
    const g = m.groups[D.group[i]];
    return { mean: g[0], lo: g[1], hi: g[2], n: g[3] };
  }
  function heatColor(m, v, lo, hi) {
    if (v === null || lo === hi) return "rgba(128,128,128,0.15)";
    let t = (v - lo) / (hi - lo);
    if (!m.higher) t = 1 - t;
    const r = Math.round(215 - 170 * t), g = Math.round(60 + 140 * t);
    return "rgba(" + r + "," + g + ",70,0.45)";
  }
  function imageSize(i) {
    const w = D.w[i] || 64, h = D.h[i] || 64;
    return [S.size, Math.max(1, Math.round(S.size * h / w))];
  }
  function autoscale(cols, perCell) {
    if (!S.auto) return;
    const wrap = document.getElementById("grid-wrap");
    const room = Math.max(200, wrap.clientWidth - 260);
    const natural = Math.max.apply(null, D.w.slice(0, 200).map(function (w) { return w || 64; }));
    S.size = Math.max(24, Math.min(Math.max(natural, 96), 512, Math.floor(room / Math.max(1, cols * perCell)) - 8));
  }
  function label(a, v) { return axis(a).label + ": " + axis(a).values[v]; }
  function renderGrid() {
    const t0 = performance.now();
    const table = document.getElementById("grid");
    table.textContent = "";
    const buckets = selection();
    const xs = visibleValues(S.xs), x = visibleValues(S.x), ys = visibleValues(S.ys), y = visibleValues(S.y);
    const perCell = !seedOnLayout() && S.seed === "all" ? axis("seed").values.length : 1;
    autoscale(xs.length * x.length, perCell);
    const m = metric(S.metric);
    let lo = Infinity, hi = -Infinity;
    const ests = new Map();
    buckets.forEach(function (list, key) {
      const e = cellEstimate(m, list);
      ests.set(key, e);
      if (e && e.mean !== null) { lo = Math.min(lo, e.mean); hi = Math.max(hi, e.mean); }
    });
    const head = el("thead");
    const labels = (S.ys ? 1 : 0) + (S.y ? 1 : 0) || 1;
    if (S.xs) {
      const tr = el("tr", { class: "xs-row" });
      tr.appendChild(el("th", { class: "corner", colspan: String(labels) }));
      xs.forEach(function (v) { tr.appendChild(el("th", { class: "xs-label", colspan: String(x.length), scope: "colgroup" }, label(S.xs, v))); });
      head.appendChild(tr);
    }
    const tr = el("tr", { class: "x-row" });
    tr.appendChild(el("th", { class: "corner", colspan: String(labels) }));
    xs.forEach(function () {
      x.forEach(function (v) { tr.appendChild(el("th", { class: "x-label", scope: "col" }, S.x ? label(S.x, v) : "")); });
    });
    head.appendChild(tr);
    table.appendChild(head);
    const body = el("tbody");
    let shown = 0;
    ys.forEach(function (ysv) {
      y.forEach(function (yv, yi) {
        const row = el("tr");
        if (S.ys && yi === 0) row.appendChild(el("th", { class: "ys-label", rowspan: String(y.length), scope: "rowgroup" }, label(S.ys, ysv)));
        if (S.y) row.appendChild(el("th", { class: "y-label", scope: "row" }, label(S.y, yv)));
        else if (!S.ys) row.appendChild(el("th", { class: "y-label" }));
        xs.forEach(function (xsv) {
          x.forEach(function (xv) {
            const key = [ysv === null ? -1 : ysv, yv === null ? -1 : yv, xsv === null ? -1 : xsv, xv === null ? -1 : xv].join(",");
            const list = buckets.get(key) || [];
            const td = el("td", { class: "cell" });
            const e = ests.get(key);
            if (list.length) td.setAttribute("data-group", String(D.group[list[0]]));
            if (m && e) {
              td.title = m.label + " " + fmt(e.mean) + interval(e.lo, e.hi) + ", N=" + e.n + (e.warning ? " (" + e.warning + ")" : "");
              if (S.heat) td.style.background = heatColor(m, e.mean, lo, hi);
            }
            list.forEach(function (i) { td.appendChild(figure(i, m, perCell > 1)); shown++; });
            if (!list.length) td.appendChild(el("div", { class: "empty" }, "no image"));
            row.appendChild(td);
          });
        });
        body.appendChild(row);
      });
    });
    table.appendChild(body);
    stick();
    document.body.setAttribute("data-images", String(shown));
    status(shown + " images shown in " + (xs.length * x.length) + " x " + (ys.length * y.length) + " cells (" + Math.round(performance.now() - t0) + " ms)");
  }
  function figure(i, m, seedCaption) {
    const f = el("figure", { class: "img" + (D.flags && D.flags[i] ? " flagged" : ""), "data-image": String(i) });
    const size = imageSize(i);
    const img = el("img", { src: D.thumb[i] || D.full[i], loading: "lazy", decoding: "async", width: String(size[0]),
                            height: String(size[1]), alt: "image " + D.imageId[i] });
    f.appendChild(img);
    const lines = [];
    if (seedCaption || (axis("seed") && !seedOnLayout() && S.seed === "all")) lines.push("Seed: " + axis("seed").values[D.index.seed[i]]);
    if (m && S.under) {
      const v = m.per === "cell" ? (m.cells[String(D.cell[i])] || [null])[0] : m.image[i];
      lines.push((m.short || m.label) + " " + fmt(v));
    }
    if (D.flags && D.flags[i]) {
      f.title = "flagged: " + D.flags[i] + " (left out of metrics)";
      f.appendChild(el("span", { class: "flag", "aria-label": "flagged: " + D.flags[i] }, "\u2691 " + D.flags[i]));
    }
    if (lines.length) f.appendChild(el("figcaption", null, lines.join(" \u00b7 ")));
    f.style.width = size[0] + "px";
    return f;
  }
  function stick() {
    // sticky labels: header rows stack from the top, label columns from the left
    const table = document.getElementById("grid");
    let top = 0;
    table.querySelectorAll("thead tr").forEach(function (tr) {
      tr.querySelectorAll("th").forEach(function (th) { th.style.top = top + "px"; });
      top += tr.getBoundingClientRect().height;
    });
    const ysCell = table.querySelector("th.ys-label");
    const left = ysCell ? ysCell.getBoundingClientRect().width : 0;
    table.querySelectorAll("th.y-label").forEach(function (th) { th.style.left = left + "px"; });
  }

  // ------------------------------------------------------------------ full size and arrow keys
  function openImage(i) {
    S.open = i;
    save();
    const box = document.getElementById("detail");
    box.hidden = false;
    const img = box.querySelector(".detail-image img");
    img.src = D.full[i];
    img.alt = "image " + D.imageId[i];
    box.querySelector(".detail-title").textContent = D.axes.map(function (a) { return label(a.key, D.index[a.key][i]); }).join(", ");
    const params = box.querySelector(".params");
    params.value = "loading\u2026";
    const fields = box.querySelector(".fields tbody");
    fields.textContent = "";
    detail(i).then(function (d) {
      if (S.open !== i) return;
      params.value = d.p || "(this image carries no parameters text)";
      const all = Object.assign({}, D.constant, d.f);
      Object.keys(all).sort().forEach(function (k) {
        const tr = el("tr");
        tr.appendChild(el("th", { scope: "row" }, k));
        tr.appendChild(el("td", null, all[k]));
        fields.appendChild(tr);
      });
      box.setAttribute("data-loaded", D.imageId[i]);
    }).catch(function (e) { params.value = String(e); });
  }
  function closeOverlays() {
    document.getElementById("detail").hidden = true;
    document.getElementById("compare").hidden = true;
    S.open = null;
    S.cmp = null;
    save();
  }
  function move(dimension, step) {
    if (S.open === null || !S[dimension]) return;
    const a = S[dimension], vis = visibleValues(a), i = S.open;
    let pos = vis.indexOf(D.index[a][i]);
    const idx = D.axes.map(function (ax) { return D.index[ax.key][i]; });
    const k = D.axes.findIndex(function (ax) { return ax.key === a; });
    for (pos += step; pos >= 0 && pos < vis.length; pos += step) {
      idx[k] = vis[pos];
      const j = byKey.get(idx.join(","));
      if (j !== undefined) { openImage(j); return; }
    }
  }

  // ------------------------------------------------------------------ compare two cells
  function firstOfGroup(g) { return D.group.indexOf(g); }
  function groupImages(g) {
    const out = new Map();          // seed value index (or -1) -> image
    for (let i = 0; i < D.n; i++) if (D.group[i] === g) out.set(axis("seed") ? D.index.seed[i] : -1, i);
    return out;
  }
  function describe(g) {
    const i = firstOfGroup(g);
    return D.axes.filter(function (a) { return a.key !== "seed"; }).map(function (a) { return label(a.key, D.index[a.key][i]); }).join(", ");
  }
  function paired(m, a, b) {
    // paired difference B - A over the seeds both cells have, flagged images left out
    const diffs = [];
    a.forEach(function (ia, s) {
      const ib = b.get(s);
      if (ib === undefined || (D.flags && (D.flags[ia] || D.flags[ib]))) return;
      const va = m.image[ia], vb = m.image[ib];
      if (va !== null && vb !== null) diffs.push(vb - va);
    });
    return bootstrap(diffs);
  }
  function showCompare(ga, gb) {
    S.cmp = [ga, gb];
    save();
    const box = document.getElementById("compare"), body = box.querySelector(".compare-body");
    body.textContent = "";
    body.appendChild(el("h2", null, "Two cells compared"));
    body.appendChild(el("p", { class: "cell-a" }, "A: " + describe(ga)));
    body.appendChild(el("p", { class: "cell-b" }, "B: " + describe(gb)));
    const a = groupImages(ga), b = groupImages(gb);
    const stats = el("table", { class: "compare-stats" });
    const hr = el("tr");
    ["Metric", "A", "B", "B \u2212 A (paired)", "95% interval", "N pairs"].forEach(function (h) { hr.appendChild(el("th", { scope: "col" }, h)); });
    stats.appendChild(el("thead")).appendChild(hr);
    const sb = el("tbody");
    D.metrics.forEach(function (m) {
      const tr = el("tr", { "data-metric": m.name });
      tr.appendChild(el("th", { scope: "row" }, m.label + (m.higher ? " (higher is better)" : " (lower is better)")));
      if (m.per === "cell") {
        const ca = m.cells[String(D.cell[firstOfGroup(ga)])], cb = m.cells[String(D.cell[firstOfGroup(gb)])];
        tr.appendChild(el("td", { class: "num" }, ca ? fmt(ca[0]) + interval(ca[1], ca[2]) + ", N=" + ca[3] : "n/a"));
        tr.appendChild(el("td", { class: "num" }, cb ? fmt(cb[0]) + interval(cb[1], cb[2]) + ", N=" + cb[3] : "n/a"));
        tr.appendChild(el("td", { class: "num diff" }, ca && cb ? fmt(cb[0] - ca[0]) : "n/a"));
        tr.appendChild(el("td", { class: "muted" }, "a per-cell metric: not paired"));
        tr.appendChild(el("td", { class: "num" }, ""));
      } else {
        const ea = m.groups[ga], eb = m.groups[gb], d = paired(m, a, b);
        tr.appendChild(el("td", { class: "num" }, fmt(ea[0]) + interval(ea[1], ea[2])));
        tr.appendChild(el("td", { class: "num" }, fmt(eb[0]) + interval(eb[1], eb[2])));
        tr.appendChild(el("td", { class: "num diff", "data-value": d.mean === null ? "" : String(d.mean) }, fmt(d.mean)));
        tr.appendChild(el("td", { class: "num ci", "data-low": d.lo === null ? "" : String(d.lo),
                                  "data-high": d.hi === null ? "" : String(d.hi) }, interval(d.lo, d.hi).trim() || "none (N < 2)"));
        tr.appendChild(el("td", { class: "num n" }, String(d.n)));
      }
      sb.appendChild(tr);
    });
    stats.appendChild(sb);
    body.appendChild(stats);
    const seeds = el("table", { class: "compare-seeds" });
    const sh = el("tr");
    ["Seed", "A", "B"].forEach(function (h) { sh.appendChild(el("th", { scope: "col" }, h)); });
    seeds.appendChild(el("thead")).appendChild(sh);
    const tb = el("tbody");
    const keys = Array.from(new Set(Array.from(a.keys()).concat(Array.from(b.keys())))).sort(function (p, q) { return p - q; });
    const m = metric(S.metric);
    keys.forEach(function (s) {
      const tr = el("tr", { class: "pair" });
      tr.appendChild(el("th", { scope: "row" }, s < 0 ? "" : axis("seed").values[s]));
      [a.get(s), b.get(s)].forEach(function (i) {
        const td = el("td");
        if (i !== undefined) td.appendChild(figure(i, m && m.per === "image" ? m : null, false));
        else td.textContent = "no image";
        tr.appendChild(td);
      });
      tb.appendChild(tr);
    });
    seeds.appendChild(tb);
    body.appendChild(seeds);
    box.hidden = false;
  }

  // ------------------------------------------------------------------ save the view as PNG
  function renderCanvas() {
    const table = document.getElementById("grid");
    const figs = Array.from(table.querySelectorAll("figure.img"));
    return Promise.all(figs.map(function (f) { return pixel(Number(f.getAttribute("data-image"))); })).then(function (urls) {
      return Promise.all(urls.map(function (u) {
        return new Promise(function (resolve) {
          const im = new Image();
          im.onload = function () { resolve(im); };
          im.onerror = function () { resolve(null); };
          im.src = u || "data:,";
        });
      }));
    }).then(function (images) {
      const origin = table.getBoundingClientRect();
      const canvas = el("canvas");
      canvas.width = Math.ceil(table.scrollWidth);
      canvas.height = Math.ceil(table.scrollHeight);
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.textBaseline = "top";
      table.querySelectorAll("th, td").forEach(function (c) {
        const r = c.getBoundingClientRect(), x = r.left - origin.left, y = r.top - origin.top;
        if (c.style.background) { ctx.fillStyle = c.style.background; ctx.fillRect(x, y, r.width, r.height); }
        if (c.tagName === "TH" && c.textContent) {
          ctx.fillStyle = "#000";
          ctx.font = "bold 13px sans-serif";
          ctx.fillText(c.textContent, x + 4, y + 4, Math.max(10, r.width - 8));
        }
      });
      figs.forEach(function (f, k) {
        const img = f.querySelector("img").getBoundingClientRect();
        if (images[k]) ctx.drawImage(images[k], img.left - origin.left, img.top - origin.top, img.width, img.height);
        const cap = f.querySelector("figcaption");
        if (cap) {
          const r = cap.getBoundingClientRect();
          ctx.fillStyle = "#000";
          ctx.font = "12px sans-serif";
          ctx.fillText(cap.textContent, r.left - origin.left, r.top - origin.top, Math.max(10, r.width));
        }
      });
      return canvas;
    });
  }
  function savePng() {
    status("drawing the view\u2026");
    renderCanvas().then(function (canvas) {
      canvas.toBlob(function (blob) {
        const a = el("a", { download: "sdexp-" + D.name + "-view.png", href: URL.createObjectURL(blob) });
        document.body.appendChild(a);
        a.click();
        a.remove();
        status("saved " + canvas.width + " x " + canvas.height + " px");
      }, "image/png");
    }).catch(function (e) { status(String(e.message || e)); });
  }

  // ------------------------------------------------------------------ wiring
  function update(rebuildTabs) {
    if (rebuildTabs) buildTabs();
    renderGrid();
    buildControlsValues();
    save();
  }
  function buildControlsValues() {
    document.querySelectorAll("#layout select").forEach(function (s) {
      const l = LAYOUT.find(function (o) { return o[1] === s.name; });
      if (l) s.value = S[l[0]] || "";
    });
    const r = document.querySelector("#show input[name=size]");
    if (r) r.value = String(S.size);
    const auto = document.querySelector("#show input[name=autoscale]");
    if (auto) auto.checked = S.auto;
  }
  function onClick(e) {
    const fig = e.target.closest("#grid figure.img");
    const td = e.target.closest("#grid td.cell");
    if (pickFirst !== null && td && td.hasAttribute("data-group")) {
      const g = Number(td.getAttribute("data-group"));
      if (pickFirst < 0) { pickFirst = g; td.classList.add("picked"); status("Compare: click the second cell"); return; }
      const first = pickFirst;
      pickFirst = null;
      document.body.classList.remove("picking");
      document.querySelectorAll("td.picked").forEach(function (c) { c.classList.remove("picked"); });
      status("");
      showCompare(first, g);
      return;
    }
    if (fig) openImage(Number(fig.getAttribute("data-image")));
  }
  function onKey(e) {
    if (e.key === "Escape") { closeOverlays(); return; }
    if (document.getElementById("detail").hidden) return;
    const moves = { ArrowRight: ["x", 1], ArrowLeft: ["x", -1], ArrowDown: ["y", 1], ArrowUp: ["y", -1] };
    if (moves[e.key]) { e.preventDefault(); move(moves[e.key][0], moves[e.key][1]); }
  }
  function copyParams() {
    const ta = document.querySelector("#detail .params");
    ta.select();
    const done = function () { status("parameters copied"); };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(ta.value).then(done, function () { document.execCommand("copy"); done(); });
    else { document.execCommand("copy"); done(); }
  }
  function restore() {
    S = fromHash(location.hash);
    buildControls();
    buildTabs();
    renderGrid();
    document.getElementById("detail").hidden = true;
    document.getElementById("compare").hidden = true;
    if (S.open !== null) openImage(S.open);
    if (S.cmp) showCompare(S.cmp[0], S.cmp[1]);
    save();
  }
  function init() {
    const t0 = performance.now();
    byKey = new Map();
    for (let i = 0; i < D.n; i++) byKey.set(keyOf(i), i);
    restore();
    document.getElementById("grid").addEventListener("click", onClick);
    document.getElementById("controls").addEventListener("submit", function (e) { e.preventDefault(); });
    document.addEventListener("keydown", onKey);
    document.querySelectorAll(".overlay .close").forEach(function (b) { b.addEventListener("click", closeOverlays); });
    document.querySelector("#detail .copy").addEventListener("click", copyParams);
    window.addEventListener("hashchange", function () { if (location.hash !== toHash()) restore(); });
    let resizing = null;
    window.addEventListener("resize", function () { clearTimeout(resizing); resizing = setTimeout(function () { if (S.auto) renderGrid(); }, 150); });
    window.sdexpViewerReadyMs = performance.now() - t0;
    document.body.setAttribute("data-ready", "1");
  }

  document.addEventListener("DOMContentLoaded", function () { if (D) init(); });
  return {
    load: function (data) { D = data; },
    details: function (k, part) { details[k] = part; },
    pixels: function (k, part) { pixels[k] = part; },
    renderCanvas: renderCanvas,
    state: function () { return JSON.parse(JSON.stringify(S)); },
    bootstrap: bootstrap,
  };
})();
