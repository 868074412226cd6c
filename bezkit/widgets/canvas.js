// bezkit's figure canvas: draws a plotly-like figure as SVG from the widget's synced traits.
// Traits: "fig_layout" (plotly's layout JSON), "n_traces", and one trait per trace, "t0", "t1", ...
// (plotly's trace JSON). Everything is drawn from model.get(...), so the first render shows the
// data whenever this module arrives; a change of one trace redraws that trace only (all of them
// when an axis range changes). Subset of plotly: scatter traces (lines, markers, error bars),
// linear and log axes, subplot domains, annotations, a title and a horizontal legend.
const NS = "http://www.w3.org/2000/svg";
const COLORWAY = ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692"];
const FONT = "'Open Sans', 'Liberation Sans', Arial, sans-serif";
const DASHES = { dash: "6,4", dot: "2,3", dashdot: "6,3,2,3", longdash: "10,5", longdashdot: "10,4,2,4" };

function mk(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
const get = (obj, path, dflt) => {
  let o = obj;
  for (const k of path.split(".")) { if (o === undefined || o === null) return dflt; o = o[k]; }
  return o === undefined || o === null ? dflt : o;
};
const plain = (s) => String(s ?? "").replace(/<br\s*\/?>/gi, " ").replace(/<[^>]*>/g, "")
  .replace(/&nbsp;/g, " ").replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">");
const textWidth = (s, size) => 0.56 * size * String(s).length;  // no layout needed
const at = (v, i, dflt) => (Array.isArray(v) ? (v[i] ?? dflt) : (v ?? dflt));
const finite = (v) => typeof v === "number" && Number.isFinite(v);

function axisKey(ref, letter) {  // "x2" -> "xaxis2", "x" / undefined -> "xaxis"
  const n = (ref || letter).slice(1);
  return letter + "axis" + n;
}

function visibleTraces(traces) {
  return traces.filter((t) => t && t.visible !== false && t.visible !== "legendonly");
}

// ---- axes ---------------------------------------------------------------------------------------

function dataExtent(traces, key, letter, log) {
  let lo = Infinity, hi = -Infinity;
  for (const t of traces) {
    if (axisKey(t[letter + "axis"], letter) !== key) continue;
    const v = t[letter] || [];
    const err = t["error_" + letter];
    const showErr = err && err.visible !== false && (err.array || err.value !== undefined);
    for (let i = 0; i < v.length; i++) {
      const c = v[i];
      if (!finite(c)) continue;
      let a = c, b = c;
      if (showErr) {
        const up = err.array ? at(err.array, i, 0) : err.value;
        const dn = err.symmetric === false && err.arrayminus ? at(err.arrayminus, i, 0) : up;
        if (finite(up)) b = c + up;
        if (finite(dn)) a = c - dn;
      }
      for (const w of [a, b]) {
        if (log && !(w > 0)) continue;
        const u = log ? Math.log10(w) : w;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
      }
    }
  }
  return [lo, hi];
}

// the category names of a categorical axis (string values), in order of first appearance
function categories(traces, key, letter) {
  const seen = new Map();
  for (const t of traces) {
    if (!t || axisKey(t[letter + "axis"], letter) !== key) continue;
    for (const v of t[letter] || []) if (typeof v === "string" && !seen.has(v)) seen.set(v, seen.size);
  }
  return seen.size ? seen : null;
}

function axisRange(ax, key, traces, letter, cats) {
  const log = ax.type === "log";
  if (Array.isArray(ax.range) && finite(ax.range[0]) && finite(ax.range[1])) return ax.range.slice();
  if (cats) return [-0.5, cats.size - 0.5];
  let [lo, hi] = dataExtent(traces, key, letter, log);
  if (!(lo <= hi)) return log ? [0, 1] : [-1, 1];
  if (ax.rangemode === "tozero" && !log) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
  if (hi - lo < 1e-12) { const d = log ? 0.5 : Math.max(Math.abs(lo) * 0.1, 0.5); lo -= d; hi += d; }
  const pad = 0.05 * (hi - lo);
  return [ax.rangemode === "tozero" && lo === 0 ? 0 : lo - pad, hi + pad];
}

