  // viewer part: full size, arrow keys, two cells compared (the parts of assets/viewer/ are joined in name order into one script)
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
      if (m.per === "group") {
        const ca = groupRow(m, firstOfGroup(ga)), cb = groupRow(m, firstOfGroup(gb));
        tr.appendChild(el("td", { class: "num" }, ca ? fmt(ca[0]) + interval(ca[1], ca[2]) + ", N=" + ca[3] : "n/a"));
        tr.appendChild(el("td", { class: "num" }, cb ? fmt(cb[0]) + interval(cb[1], cb[2]) + ", N=" + cb[3] : "n/a"));
        tr.appendChild(el("td", { class: "num diff" }, ca && cb ? fmt(cb[0] - ca[0]) : "n/a"));
        tr.appendChild(el("td", { class: "muted" }, "a per-group metric: not paired"));
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
    showImages(body);
    box.hidden = false;
  }

