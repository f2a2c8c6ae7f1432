// ringpool operator console: each mailbox card's two time-series charts (uPlot).
//
// "queue": depth and in flight (messages, left axis) and threads (right axis, stepped);
// "throughput": processed and failed per second (left axis) and end-to-end p50 / p99 (ms, right axis).
// Time runs along x (local clock); hovering shows every series' value at that second in the
// legend, which otherwise shows the latest values. The data are the server's one-second
// snapshots: `api/history` (the last 10 minutes) fills them when the page opens, the SSE feed
// appends; at most WINDOW_S seconds are kept.
//
// uPlot (uplot.js, MIT) is loaded by index.html as a classic script: it defines `window.uPlot`.
// It draws on canvas and styles its elements through the CSSOM, which the page's CSP allows
// (style-src 'self' forbids only markup styles). Without it the cards still work, chartless.

import { clock, compact, el, isNum, ms } from './dom.js';

/** Seconds of history a chart holds: the server's history is 10 minutes. */
export const WINDOW_S = 600;
/** A hole in the snapshots longer than this (the page slept, the server restarted) breaks the lines. */
const GAP_S = 3.5;
const HEIGHT = 120;

const KEYS = ['t', 'depth', 'inFlight', 'threads', 'proc', 'fail', 'p50', 'p99'];

/** An empty series store for a box: parallel arrays, t in seconds (uPlot's time unit). */
export function newData() {
  const d = {};
  for (const k of KEYS) d[k] = [];
  return d;
}

const num = (v) => (isNum(v) ? v : null);

/**
 * Appends one snapshot of a mailbox (t in ms). Returns false, and changes nothing, for a
 * snapshot not newer than the last one held (history and the live feed overlap by a frame).
 */
export function addPoint(box, tMs, snap) {
  const d = box.data;
  const t = tMs / 1000;
  const n = d.t.length;
  if (n && !(t > d.t[n - 1])) return false;
  if (n && t - d.t[n - 1] > GAP_S) {
    // one point of nulls just after the last: the lines stop there and start again at t
    d.t.push(d.t[n - 1] + 0.001);
    for (const k of KEYS) if (k !== 't') d[k].push(null);
  }
  d.t.push(t);
  d.depth.push(num(snap.depth));
  d.inFlight.push(num(snap.inFlight));
  d.threads.push(num(snap.threads));
  d.proc.push(num(snap.processedPerSec));
  d.fail.push(num(snap.failedPerSec));
  d.p50.push(num(snap.e2eP50Ms));
  d.p99.push(num(snap.e2eP99Ms));
  let drop = 0;
  while (drop < d.t.length && d.t[drop] < t - WINDOW_S) drop++;
  if (drop) for (const k of KEYS) d[k].splice(0, drop);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Drawing

let palette = null;
function colors() {
  if (palette) return palette;
  const css = getComputedStyle(document.documentElement);
  const v = (name, dflt) => css.getPropertyValue(name).trim() || dflt;
  palette = {
    fg: v('--fg', '#1d2330'), muted: v('--muted', '#667085'), grid: v('--grid', '#e6e9ee'),
    depth: v('--depth', '#2f6fde'), inflight: v('--inflight', '#7c3aed'), threads: v('--threads', '#b25e09'),
    proc: v('--proc', '#16a34a'), fail: v('--fail', '#dc2626'), p50: v('--p50', '#0891b2'), p99: v('--p99', '#9333ea'),
  };
  return palette;
}

/** A #rrggbb colour at 13 % opacity (anything else: no fill). */
const translucent = (hex) => (/^#[0-9a-f]{6}$/i.test(hex) ? `${hex}22` : undefined);

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  const m = v / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

const zeroTo = (_u, _min, max) => [0, niceMax(max)];
const pad2 = (n) => String(n).padStart(2, '0');

/** x-axis tick labels: HH:MM, with seconds when the ticks are closer than a minute. */
function timeTicks(_u, splits, _ax, _space, incr) {
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    return incr < 60 ? `${hm}:${pad2(d.getSeconds())}` : hm;
  });
}

/** Whole-number steps for axes of counts (messages, threads): no 0.5 message. */
const INT_INCRS = [];
for (let p = 1; p <= 1e9; p *= 10) INT_INCRS.push(p, 2 * p, 5 * p);