function niceStep(span, target) {
  const raw = span / Math.max(target, 1);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

function fmt(v, step) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-4) return v.toExponential(0).replace("e+", "e");
  const d = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(d);
}

// tick values (in axis units: log10 for log axes) and their labels
function ticks(ax, range, pixels, letter, cats) {
  const [lo, hi] = range[0] <= range[1] ? range : [range[1], range[0]];
  if (cats) return [...cats].filter(([, i]) => i >= lo && i <= hi).map(([name, i]) => [i, name]);
  const target = Math.max(2, Math.floor(pixels / (letter === "x" ? 80 : 50)));
  const out = [];
  if (ax.type === "log") {
    const decades = hi - lo;
    const mults = decades > 2.5 ? [1] : decades > 1.2 ? [1, 2, 5] : [1, 2, 3, 5];
    for (let d = Math.floor(lo); d <= Math.ceil(hi); d++) {
      for (const m of mults) {
        const u = d + Math.log10(m);
        if (u < lo - 1e-9 || u > hi + 1e-9) continue;
        const v = m * Math.pow(10, d);
        const lbl = Math.abs(d) >= 5 ? v.toExponential(0).replace("e+", "e") : fmt(v, Math.pow(10, d));
        out.push([u, lbl]);
      }
    }
    if (out.length < 2) {  // under a decade: linear ticks in value space
      const a = Math.pow(10, lo), b = Math.pow(10, hi), s = niceStep(b - a, target);
      for (let v = Math.ceil(a / s) * s; v <= b + s * 1e-9; v += s) out.push([Math.log10(v), fmt(v, s)]);
    }
    return out;
  }
  const dtick = finite(ax.dtick) && (hi - lo) / ax.dtick <= 50 ? ax.dtick : null;
  const s = dtick || niceStep(hi - lo, target);
  const t0 = finite(ax.tick0) ? ax.tick0 : 0;
  for (let k = Math.ceil((lo - t0) / s - 1e-9); t0 + k * s <= hi + s * 1e-9; k++) {
    const v = t0 + k * s;
    out.push([Math.abs(v) < s * 1e-9 ? 0 : v, fmt(Math.abs(v) < s * 1e-9 ? 0 : v, s)]);
  }
  return out;
}

