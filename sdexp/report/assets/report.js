// sdexp report: a sortable table and a zoomable lightbox for grids. No libraries, no network.
"use strict";

function sortValue(cell) {
  const raw = cell.getAttribute("data-sort");
  const text = raw === null ? cell.textContent.trim() : raw;
  const num = Number(text);
  return text !== "" && !Number.isNaN(num) ? { num: true, v: num } : { num: false, v: text };
}

function compare(a, b) {
  if (a.num && b.num) return a.v - b.v;
  if (a.num !== b.num) return a.num ? -1 : 1;   // numbers before blanks and text
  return a.v.localeCompare(b.v, undefined, { numeric: true });
}

function makeSortable(table) {
  const heads = table.tHead.rows[0].cells;
  Array.from(heads).forEach(function (th, col) {
    th.tabIndex = 0;
    const sort = function () {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.from(heads).forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
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

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("table.sortable").forEach(makeSortable);
  setupLightbox();
});
