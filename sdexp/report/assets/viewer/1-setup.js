// sdexp viewer: an X/Y grid of a stored sweep, rearranged in the browser. Plain JavaScript, no
// libraries, no network: data/viewer.js calls sdexpViewer.load(data); details and thumbnail pixels
// come later from data/*.js files added as <script> tags (file:// pages cannot fetch). Every piece of
// sweep text is set with textContent, never parsed as HTML.
// Its source is assets/viewer/*.js, one part per concern, joined in name order into report/assets/viewer.js
// (sdexp.report.build): one closure, whose state and functions every part shares.
"use strict";

const sdexpViewer = (function () {
  const LAYOUT = [["x", "X"], ["y", "Y"], ["xs", "X super"], ["ys", "Y super"]];
  const N_BOOT = 2000;
  const CAPTION_PX = 15;        // the height of a line of an image's caption (viewer.css, figure.img figcaption)
  const MIN_CAPTIONED = 40;     // images narrower than this carry their caption in their title only
  let D = null;                 // the data object
  let S = null;                 // the view state (serialized in the URL hash)
  let byKey = null;             // "i0,i1,..." of every axis -> image index
  const details = {};           // shard -> [{p, f}]
  const pixels = {};            // pixel shard -> [data URL]
  const waiting = {};           // script src -> [resolve]
  let pickFirst = null;         // compare mode: the first cell picked
  let lazy = null;              // gives the grid's images their src as their cells near the view