// where every subplot is: pixel boxes, ranges, scale functions
function geometry(layout, traces) {
  const W = layout.width || 700, H = layout.height || 450;
  const m = Object.assign({ l: 80, r: 80, t: 100, b: 80 }, layout.margin || {});
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const shown = visibleTraces(traces);
  const axes = {};
  const want = new Set(Object.keys(layout).filter((k) => /^[xy]axis\d*$/.test(k)));
  for (const t of traces) if (t) { want.add(axisKey(t.xaxis, "x")); want.add(axisKey(t.yaxis, "y")); }
  for (const key of want) {
    const letter = key[0], ax = layout[key] || {};
    const d = ax.domain || [0, 1];
    const p0 = letter === "x" ? m.l + d[0] * pw : m.t + (1 - d[1]) * ph;
    const p1 = letter === "x" ? m.l + d[1] * pw : m.t + (1 - d[0]) * ph;
    const cats = categories(traces, key, letter);
    axes[key] = { key, letter, ax, p0, p1, cats, range: axisRange(ax, key, shown, letter, cats), log: ax.type === "log" && !cats };
  }
  // equal scales (scaleanchor): widen the range of the axis with the larger scale, as plotly does
  for (const a of Object.values(axes)) {
    const anchor = a.ax.scaleanchor && axes[axisKey(a.ax.scaleanchor, a.ax.scaleanchor[0])];
    if (!anchor || anchor.log || a.log) continue;
    const ratio = a.ax.scaleratio || 1;
    const sa = (a.p1 - a.p0) / (a.range[1] - a.range[0]) / ratio;
    const sb = (anchor.p1 - anchor.p0) / (anchor.range[1] - anchor.range[0]);
    const s = Math.min(sa, sb);
    const widen = (ax, scale) => {
      const mid = (ax.range[0] + ax.range[1]) / 2, half = (ax.p1 - ax.p0) / scale / 2;
      ax.range = [mid - half, mid + half];
    };
    if (sa > s) widen(a, s * ratio);
    if (sb > s) widen(anchor, s);
  }
  for (const a of Object.values(axes)) {
    const [r0, r1] = a.range, span = r1 - r0 || 1;
    const lin = a.letter === "x"
      ? (u) => a.p0 + ((u - r0) / span) * (a.p1 - a.p0)
      : (u) => a.p1 - ((u - r0) / span) * (a.p1 - a.p0);
    const num = a.cats ? (v) => (typeof v === "string" ? a.cats.get(v) ?? NaN : v) : (v) => v;
    a.px = (v) => {
      const u = num(v);
      if (!finite(u) || (a.log && !(u > 0))) return NaN;
      return lin(a.log ? Math.log10(u) : u);
    };
    a.pu = lin;  // from axis units (log10 for a log axis)
  }
  return { W, H, m, pw, ph, axes };
}

// ---- traces -------------------------------------------------------------------------------------

function markerPath(sym, x, y, size, angle) {
  const r = size / 2;
  const base = String(sym || "circle").replace(/-open$/, "").replace(/-dot$/, "");
  switch (base) {
    case "square": return `M${x - r},${y - r}h${size}v${size}h${-size}Z`;
    case "diamond": return `M${x},${y - r * 1.3}L${x + r * 1.3},${y}L${x},${y + r * 1.3}L${x - r * 1.3},${y}Z`;
    case "cross": { const q = r / 3; return `M${x - q},${y - r}h${2 * q}v${r - q}h${r - q}v${2 * q}h${q - r}v${r - q}h${-2 * q}v${q - r}h${q - r}v${-2 * q}h${r - q}Z`; }
    case "triangle-up": return `M${x},${y - r * 1.2}L${x + r * 1.1},${y + r * 0.8}L${x - r * 1.1},${y + r * 0.8}Z`;
    case "star": {
      let d = "";
      for (let k = 0; k < 10; k++) {
        const rr = k % 2 ? r * 0.5 : r * 1.25, a = -Math.PI / 2 + (k * Math.PI) / 5;
        d += (k ? "L" : "M") + (x + rr * Math.cos(a)) + "," + (y + rr * Math.sin(a));
      }
      return d + "Z";
    }
    case "arrow": {  // a head pointing along `angle` (radians, screen), tip at (x, y)
      const c = Math.cos(angle), s = Math.sin(angle), L = size, w = size * 0.45;
      const bx = x - c * L, by = y - s * L;
      return `M${x},${y}L${bx - s * w},${by + c * w}L${bx + s * w},${by - c * w}Z`;
    }
    default: return `M${x - r},${y}a${r},${r} 0 1,0 ${size},0a${r},${r} 0 1,0 ${-size},0Z`;
  }
}

function traceColor(t, i) {
  const mc = get(t, "marker.color");
  return get(t, "line.color") || (typeof mc === "string" ? mc : null) || COLORWAY[i % COLORWAY.length];
}

