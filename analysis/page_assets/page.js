// tunelab report page: learning curves drawn from the page's data, hover tips, legend toggles and
// sortable tables. No request leaves the page.
"use strict";
(function () {
  const tip = document.getElementById("tip");
  const KEY = "tunelab-hidden:" + document.body.dataset.experiment;

  // Hover: the nearest element with a data-tip names the configuration (and the seed, epoch, value).
  document.addEventListener("mouseover", (event) => {
    const target = event.target.closest ? event.target.closest("[data-tip]") : null;
    if (!target) { tip.style.display = "none"; return; }
    tip.textContent = target.dataset.tip;
    tip.style.display = "block";
    const trial = target.closest("[data-trial]");
    document.querySelectorAll(".hot").forEach((e) => e.classList.remove("hot"));
    if (trial) document.querySelectorAll(`[data-trial="${trial.dataset.trial}"]`).forEach((e) => e.classList.add("hot"));
  });
  document.addEventListener("mousemove", (event) => {
    tip.style.left = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 4) + "px";
    tip.style.top = (event.clientY + 16) + "px";
  });

  // Legend: a button per trial hides or shows its marks in every chart; kept across live reloads.
  function hidden() {
    try { return new Set(JSON.parse(sessionStorage.getItem(KEY) || "[]")); } catch (e) { return new Set(); }
  }
  function apply(set) {
    document.querySelectorAll(".legend button[data-trial]").forEach((b) => {
      b.setAttribute("aria-pressed", set.has(b.dataset.trial) ? "false" : "true");
    });
    document.querySelectorAll("svg [data-trial]").forEach((e) => e.classList.toggle("off", set.has(e.dataset.trial)));
  }
  function store(set) {
    try { sessionStorage.setItem(KEY, JSON.stringify([...set])); } catch (e) { /* storage off: no memory */ }
    apply(set);
  }
  document.querySelectorAll(".legend button[data-trial]").forEach((button) => {
    button.addEventListener("click", () => {
      const set = hidden();
      if (set.has(button.dataset.trial)) set.delete(button.dataset.trial); else set.add(button.dataset.trial);
      store(set);
    });
  });
  document.querySelectorAll(".legend button[data-all]").forEach((button) => {
    button.addEventListener("click", () => {
      const all = [...document.querySelectorAll(".legend button[data-trial]")].map((b) => b.dataset.trial);
      store(new Set(button.dataset.all === "hide" ? all : []));
    });
  });

  // A question's evidence: "curves" shows just its arms' trials (the legend says which are hidden),
  // "trials" marks their rows in the trials table.
  document.querySelectorAll("a.evidence[data-show]").forEach((link) => link.addEventListener("click", () => {
    const shown = new Set(link.dataset.show.split(" "));
    const all = [...document.querySelectorAll(".legend button[data-trial]")].map((b) => b.dataset.trial);
    store(new Set(all.filter((t) => !shown.has(t))));
  }));
  document.querySelectorAll("a.evidence[data-rows]").forEach((link) => link.addEventListener("click", () => {
    const picked = new Set(link.dataset.rows.split(" "));
    document.querySelectorAll("#trial-table tr[data-trial]").forEach((tr) => tr.classList.toggle("picked", picked.has(tr.dataset.trial)));
  }));

  // Learning curves: drawn from the #curve-data JSON (analysis/page_curves.py) for the metric, x axis,
  // EMA factor and seed lines picked; each trial's marks in one <g class="trace" data-trial>.
  const dataNode = document.getElementById("curve-data");
  const svg = document.getElementById("curves");
  const NS = "http://www.w3.org/2000/svg";
  const W = 900, H = 380, L = 64, R = 20, T = 28, B = 46;
  const control = (id) => document.getElementById(id) || {};
  function ticks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / Math.max(1, count - 1), power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((s) => s * power).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  const num = (v) => String(+v.toPrecision(6)), short = (v) => String(+v.toPrecision(3));
  function el(parent, name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }
  function smooth(values, factor) {
    let last = null;
    return values.map((v) => (v === null ? null : (last = last === null ? v : factor * last + (1 - factor) * v)));
  }
  function marker(g, end, x, y, colour) {
    const p = (d, fill) => el(g, "path", {d, stroke: colour, fill: fill || "none", class: `end ${end}`});
    if (end === "significant") p(`M${x - 6} ${y - 6}L${x + 6} ${y + 6}M${x - 6} ${y + 6}L${x + 6} ${y - 6}`);
    else if (end === "quota") p(`M${x - 7} ${y}H${x + 7}M${x} ${y - 7}V${y + 7}`);
    else if (end === "cutoff") p(`M${x - 6} ${y - 6}L${x} ${y}L${x + 6} ${y - 6}M${x} ${y}V${y + 7}`);
    else if (end === "finished") el(g, "circle", {cx: x, cy: y, r: 4.5, fill: colour, class: "end"});
    else if (end === "incomplete") p(`M${x - 4} ${y - 6}L${x + 6} ${y}L${x - 4} ${y + 6}Z`);
    else el(g, "rect", {x: x - 5, y: y - 5, width: 10, height: 10, fill: "white", stroke: colour, class: "end"});
  }
  // Zoom: the data ranges a dragged box picked (null: everything), and the ranges last drawn.
  let zoom = null, view = null;
  function draw() {
    const data = JSON.parse(dataNode.textContent);
    const metric = control("curve-metric").value || data.metric, xkey = control("curve-x").value || "epoch";
    const factor = +(control("curve-ema").value || 0), seeds = !!control("curve-seeds").checked;
    const knob = control("curve-colour").value || "", colourOf = (t) => (knob ? t.c[knob] : t.colour);
    const scale = xkey === "time" ? Math.max(...data.trials.flatMap((t) => t.t)) : 0;
    const [unit, per] = scale > 7200 ? ["h", 3600] : scale > 300 ? ["min", 60] : ["s", 1];
    const lines = data.trials.filter((t) => t.v[metric]).map((t) => {
      const v = t.v[metric], xs = xkey === "time" ? t.t.map((s) => s / per) : xkey === "budget" ? t.n : t.x;
      return {t, xs, raw: v.m, m: smooth(v.m, factor), s: v.s.map((a) => smooth(a, factor)), seeds: v.seeds};
    });
    const ys = lines.flatMap((l) => [...l.m, ...l.s.flat()]).filter((v) => v !== null);
    const xs = lines.flatMap((l) => l.xs);
    const lo = Math.min(...ys), hi = Math.max(...ys), pad = (hi - lo) * 0.08 || 0.01;
    const first = Math.min(...xs), last = Math.max(...xs), margin = 0.05 * Math.max(last - first, 1);
    const {x0, x1, y0, y1} = zoom || {x0: first - margin, x1: last + margin, y0: lo - pad, y1: hi + pad};
    view = {x0, x1, y0, y1};
    const X = (v) => +(L + (v - x0) / (x1 - x0 || 1) * (W - L - R)).toFixed(2);
    const Y = (v) => +(H - B - (v - y0) / (y1 - y0 || 1) * (H - T - B)).toFixed(2);
    svg.replaceChildren();
    el(svg, "rect", {x: L, y: T, width: W - L - R, height: H - T - B, class: "area"});
    el(el(el(svg, "defs", {}), "clipPath", {id: "plot-clip"}), "rect", {x: L, y: T, width: W - L - R, height: H - T - B});
    for (const t of ticks(zoom ? y0 : lo - pad / 2, zoom ? y1 : hi + pad / 2, 6)) {
      el(svg, "line", {x1: L, x2: W - R, y1: Y(t), y2: Y(t), class: "grid"});
      el(svg, "text", {x: L - 6, y: Y(t) + 4, "text-anchor": "end"}, num(t));
    }
    const whole = xkey !== "time" && (!zoom || x1 - x0 >= 3) && lines.every((l) => l.xs.every(Number.isInteger));
    const [xa, xb] = zoom ? [x0, x1] : [first, last];
    for (const t of ticks(xa, xb, 8).filter((t) => t >= xa - 1e-9 && (!whole || Number.isInteger(t))))
      el(svg, "text", {x: X(t), y: H - B + 16, "text-anchor": "middle"}, num(t));
    el(svg, "text", {x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", class: "label"},
       xkey === "time" ? `wall time (${unit}, the trial's own)` : xkey === "budget" ? "trial-epochs the search had trained" : "epoch");
    const anySeeds = lines.some((l) => l.seeds.length);
    el(svg, "text", {x: 14, y: (T + H - B) / 2, "text-anchor": "middle", class: "label",
                     transform: `rotate(-90 14 ${(T + H - B) / 2})`}, metric + (anySeeds ? " (mean over seeds)" : ""));
    if (xkey === "epoch") for (const r of data.rungs) {
      el(svg, "line", {x1: X(r), x2: X(r), y1: T, y2: H - B, class: "rung"});
      el(svg, "text", {x: X(r) + 3, y: T - 8, class: "small"}, `rung ${num(r)}`);
    }
    const path = (xs, ys) => "M" + xs.map((x, i) => (ys[i] === null ? null : `${X(x)} ${Y(ys[i])}`)).filter(Boolean).join("L");
    for (const l of lines) {
      const c = colourOf(l.t), g = el(svg, "g", {class: "trace", "data-trial": l.t.id, "data-tip": l.t.label,
                                                 "clip-path": "url(#plot-clip)"});
      if (l.s.length > 1) {
        const top = l.xs.map((_, i) => Math.max(...l.s.map((s) => s[i])));
        const bottom = l.xs.map((_, i) => Math.min(...l.s.map((s) => s[i])));
        el(g, "path", {d: path(l.xs, top) + "L" + path([...l.xs].reverse(), [...bottom].reverse()).slice(1) + "Z",
                       fill: c, class: "band"});
      }
      l.s.forEach((s, k) => el(g, "path", {d: path(l.xs, s), stroke: c, class: "seed" + (seeds ? "" : " hidden"),
                                           "data-tip": `${l.t.label}: seed ${l.seeds[k]}'s own line`}));
      el(g, "path", {d: path(l.xs, l.m), stroke: c, class: "line", ...(l.t.dash ? {"stroke-dasharray": l.t.dash} : {})});
      const n = l.m.length - 1;
      marker(el(g, "g", {"data-tip": `${l.t.label}: ${l.t.why}`}), l.t.end, X(l.xs[n]), Y(l.m[n]), c);
      l.xs.forEach((x, i) => {
        if (l.raw[i] === null) return;
        const where = xkey === "time" ? `${num(x)} ${unit} (epoch ${l.t.x[i]})`
          : xkey === "budget" ? `${num(x)} trial-epochs into the search (epoch ${l.t.x[i]})` : `epoch ${x}`;
        const bySeed = l.seeds.map((s, k) => `; seed ${s}: ${l.t.v[metric].s[k][i]}`).join("");
        el(g, "circle", {cx: X(x), cy: Y(l.m[i]), r: 3, fill: c,
                         "data-tip": `${l.t.label}; ${where}: ${metric} ${l.raw[i]}${bySeed}`});
      });
    }
    document.querySelectorAll(".legend button[data-trial]").forEach((b) => {
      const t = data.trials.find((t) => t.id === b.dataset.trial);
      if (t) b.querySelector(".swatch").style.background = colourOf(t);
    });
    colourKey(data, knob);
    control("curve-ema-value").textContent = factor ? factor.toFixed(2) : "off";
    const per_ = {time: "wall time", budget: "trial-epoch of the search", epoch: "epoch"}[xkey];
    control("curve-zoom-reset").disabled = !zoom;
    control("curve-caption").textContent = `${metric} per ${per_}, one trace per ` +
      "configuration" + (anySeeds ? "; line: the mean over its lockstep seeds, band: their min–max" : "") +
      (seeds && anySeeds ? ", thin lines: each seed" : "") +
      (factor ? `; smoothed by an EMA of factor ${factor.toFixed(2)} (hover shows the raw values)` : "; not smoothed") +
      (zoom ? `; zoomed to x ${short(x0)}–${short(x1)}, ${metric} ${short(y0)}–${short(y1)} (reset zoom to see it all)` : "") + ".";
    apply(hidden());
  }
  // The key of "colour by": a swatch per value, or the ramp from the lowest to the highest value.
  function colourKey(data, knob) {
    const key = document.getElementById("curve-key");
    if (!key) return;
    key.replaceChildren();
    if (!knob) return;
    const k = data.knobs[knob], swatch = (background) => {
      const s = document.createElement("span");
      s.className = k.ramp ? "ramp" : "swatch";
      s.style.background = background;
      return s;
    };
    key.append(`colour: ${knob}${k.ramp && k.log ? " (log scale)" : ""} `);
    if (k.ramp) key.append(k.lo + " ", swatch(`linear-gradient(to right, ${k.ramp.join(", ")})`), " " + k.hi);
    else k.values.forEach(([value, colour]) => key.append(swatch(colour), value + "  "));
  }
  const VIEW = KEY + ":curves";
  const controls = ["curve-metric", "curve-x", "curve-colour", "curve-ema", "curve-seeds"].map((id) => document.getElementById(id)).filter(Boolean);
  if (dataNode && svg) {
    try {
      const saved = JSON.parse(sessionStorage.getItem(VIEW) || "{}");
      controls.forEach((c) => {
        if (!(c.id in saved)) return;
        if (c.type === "checkbox") c.checked = saved[c.id]; else if (c.tagName !== "SELECT" || c.querySelector(`option[value="${CSS.escape(saved[c.id])}"]`)) c.value = saved[c.id];
      });
    } catch (e) { /* storage off: the defaults */ }
    controls.forEach((c) => c.addEventListener("input", () => {
      if (c.id === "curve-metric" || c.id === "curve-x") zoom = null;
      try { sessionStorage.setItem(VIEW, JSON.stringify(Object.fromEntries(controls.map((k) => [k.id, k.type === "checkbox" ? k.checked : k.value])))); } catch (e) { /* no memory */ }
      draw();
    }));
    draw();
    // A box dragged on the chart zooms into it; a double-click or the button shows everything again.
    const point = (event) => {
      const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(svg.getScreenCTM().inverse());
      return {x: Math.min(Math.max(p.x, L), W - R), y: Math.min(Math.max(p.y, T), H - B)};
    };
    let start = null, box = null;
    svg.addEventListener("mousedown", (event) => {
      start = point(event);
      box = el(svg, "rect", {x: start.x, y: start.y, width: 0, height: 0, class: "zoombox"});
      event.preventDefault();
    });
    svg.addEventListener("mousemove", (event) => {
      if (!start) return;
      const p = point(event);
      Object.entries({x: Math.min(p.x, start.x), y: Math.min(p.y, start.y), width: Math.abs(p.x - start.x),
                      height: Math.abs(p.y - start.y)}).forEach(([k, v]) => box.setAttribute(k, v));
    });
    const unX = (v) => view.x0 + (v - L) / (W - L - R) * (view.x1 - view.x0);
    const unY = (v) => view.y0 + (H - B - v) / (H - T - B) * (view.y1 - view.y0);
    window.addEventListener("mouseup", (event) => {
      if (!start) return;
      const p = point(event), from = start;
      start = null;
      box.remove();
      if (Math.abs(p.x - from.x) < 6 || Math.abs(p.y - from.y) < 6) return;  // a click, not a box
      zoom = {x0: unX(Math.min(p.x, from.x)), x1: unX(Math.max(p.x, from.x)),
              y0: unY(Math.max(p.y, from.y)), y1: unY(Math.min(p.y, from.y))};
      draw();
    });
    const reset = () => { zoom = null; draw(); };
    svg.addEventListener("dblclick", reset);
    control("curve-zoom-reset").addEventListener?.("click", reset);
  } else {
    apply(hidden());
  }

  // Tables: a click on a header sorts by that column (numbers by value, text as text).
  document.querySelectorAll("table.sortable").forEach((table) => {
    table.querySelectorAll("th").forEach((th, column) => {
      th.addEventListener("click", () => {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const body = table.tBodies[0];
        const rows = [...body.rows];
        const key = (row) => {
          const cell = row.cells[column];
          const value = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
          const number = parseFloat(value);
          return value !== "" && !isNaN(number) && isFinite(value) ? number : value;
        };
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
          return ascending ? order : -order;
        });
        rows.forEach((row) => body.appendChild(row));
      });
    });
  });
})();
