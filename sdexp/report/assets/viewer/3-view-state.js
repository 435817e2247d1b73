  // viewer part: the view state and the URL hash (the parts of assets/viewer/ are joined in name order into one script)
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