function drawTrace(g, t, i, geo) {
  g.replaceChildren();
  if (!t || t.visible === false || t.visible === "legendonly") return;
  const xa = geo.axes[axisKey(t.xaxis, "x")], ya = geo.axes[axisKey(t.yaxis, "y")];
  if (!xa || !ya) return;
  const xs = t.x || [], ys = t.y || [];
  const n = Math.min(xs.length, ys.length);
  const pts = new Array(n);
  for (let k = 0; k < n; k++) {
    const px = xa.px(xs[k]), py = ya.px(ys[k]);
    pts[k] = Number.isFinite(px) && Number.isFinite(py) ? [px, py] : null;
  }
  const mode = t.mode || (n < 20 ? "lines+markers" : "lines");
  const color = traceColor(t, i);
  g.setAttribute("opacity", t.opacity ?? 1);
  for (const letter of ["y", "x"]) drawErrors(g, t, letter, pts, xa, ya, color);
  if (mode.includes("lines")) {
    let d = "", pen = false;
    for (const p of pts) {
      if (!p) { pen = false; continue; }
      d += (pen ? "L" : "M") + p[0].toFixed(2) + "," + p[1].toFixed(2);
      pen = true;
    }
    const dash = get(t, "line.dash", "solid");
    mk("path", {
      d, fill: "none", stroke: color, "stroke-width": get(t, "line.width", 2),
      "stroke-dasharray": DASHES[dash] || (dash !== "solid" ? String(dash).replace(/px/g, "") : null),
      "stroke-linejoin": "round", class: "bezkit-line",
    }, g);
  }
  if (mode.includes("markers")) drawMarkers(g, t, pts, color);
}

function drawMarkers(g, t, pts, color) {
  const mk_ = t.marker || {};
  const size = mk_.size ?? 6, sym = mk_.symbol ?? "circle", col = mk_.color ?? color;
  const op = mk_.opacity ?? 1, lw = get(mk_, "line.width"), lc = get(mk_, "line.color");
  const uniform = [size, sym, col, op].every((v) => !Array.isArray(v)) && !String(sym).includes("arrow");
  const style = (s, c) => {
    const open = String(s).endsWith("-open");
    return open
      ? { fill: "none", stroke: c, "stroke-width": lw ?? 1.5 }
      : { fill: c, stroke: lw ? lc || "#444" : "none", "stroke-width": lw || 0 };
  };
  if (uniform) {  // one path for the whole cloud
    let d = "";
    for (const p of pts) if (p) d += markerPath(sym, p[0], p[1], size, 0);
    mk("path", { d, ...style(sym, col), "fill-opacity": op, "stroke-opacity": op, class: "bezkit-markers" }, g);
    return;
  }
  pts.forEach((p, k) => {
    if (!p) return;
    const s = at(sym, k, "circle");
    let angle = 0;
    if (String(s).includes("arrow")) {
      const q = pts[k - 1] || pts[k + 1];
      if (q && q !== p) angle = k > 0 && pts[k - 1] ? Math.atan2(p[1] - q[1], p[0] - q[0]) : Math.atan2(q[1] - p[1], q[0] - p[0]) + Math.PI;
    }
    const o = at(op, k, 1);
    mk("path", { d: markerPath(s, p[0], p[1], at(size, k, 6), angle), ...style(s, at(col, k, color)),
      "fill-opacity": o, "stroke-opacity": o, class: "bezkit-marker" }, g);
  });
}

function drawErrors(g, t, letter, pts, xa, ya, color) {
  const err = t["error_" + letter];
  if (!err || err.visible === false || !(err.array || err.value !== undefined)) return;
  const vals = t[letter] || [], axis = letter === "y" ? ya : xa;
  const ec = err.color || color, w = err.width ?? 4;
  let d = "";
  pts.forEach((p, k) => {
    if (!p || !finite(vals[k])) return;
    const up = err.array ? at(err.array, k, 0) : err.value;
    const dn = err.symmetric === false && err.arrayminus ? at(err.arrayminus, k, 0) : up;
    const a = axis.px(vals[k] - (finite(dn) ? dn : 0)), b = axis.px(vals[k] + (finite(up) ? up : 0));
    if (!Number.isFinite(a) || !Number.isFinite(b)) return;
    d += letter === "y"
      ? `M${p[0]},${a}V${b}M${p[0] - w},${a}h${2 * w}M${p[0] - w},${b}h${2 * w}`
      : `M${a},${p[1]}H${b}M${a},${p[1] - w}v${2 * w}M${b},${p[1] - w}v${2 * w}`;
  });
  mk("path", { d, stroke: ec, "stroke-width": err.thickness ?? 1.5, fill: "none", class: "bezkit-errors" }, g);
}

