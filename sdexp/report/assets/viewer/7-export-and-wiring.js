  // viewer part: save as PNG, events, the module's interface (the parts of assets/viewer/ are joined in name order into one script)
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
          wrapLines(ctx, c.textContent, Math.max(10, r.width - 8)).forEach(function (line, k) {
            ctx.fillText(line, x + 4, y + 4 + 16 * k, Math.max(10, r.width - 8));
          });
        }
      });
      figs.forEach(function (f, k) {
        const img = f.querySelector("img").getBoundingClientRect();
        if (images[k]) ctx.drawImage(images[k], img.left - origin.left, img.top - origin.top, img.width, img.height);
        const cap = f.querySelector("figcaption");
        if (cap) {
          const r = cap.getBoundingClientRect();
          ctx.fillStyle = "#000";
          ctx.font = "11px sans-serif";
          cap.textContent.split("\n").forEach(function (line, k) {
            ctx.fillText(line, r.left - origin.left, r.top - origin.top + k * CAPTION_PX, Math.max(10, r.width));
          });
        }
      });
      return canvas;
    });
  }
  function wrapLines(ctx, text, width) {
    // a label's words in lines no wider than `width` (a longer word stays one line, drawn narrower)
    const lines = [];
    text.split(/\s+/).forEach(function (word) {
      const last = lines.length ? lines[lines.length - 1] + " " + word : word;
      if (lines.length && ctx.measureText(last).width <= width) lines[lines.length - 1] = last;
      else lines.push(word);
    });
    return lines;
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
    document.querySelector("#detail .detail-image img").addEventListener("load", function () {
      // an image smaller than 256 px is shown at a whole multiple of its size, its pixels kept sharp
      const w = this.naturalWidth, zoom = w && w < 256 ? Math.ceil(256 / w) : 1;
      this.style.width = zoom > 1 ? w * zoom + "px" : "";
      this.style.imageRendering = zoom > 1 ? "pixelated" : "";
      this.title = zoom > 1 ? w + " x " + this.naturalHeight + " px, shown at " + zoom + "x" : "";
    });
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
