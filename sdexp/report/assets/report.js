// sdexp report: sortable tables, the cells table (data/cells.js) a page at a time with filters,
// and a zoomable lightbox for grids. No libraries, no network; sweep text is set as text.
"use strict";

const PAGE = 100;
const sdexpReport = { rows: null, cells: function (rows) { this.rows = rows; } };

function parsed(text) {
  const num = Number(text);
  return text !== "" && !Number.isNaN(num) ? { num: true, v: num } : { num: false, v: text };
}

function sortValue(cell) {
  const raw = cell.getAttribute("data-sort");
  return parsed(raw === null ? cell.textContent.trim() : raw);
}

function compare(a, b) {
  if (a.num && b.num) return a.v - b.v;
  if (a.num !== b.num) return a.num ? -1 : 1;   // numbers before blanks and text
  return a.v.localeCompare(b.v, undefined, { numeric: true });
}

function makeSortable(table, sortRows) {
  const heads = table.tHead.rows[0].cells;
  Array.from(heads).forEach(function (th, col) {
    th.tabIndex = 0;
    const sort = function () {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.from(heads).forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      if (sortRows) { sortRows(col, ascending); return; }
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      rows.sort(function (r1, r2) {
        const c = compare(sortValue(r1.cells[col]), sortValue(r2.cells[col]));
        return ascending ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
  });
}

function setupLightbox() {
  const box = document.getElementById("lightbox");
  if (!box) return;
  const close = function () { box.hidden = true; const img = box.querySelector("img"); if (img) img.remove(); };
  box.querySelector(".close").addEventListener("click", close);
  box.addEventListener("click", function (e) { if (e.target === box) close(); });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });
  document.querySelectorAll("a.zoom").forEach(function (link) {
    link.addEventListener("click", function (e) {
      e.preventDefault();
      const img = document.createElement("img");
      img.src = link.getAttribute("href");
      img.alt = link.getAttribute("data-title") || "";
      img.className = "fit";
      img.addEventListener("click", function () {
        img.className = img.className === "fit" ? "actual" : "fit";
      });
      box.insertBefore(img, box.firstChild);
      box.hidden = false;
    });
  });
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function numCell(text, interval, sort, extra) {
  const td = el("td", { class: "num" + (extra || ""), "data-sort": sort });
  td.appendChild(document.createTextNode(text));
  if (interval) { td.appendChild(document.createTextNode(" ")); td.appendChild(el("span", { class: "ci" }, interval)); }
  return td;
}

function cellRow(r) {
  // columns: image, cell id, settings, images, metrics, paired differences
  const tr = el("tr");
  const img = el("td", { "data-sort": String(r.order) });
  if (r.thumb) {
    const a = el("a", { href: r.href });
    a.appendChild(el("img", { src: r.thumb, width: "36", height: "36", alt: "first image of the cell" }));
    img.appendChild(a);
  }
  tr.appendChild(img);
  tr.appendChild(el("td", { "data-sort": r.id, title: r.id }, r.id.slice(0, 10)));
  r.s.forEach(function (v) { tr.appendChild(el("td", v[2] ? { "data-sort": v[1], class: "num" } : { "data-sort": v[1] }, v[0])); });
  tr.appendChild(el("td", { class: "num", "data-sort": String(r.n) }, String(r.n)));
  r.m.forEach(function (m) {
    const td = numCell(m[0], m[1], m[2], m[3] ? " best" : "");
    if (m[3]) { td.appendChild(document.createTextNode(" ")); td.appendChild(el("span", { class: "star", title: "best" }, "\u2605")); }
    tr.appendChild(td);
  });
  r.d.forEach(function (d) {
    const td = numCell(d[0], d[1], d[2], d[4] ? " clear" : "");
    if (d[3]) td.appendChild(el("span", { class: "pairs" }, " N=" + d[3]));
    tr.appendChild(td);
  });
  return tr;
}

function sortKey(r, col, nAxes) {
  // the sort value of a row's column, as the cells would carry it in data-sort
  if (col === 0) return r.order;
  if (col === 1) return r.id;
  if (col < 2 + nAxes) return r.s[col - 2][1];
  if (col === 2 + nAxes) return r.n;
  const m = col - 3 - nAxes;
  return m < r.m.length ? r.m[m][2] : r.d[m - r.m.length][2];
}

function setupCells(table) {
  const rows = sdexpReport.rows || [];
  rows.forEach(function (r, i) { r.order = i + 1; });
  const nAxes = rows.length ? rows[0].s.length : 0;
  const tools = document.querySelector(".table-tools");
  let shown = rows.slice(), page = 0;
  const text = document.getElementById("cells-filter");
  const selects = [];
  const heads = table.tHead.rows[0].cells;
  Array.from(heads).forEach(function (th) {
    if (!th.hasAttribute("data-filter")) return;
    const k = Number(th.getAttribute("data-filter"));
    const values = Array.from(new Set(rows.map(function (r) { return r.s[k][0]; })));
    if (values.length < 2) return;
    const sel = el("select", { "aria-label": th.textContent, "data-axis": String(k) });
    sel.appendChild(el("option", { value: "" }, th.textContent + ": all"));
    values.forEach(function (v) { sel.appendChild(el("option", { value: v }, v)); });
    document.getElementById("cells-axis-filters").appendChild(sel);
    selects.push(sel);
  });
  function draw() {
    const body = table.tBodies[0];
    body.textContent = "";
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(page, pages - 1);
    shown.slice(page * PAGE, (page + 1) * PAGE).forEach(function (r) { body.appendChild(cellRow(r)); });
    document.getElementById("cells-count").textContent = shown.length
      ? "rows " + (page * PAGE + 1) + "\u2013" + Math.min(shown.length, (page + 1) * PAGE) + " of " + shown.length
        + (shown.length < rows.length ? " (filtered from " + rows.length + ")" : "")
      : "no row matches";
    document.getElementById("cells-prev").disabled = page === 0;
    document.getElementById("cells-next").disabled = page >= pages - 1;
  }
  function filter() {
    const q = text.value.trim().toLowerCase();
    shown = rows.filter(function (r) {
      if (q && !(r.id.toLowerCase().startsWith(q) || r.s.some(function (v) { return v[0].toLowerCase().indexOf(q) >= 0; }))) return false;
      return selects.every(function (s) { return !s.value || r.s[Number(s.getAttribute("data-axis"))][0] === s.value; });
    });
    page = 0;
    draw();
  }
  makeSortable(table, function (col, ascending) {
    shown.sort(function (a, b) {
      const c = compare(parsed(String(sortKey(a, col, nAxes))), parsed(String(sortKey(b, col, nAxes))));
      return ascending ? c : -c;
    });
    draw();
  });
  text.addEventListener("input", filter);
  selects.forEach(function (s) { s.addEventListener("change", filter); });
  document.getElementById("cells-prev").addEventListener("click", function () { page--; draw(); });
  document.getElementById("cells-next").addEventListener("click", function () { page++; draw(); });
  tools.hidden = false;
  draw();
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("table.sortable").forEach(function (t) {
    if (t.hasAttribute("data-source")) setupCells(t); else makeSortable(t);
  });
  setupLightbox();
});