// ---- frame: axes, grid, titles, legend --------------------------------------------------------------

function text(parent, x, y, s, opts) {
  const o = Object.assign({ size: 12, anchor: "middle", color: "#444" }, opts || {});
  const e = mk("text", { x, y, "font-size": o.size, "text-anchor": o.anchor, fill: o.color,
    "font-family": FONT, transform: o.rotate ? `rotate(-90 ${x} ${y})` : null,
    "font-weight": o.bold ? "bold" : null, class: o.cls }, parent);
  e.textContent = plain(s);
  return e;
}

function fitSize(s, size, room) {  // a smaller font for a label too wide for its room
  const w = textWidth(plain(s), size);
  return w <= room ? size : Math.max(8, Math.floor((size * room) / w));
}

function drawFrame(svg, layout, geo, traces) {
  const frame = mk("g", { class: "bezkit-frame" }, svg);
  let bottom = geo.H - geo.m.b;  // the lowest pixel drawn so far below the plots
  const pairs = new Map();
  for (const t of traces) if (t) pairs.set(axisKey(t.xaxis, "x") + "|" + axisKey(t.yaxis, "y"), true);
  for (const a of Object.values(geo.axes)) {
    const other = a.letter === "x"
      ? geo.axes[axisKey(a.ax.anchor && a.ax.anchor !== "free" ? a.ax.anchor : "y" + a.key.slice(5), "y")]
      : geo.axes[axisKey(a.ax.anchor && a.ax.anchor !== "free" ? a.ax.anchor : "x" + a.key.slice(5), "x")];
    if (!other) continue;
    const len = Math.abs(a.p1 - a.p0);
    const tk = ticks(a.ax, a.range, len, a.letter, a.cats);
    const showGrid = a.ax.showgrid !== false;
    let lastEnd = -Infinity;
    let widest = 0;
    for (const [u, lbl] of tk) {
      const p = a.pu(u);
      if (a.letter === "x") {
        if (showGrid) mk("line", { x1: p, x2: p, y1: other.p0, y2: other.p1, stroke: "#e5e5e5" }, frame);
        const w = textWidth(lbl, 11);
        if (p - w / 2 < lastEnd + 4) continue;  // never two labels on top of each other
        lastEnd = p + w / 2;
        text(frame, p, other.p1 + 15, lbl, { size: 11, cls: "bezkit-tick" });
      } else {
        if (showGrid) mk("line", { x1: other.p0, x2: other.p1, y1: p, y2: p, stroke: "#e5e5e5" }, frame);
        if (Math.abs(p - lastEnd) < 13) continue;  // never two labels on top of each other
        lastEnd = p;
        widest = Math.max(widest, textWidth(lbl, 11));
        text(frame, other.p0 - 5, p + 4, lbl, { size: 11, anchor: "end", cls: "bezkit-tick" });
      }
    }
    if (a.letter === "x") {
      mk("line", { x1: a.p0, x2: a.p1, y1: other.p1, y2: other.p1, stroke: "#888" }, frame);
      const title = get(a.ax, "title.text");
      if (title) {
        text(frame, (a.p0 + a.p1) / 2, other.p1 + 34, title, { size: fitSize(title, 13, len + 20) });
        bottom = Math.max(bottom, other.p1 + 40);
      } else bottom = Math.max(bottom, other.p1 + 20);
    } else {
      mk("line", { x1: other.p0, x2: other.p0, y1: a.p0, y2: a.p1, stroke: "#888" }, frame);
      const title = get(a.ax, "title.text");
      if (title) text(frame, other.p0 - widest - 14, (a.p0 + a.p1) / 2, title,
        { size: fitSize(title, 13, len + 20), rotate: true });
    }
  }
  const title = get(layout, "title.text");
  if (title) {
    const x = get(layout, "title.x", 0.5) * geo.W;
    text(frame, x, Math.max(18, geo.m.t / 2 + 4), title, { size: fitSize(title, 16, geo.W - 10), color: "#222", cls: "bezkit-title" });
  }
  for (const an of layout.annotations || []) {  // subplot titles (paper coordinates)
    if (!an.text) continue;
    const x = an.xref && an.xref !== "paper" ? geo.axes[axisKey(an.xref, "x")]?.px(an.x) : geo.m.l + an.x * geo.pw;
    const y = an.yref && an.yref !== "paper" ? geo.axes[axisKey(an.yref, "y")]?.px(an.y) : geo.m.t + (1 - an.y) * geo.ph;
    if (!finite(x) || !finite(y)) continue;
    let room = geo.W;  // the panel under the title: its width
    for (const a of Object.values(geo.axes)) if (a.letter === "x" && x >= a.p0 - 1 && x <= a.p1 + 1) room = a.p1 - a.p0 + 16;
    const size = fitSize(an.text, get(an, "font.size", 14), room);
    const anchor = { left: "start", right: "end" }[an.xanchor] || "middle";
    const dy = an.yanchor === "top" ? size : an.yanchor === "middle" ? size / 3 : -4;
    text(frame, x, y + dy, an.text, { size, anchor, color: "#222", cls: "bezkit-annotation" });
  }
  return bottom;
}