const countTicks = (_u, splits) => splits.map((v) => compact(v));
const msTicks = (_u, splits) => splits.map((v) => (v >= 1000 ? `${+(v / 1000).toFixed(1)}s` : String(+v.toFixed(1))));

function axis(c, extra) {
  return {
    stroke: c.muted,
    font: '10px system-ui, sans-serif',
    labelFont: '10px system-ui, sans-serif',
    grid: { stroke: c.grid, width: 1 },
    ticks: { stroke: c.grid, width: 1, size: 3 },
    gap: 2,
    size: 34,
    labelSize: 12,
    labelGap: 0,
    ...extra,
  };
}

const legendCount = (_u, v) => (v == null ? '—' : compact(v));
const legendRate = (_u, v) => (v == null ? '—' : `${compact(v)}/s`);
const legendMs = (_u, v) => (v == null ? '—' : ms(v));
const legendTime = (_u, v) => (v == null ? '—' : clock(v * 1000));

function queueOptions(c, width) {
  return {
    width,
    height: HEIGHT,
    pxAlign: 1,
    cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 5 } },
    legend: { live: true },
    scales: { x: { time: true }, n: { range: zeroTo }, thr: { range: (_u, _min, max) => [0, Math.max(2, Math.ceil((max || 1) * 1.25))] } },
    axes: [
      axis(c, { space: 55, values: timeTicks, size: 22, grid: { show: false } }),
      axis(c, { scale: 'n', label: 'messages', values: countTicks, incrs: INT_INCRS }),
      axis(c, { scale: 'thr', side: 1, label: 'threads', grid: { show: false }, incrs: INT_INCRS, values: countTicks, size: 28 }),
    ],
    series: [
      { label: 'time', value: legendTime },
      { label: 'depth', scale: 'n', stroke: c.depth, width: 1.5, fill: translucent(c.depth), value: legendCount, points: { show: false } },
      { label: 'in flight', scale: 'n', stroke: c.inflight, width: 1, value: legendCount, points: { show: false } },
      { label: 'threads', scale: 'thr', stroke: c.threads, width: 1.5, paths: stepped(), value: legendCount, points: { show: false } },
    ],
    hooks: { setLegend: [latestWhenIdle] },
  };
}

function rateOptions(c, width) {
  return {
    width,
    height: HEIGHT,
    pxAlign: 1,
    cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 5 } },
    legend: { live: true },
    scales: { x: { time: true }, r: { range: zeroTo }, ms: { range: zeroTo } },
    axes: [
      axis(c, { space: 55, values: timeTicks, size: 22, grid: { show: false } }),
      axis(c, { scale: 'r', label: 'msg/s', values: countTicks }),
      axis(c, { scale: 'ms', side: 1, label: 'e2e ms', grid: { show: false }, values: msTicks, size: 34 }),
    ],
    series: [
      { label: 'time', value: legendTime },
      { label: 'processed', scale: 'r', stroke: c.proc, width: 1.5, value: legendRate, points: { show: false } },
      { label: 'failed', scale: 'r', stroke: c.fail, width: 1.5, value: legendRate, points: { show: false } },
      { label: 'p50', scale: 'ms', stroke: c.p50, width: 1, dash: [4, 3], value: legendMs, points: { show: false } },
      { label: 'p99', scale: 'ms', stroke: c.p99, width: 1, dash: [2, 2], value: legendMs, points: { show: false } },
    ],
    hooks: { setLegend: [latestWhenIdle] },
  };
}

function stepped() {
  const U = window.uPlot;
  return U?.paths?.stepped ? U.paths.stepped({ align: 1 }) : undefined;
}

/** Not hovering: the legend shows the latest values rather than dashes. */
function latestWhenIdle(u) {
  const n = u.data[0].length;
  if (u.legend.idx == null && n > 0) u.setLegend({ idx: n - 1 }, false);
}

const resizer = typeof ResizeObserver === 'function'
  ? new ResizeObserver((entries) => {
    for (const e of entries) {
      const chart = e.target.__chart;
      const w = Math.floor(e.contentRect.width);
      if (chart?.u && w > 0 && w !== chart.width) {
        chart.width = w;
        chart.u.setSize({ width: w, height: HEIGHT });
      }
    }
  })
  : null;

