  // viewer part: the grid (the parts of assets/viewer/ are joined in name order into one script)
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
    if (m.per === "group") {
      const c = groupRow(m, i);
      return c ? { mean: c[0], lo: c[1], hi: c[2], n: c[3], warning: c[4], group: c[5] } : null;
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
    // the image size that fits every column into the window: per image its 2 px margin, per cell 7 px
    if (!S.auto) return;
    const wrap = document.getElementById("grid-wrap");
    const room = Math.max(200, wrap.clientWidth - 260);
    const natural = Math.max.apply(null, D.w.slice(0, 200).map(function (w) { return w || 64; }));
    const fit = Math.floor((room / Math.max(1, cols) - 7) / perCell) - 2;
    S.size = Math.max(24, Math.min(Math.max(natural, 96), 512, fit));
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
              td.title = m.label + " " + fmt(e.mean) + interval(e.lo, e.hi) + ", N=" + e.n
                + (e.group && m.grouping !== "cell" ? ", group " + e.group : "") + (e.warning ? " (" + e.warning + ")" : "");
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
    watch(body.querySelectorAll("td.cell"));
    stick();
    document.body.setAttribute("data-images", String(shown));
    status(shown + " images shown in " + (xs.length * x.length) + " x " + (ys.length * y.length) + " cells (" + Math.round(performance.now() - t0) + " ms)");
  }
  function figure(i, m, seedCaption) {
    // an image with its caption line; its src comes when its cell nears the view (showImages), and
    // its size is known before then, so the browser lays out only the figures in view
    const f = el("figure", { class: "img" + (D.flags && D.flags[i] ? " flagged" : ""), "data-image": String(i) });
    const size = imageSize(i);
    f.appendChild(el("img", { "data-src": D.thumb[i] || D.full[i], decoding: "async", width: String(size[0]),
                              height: String(size[1]) }));
    const lines = [];
    if (seedCaption) lines.push("Seed: " + axis("seed").values[D.index.seed[i]]);
    if (m && S.under) {
      const v = m.per === "group" ? (groupRow(m, i) || [null])[0] : m.image[i];
      lines.push(size[0] < 64 ? fmt(v) : (m.short || m.label) + " " + fmt(v));   // narrow: the value alone
    }
    const caption = lines.join("\n");          // a line each, cut with an ellipsis when the image is narrow
    const shownLines = size[0] < MIN_CAPTIONED ? 0 : lines.length;   // tiny: in the title only
    if (D.flags && D.flags[i]) {
      f.title = (caption ? caption + "\n" : "") + "flagged: " + D.flags[i] + " (left out of metrics)";
      f.appendChild(el("span", { class: "flag", "aria-label": "flagged: " + D.flags[i] }, "\u2691 " + D.flags[i]));
    } else if (caption) f.title = caption;
    if (shownLines) f.appendChild(el("figcaption", null, caption));
    f.style.width = size[0] + "px";
    f.style.containIntrinsicSize = "auto " + size[0] + "px auto " + (size[1] + shownLines * CAPTION_PX) + "px";
    return f;
  }
  function showImages(root) {
    root.querySelectorAll("img[data-src]").forEach(function (img) {
      img.alt = "image " + D.imageId[Number(img.parentNode.getAttribute("data-image"))];
      img.src = img.getAttribute("data-src");
      img.removeAttribute("data-src");
    });
  }
  function watch(cells) {
    // lazy thumbnails: one observer on the grid's cells, 400 px ahead of the scrolled view
    if (lazy) lazy.disconnect();
    if (!window.IntersectionObserver) { cells.forEach(showImages); return; }
    lazy = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { lazy.unobserve(e.target); showImages(e.target); }
      });
    }, { root: document.getElementById("grid-wrap"), rootMargin: "400px" });
    cells.forEach(function (td) { lazy.observe(td); });
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