function drawLegend(svg, layout, geo, traces, below) {
  if (layout.showlegend === false) return below;
  const items = traces.map((t, i) => [t, i]).filter(([t]) => t && t.visible !== false && t.showlegend !== false && t.name);
  if (!items.length) return below;
  const g = mk("g", { class: "bezkit-legend" }, svg);
  const ly = get(layout, "legend.y", -0.1);
  let y = geo.m.t + (1 - ly) * geo.ph;
  if (ly < 0) y = Math.max(y, below + 8);
  const x0 = geo.m.l + get(layout, "legend.x", 0) * geo.pw;
  let x = x0, row = 0;
  y += 10;
  for (const [t, i] of items) {
    const w = 40 + textWidth(t.name, 12);
    if (x > x0 && x + w > geo.W - 5) { x = x0; row += 1; }
    const cy = y + row * 20, color = traceColor(t, i);
    const item = mk("g", { class: "bezkit-legend-item", opacity: t.visible === "legendonly" ? 0.4 : 1 }, g);
    const mode = t.mode || "lines";
    if (mode.includes("lines")) {
      const dash = get(t, "line.dash", "solid");
      mk("line", { x1: x, x2: x + 28, y1: cy, y2: cy, stroke: color, "stroke-width": Math.min(get(t, "line.width", 2), 4),
        "stroke-dasharray": DASHES[dash] || null }, item);
    }
    if (mode.includes("markers")) {
      const sym = at(get(t, "marker.symbol"), 0, "circle");
      const c = at(get(t, "marker.color"), 0, color);
      const open = String(sym).endsWith("-open");
      mk("path", { d: markerPath(String(sym).includes("arrow") ? "circle" : sym, x + 14, cy, 8, 0),
        fill: open ? "none" : c, stroke: c, "stroke-width": open ? 1.5 : 0 }, item);
    }
    text(item, x + 34, cy + 4, t.name, { size: 12, anchor: "start" });
    x += w;
  }
  return y + row * 20 + 12;
}

// ---- the view -----------------------------------------------------------------------------------

