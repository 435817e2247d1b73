  // viewer part: axis and value controls (the parts of assets/viewer/ are joined in name order into one script)
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

