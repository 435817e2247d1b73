  // viewer part: DOM helpers, data shards, statistics (the parts of assets/viewer/ are joined in name order into one script)
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
  function groupRow(m, i) {
    // a per-group metric's row for image i: [value, low, high, n, warning, group], or null
    const k = m.at[i];
    return k >= 0 ? m.rows[k] : null;
  }
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