function render({ model, el }) {
  el.classList.add("bezkit-canvas");
  el.style.position = "relative";
  el.style.width = "100%";
  el.style.minWidth = "0";
  const svg = mk("svg", { xmlns: NS }, el);
  svg.style.display = "block";
  svg.style.background = "white";
  const clip = "bezkit-clip-" + Math.random().toString(36).slice(2);
  let geo = null, geoKey = "", groups = [], frameDirty = true, below = 0, pending = 0;
  const dirty = new Set();
  const traces = () => Array.from({ length: model.get("n_traces") }, (_, i) => model.get("t" + i));

  let legendKey = "";
  function legendAndSize(layout, tr) {
    // what the legend shows: redrawn only when one of these changed (not on a data change)
    const key = JSON.stringify([geo.W, geo.H, below, tr.map((t) => t && [t.name, t.visible,
      t.showlegend, t.mode, t.line, at(get(t, "marker.symbol"), 0), at(get(t, "marker.color"), 0)])]);
    const old = svg.querySelector(".bezkit-legend");
    if (old && key === legendKey) return;
    legendKey = key;
    old?.remove();
    const end = drawLegend(svg, layout, geo, tr, below);
    const height = Math.ceil(Math.max(geo.H, end + 4));
    // at its own size where there is room, scaled down (text and all) to a narrower output
    svg.setAttribute("viewBox", `0 0 ${geo.W} ${height}`);
    svg.style.width = "100%";
    svg.style.maxWidth = geo.W + "px";
    svg.style.height = "auto";
  }

  function drawAll() {
    const layout = model.get("fig_layout") || {};
    const tr = traces();
    const g = geometry(layout, tr);
    const key = JSON.stringify(Object.values(g.axes).map((a) => [a.key, a.range, a.p0, a.p1]));
    if (frameDirty || key !== geoKey || groups.length !== tr.length) {
      geo = g;
      geoKey = key;
      frameDirty = false;
      svg.replaceChildren();
      below = drawFrame(svg, layout, geo, tr);
      const defs = mk("defs", {}, svg);
      const plots = mk("g", { class: "bezkit-plots" }, svg);
      groups = tr.map((t, i) => {
        const xa = geo.axes[axisKey(t && t.xaxis, "x")], ya = geo.axes[axisKey(t && t.yaxis, "y")];
        const attrs = { class: "bezkit-trace", "data-name": (t && t.name) || "" };
        if (xa && ya && t.cliponaxis !== false) {
          const id = clip + "-" + xa.key + ya.key;
          if (!defs.querySelector("#" + id)) {
            const cp = mk("clipPath", { id }, defs);
            mk("rect", { x: xa.p0 - 6, y: ya.p0 - 6, width: xa.p1 - xa.p0 + 12, height: ya.p1 - ya.p0 + 12 }, cp);
          }
          attrs["clip-path"] = `url(#${id})`;
        }
        const grp = mk("g", attrs, plots);
        drawTrace(grp, t, i, geo);
        return grp;
      });
    } else {
      for (const i of dirty) drawTrace(groups[i], tr[i], i, geo);
    }
    legendAndSize(layout, tr);  // the legend shows which traces are visible
    dirty.clear();
    el.dataset.draws = String(Number(el.dataset.draws || 0) + 1);
  }

  const schedule = () => {
    if (!pending) pending = requestAnimationFrame(() => { pending = 0; drawAll(); });
  };
  const listeners = [
    ["change:fig_layout", () => { frameDirty = true; schedule(); }],
    ["change:n_traces", () => { frameDirty = true; schedule(); }],
  ];
  for (let i = 0; i < model.get("n_traces"); i++) {
    listeners.push(["change:t" + i, () => { dirty.add(i); schedule(); }]);
  }
  listeners.forEach(([ev, fn]) => model.on(ev, fn));
  drawAll();  // at once, from the model's state: the first render shows the data
  return () => {
    if (pending) cancelAnimationFrame(pending);
    listeners.forEach(([ev, fn]) => model.off(ev, fn));
  };
}

export default { render };