/**
 * Charts are made and drawn only while on screen (an IntersectionObserver), a few per frame:
 * 20 cards of two charts each must not hold the page at load; their data are kept all the same.
 */
const onScreen = typeof IntersectionObserver === 'function'
  ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      const box = e.target.__box;
      if (!box) continue;
      box.f.charts.visible = e.isIntersecting;
      if (e.isIntersecting) queueDraw(box);
    }
  }, { rootMargin: '200px 0px' })
  : null;

const waiting = new Set();
let pumping = false;
function queueDraw(box) {
  waiting.add(box);
  if (pumping) return;
  pumping = true;
  requestAnimationFrame(pump);
}
function pump() {
  const start = performance.now();
  for (const box of waiting) {
    waiting.delete(box);
    paint(box);
    if (performance.now() - start > 24) break; // the rest next frame
  }
  if (waiting.size) requestAnimationFrame(pump);
  else pumping = false;
}

/**
 * The card's chart block (attach it, then call drawCharts once it is in the document: uPlot
 * needs the width). `charts.queue.u` / `charts.rate.u` are the uPlot instances, made when the
 * card first comes on screen.
 */
export function makeCharts(box) {
  const holder = (name, label) => el('div', { class: 'uchart', 'data-testid': `chart-${name}`, 'data-mailbox': box.name, role: 'img', 'aria-label': `${label} of ${box.name}` });
  const queue = { el: holder('queue', 'depth, in flight and threads'), u: null, width: 0 };
  const rate = { el: holder('rate', 'processed/s, failed/s and end-to-end latency'), u: null, width: 0 };
  const root = el('div', { class: 'charts' }, queue.el, rate.el);
  // visible: null until known (the observer's first word, or measured when drawn at once)
  return { root, queue, rate, visible: onScreen ? null : true, observed: false, failed: false };
}

function startCharts(box) {
  const ch = box.f.charts;
  const U = window.uPlot;
  if (typeof U !== 'function') {
    if (!ch.failed) ch.root.replaceChildren(el('p', { class: 'muted small' }, 'charts unavailable: uplot.js did not load'));
    ch.failed = true;
    return;
  }
  const c = colors();
  for (const [chart, make] of [[ch.queue, queueOptions], [ch.rate, rateOptions]]) {
    if (chart.u) continue;
    const w = Math.floor(chart.el.clientWidth) || 300;
    chart.width = w;
    chart.u = new U(make(c, w), dataOf(box, chart === ch.queue), chart.el);
    chart.el.__chart = chart;
    resizer?.observe(chart.el);
  }
}

function dataOf(box, queue) {
  const d = box.data;
  return queue ? [d.t, d.depth, d.inFlight, d.threads] : [d.t, d.proc, d.fail, d.p50, d.p99];
}

function paint(box) {
  const ch = box.f.charts;
  if (!ch || ch.failed || !box.card.isConnected) return;
  if (ch.visible === null) {
    const r = ch.root.getBoundingClientRect();
    ch.visible = r.bottom > -200 && r.top < window.innerHeight + 200;
  }
  if (!ch.visible) return;
  if (!ch.queue.u) return startCharts(box); // made with the data as they are
  for (const [chart, queue] of [[ch.queue, true], [ch.rate, false]]) {
    const u = chart.u;
    if (!u) continue;
    u.setData(dataOf(box, queue));
    // not hovered (uPlot puts the cursor at a negative left): the legend follows the latest second
    if (!(u.cursor.left >= 0) && u.data[0].length) u.setLegend({ idx: u.data[0].length - 1 }, false);
  }
}

/**
 * Redraws a box's charts from its data (the arrays are shared with uPlot: setData re-reads them);
 * a chart off screen is drawn when it comes on. `now`: at once (the history at open), else on
 * the next frame.
 */
export function drawCharts(box, now = false) {
  const ch = box.f.charts;
  if (!ch || ch.failed) return;
  if (!ch.observed && onScreen) {
    ch.observed = true;
    ch.root.__box = box;
    onScreen.observe(ch.root);
  }
  if (now) paint(box);
  else if (ch.visible) queueDraw(box);
}
