// ringpool operator console: the mailbox cards and their SVG charts.
//
// One card per mailbox (its stats, threads, autoscaler reason) and two charts (depth,
// processed/failed per second) drawn from a bounded ring of one-second snapshots.
// Everything is built with el()/svg() from dom.js: strings only ever become text nodes.

import { api, el, isNum, int, compact, secs, ms, setText, state, status, svg, ui } from './dom.js';
import { adminBlock, togglePanel, updateAdminControls } from './letters.js';

const POINTS = 300; // chart history: 5 minutes of one-second snapshots
// ---------------------------------------------------------------------------------------------
// Mailbox cards

export function ensureBox(name, kind) {
  let box = state.boxes.get(name);
  if (box) return box;
  const ring = { head: 0, len: 0 }; // a bounded ring of POINTS samples per series
  for (const k of ['t', 'depth', 'proc', 'fail']) ring[k] = new Float64Array(POINTS);
  // f: the card's value elements; panel: its open dead-letter panel, if any
  box = { name, info: { name, kind }, ring, f: {}, lastDraw: 0, drawTimer: null, lastDlSize: undefined, panel: null };
  box.card = makeCard(box);
  ui.placeholder.hidden = true;
  ui.cards.append(box.card);
  state.boxes.set(name, box);
  return box;
}

function makeCard(box) {
  const f = box.f;
  const v = (key, testid) => (f[key] = el('span', { class: 'v', 'data-testid': testid }, '—'));
  const stat = (label, key, testid) => el('div', { class: 'stat' }, el('span', { class: 'k' }, label), v(key, testid));
  f.open = el('button', { type: 'button', class: 'open', 'data-testid': 'open-dead-letters', 'aria-expanded': 'false', onclick: () => togglePanel(box) }, 'dead letters ▾');
  f.pause = el('button', { type: 'button', class: 'admin', 'data-testid': 'pause-toggle', 'data-help': 'pause: start nothing new until resumed (admin)', onclick: () => pauseOrResume(box) }, 'pause');
  f.depthChart = makeChart(`depth of ${box.name}`, [{ key: 'depth', label: 'depth', cls: 's-depth' }]);
  f.rateChart = makeChart(`throughput of ${box.name}`, [{ key: 'proc', label: 'processed/s', cls: 's-proc' }, { key: 'fail', label: 'failed/s', cls: 's-fail' }]);
  return el('article', { class: 'card', 'data-testid': 'mailbox-card', 'data-mailbox': box.name },
    el('header', { class: 'card-head' }, el('h2', { title: box.name }, box.name), (f.kind = el('span', { class: 'badge kind' }, '')),
      (f.paused = el('span', { class: 'badge paused', 'data-testid': 'paused', hidden: '' }, '')), (f.breaker = el('span', { class: 'badge breaker', 'data-testid': 'breaker', hidden: '' }, ''))),
    el('div', { class: 'stats' },
      stat('depth', 'depth', 'depth'), stat('in flight', 'inFlight'), stat('delayed', 'delayed'),
      stat('processed', 'processed'), stat('failed', 'failed'), stat('dead letters', 'dead', 'dead-letter-count')),
    el('div', { class: 'stats times' }, stat('oldest', 'oldest'), stat('est. lag', 'lag'), stat('e2e p50', 'p50'), stat('e2e p99', 'p99')),
    (f.stream = el('div', { class: 'line stream', 'data-testid': 'stream-line', hidden: '' })),
    el('div', { class: 'line' },
      el('span', { class: 'k' }, 'threads × concurrency'), v('threads'),
      (f.auto = el('span', { class: 'badge' }, '')), (f.reason = el('span', { class: 'reason' }, ''))),
    f.depthChart.root,
    f.rateChart.root,
    el('footer', { class: 'card-foot' }, f.open, f.pause));
}

export function renderCard(box) {
  const s = box.info;
  const f = box.f;
  setText(f.kind, s.kind ?? '');
  // Protecting the downstream: a pause (rt.pause, a handler's retryAfter), the breaker, the rate limit.
  const paused = isNum(s.pausedForMs) && s.pausedForMs !== 0;
  f.paused.hidden = !paused;
  setText(f.pause, paused ? 'resume' : 'pause');
  f.pause.dataset.help = paused ? 'resume: start messages again now (admin)' : 'pause: start nothing new until resumed (admin)';
  const block = adminBlock();
  f.pause.disabled = !!block || !!box.pausing;
  f.pause.title = block || f.pause.dataset.help;
  if (paused) setText(f.paused, s.pausedForMs < 0 ? 'paused' : `paused ${secs(s.pausedForMs / 1000)}`);
  const br = typeof s.breaker === 'string' && s.breaker !== 'closed' ? s.breaker : null;
  f.breaker.hidden = br === null;
  if (br !== null) setText(f.breaker, `breaker ${br}`, s.rateLimit ? `rate limit ${s.rateLimit.max} per ${s.rateLimit.perMs} ms` : '');
  setText(f.depth, int(s.depth));
  setText(f.inFlight, int(s.inFlight));
  setText(f.delayed, int(s.delayed));
  setText(f.processed, compact(s.processed), int(s.processed));
  setText(f.failed, compact(s.failed), int(s.failed));
  setText(f.dead, int(s.deadLetterSize));
  const range = isNum(s.minThreads) && isNum(s.maxThreads) ? `threads ${s.minThreads}-${s.maxThreads}` : '';
  setText(f.threads, `${int(s.threads)} × ${int(s.concurrency)}`, range);
  setText(f.auto, s.autoscale ? 'autoscale on' : 'autoscale off');
  f.auto.classList.toggle('on', !!s.autoscale);
  const reason = typeof s.scaleReason === 'string' && s.scaleReason ? s.scaleReason : '—';
  setText(f.reason, reason, `autoscaler's last reason: ${reason}`);
  setText(f.oldest, secs(s.oldestAgeSeconds));
  setText(f.lag, secs(s.estimatedLagSeconds));
  setText(f.p50, ms(s.e2eP50Ms));
  setText(f.p99, ms(s.e2eP99Ms));
  // A Redis mailbox: its stream, its delayed set (all senders'), its ask traffic.
  const st = s.stream;
  f.stream.hidden = !st;
  if (st) {
    const next = isNum(st.nextDueInMs) && st.nextDueInMs >= 0 ? `, next in ${secs(st.nextDueInMs / 1000)}` : '';
    setText(
      f.stream,
      `stream ${st.connected ? '' : '(unreachable) '}lag ${int(st.lag)} · pending ${int(st.pending)} · delayed set ${int(st.delayedSet)}${next} · asks open ${int(st.asksOpen)} · replies in ${int(st.repliesReceived)} (dropped ${int(st.repliesDropped)}) · out ${int(st.repliesSent)}`,
    );
  }
}

/** The card's pause / resume button: POST .../pause (until resumed) or .../resume with the admin token. */
async function pauseOrResume(box) {
  const resume = box.f.pause.textContent === 'resume';
  const op = resume ? 'resume' : 'pause';
  if (!resume && !window.confirm(`Pause mailbox "${box.name}"? It starts nothing new until resumed (its messages wait).`)) return status('pause cancelled', 'info');
  box.pausing = true;
  updateAdminControls();
  try {
    const body = await api(`/api/mailboxes/${encodeURIComponent(box.name)}/${op}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${state.token}`, 'Content-Type': 'application/json' },
      body: '{}',
    });
    box.info = { ...box.info, pausedForMs: body?.pausedForMs ?? 0 };
    status(`${box.name} ${body?.paused ? 'paused' : 'resumed'}`, 'ok');
  } catch (e) {
    status(`${op} failed (${box.name}): ${e.message}`, 'error');
  } finally {
    box.pausing = false;
    renderCard(box);
    updateAdminControls();
  }
}

// ---------------------------------------------------------------------------------------------
// Charts: one SVG per chart, a polyline per series, x = seconds before the latest snapshot

function makeChart(title, series) {
  const lines = series.map((s) => ({ ...s, line: svg('polyline', { class: `ln ${s.cls}`, fill: 'none', 'vector-effect': 'non-scaling-stroke', points: '' }), now: el('span', { class: 'now' }, '—') }));
  const max = el('span', { class: 'ymax', title: 'y-axis max' }, '');
  const plot = svg('svg', { class: 'plot', viewBox: `0 0 ${POINTS - 1} 100`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title }, lines.map((l) => l.line));
  const legend = el('div', { class: 'legend' }, lines.map((l) => el('span', { class: `key ${l.cls}` }, `${l.label} `, l.now)), max);
  return { root: el('div', { class: 'chart' }, legend, plot), lines, max };
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  const m = v / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

export function pushPoint(box, t, snap) {
  const r = box.ring;
  const i = r.head;
  r.t[i] = t;
  r.depth[i] = isNum(snap.depth) ? snap.depth : 0;
  r.proc[i] = isNum(snap.processedPerSec) ? snap.processedPerSec : 0;
  r.fail[i] = isNum(snap.failedPerSec) ? snap.failedPerSec : 0;
  r.head = (i + 1) % POINTS;
  r.len = Math.min(r.len + 1, POINTS);
}

/** Redraws a card's charts at most once a second (trailing edge). */
export function scheduleDraw(box) {
  if (box.drawTimer) return;
  const wait = Math.max(0, 1000 - (performance.now() - box.lastDraw));
  box.drawTimer = setTimeout(() => {
    box.drawTimer = null;
    box.lastDraw = performance.now();
    drawChart(box, box.f.depthChart);
    drawChart(box, box.f.rateChart);
  }, wait);
}

function drawChart(box, chart) {
  const r = box.ring;
  if (!r.len) return;
  const first = (r.head - r.len + POINTS) % POINTS;
  const last = (r.head - 1 + POINTS) % POINTS;
  const tEnd = r.t[last];
  let peak = 0;
  for (const l of chart.lines) for (let k = 0; k < r.len; k++) peak = Math.max(peak, r[l.key][(first + k) % POINTS]);
  const top = niceMax(peak);
  for (const l of chart.lines) {
    const data = r[l.key];
    const pts = [];
    for (let k = 0; k < r.len; k++) {
      const i = (first + k) % POINTS;
      const x = POINTS - 1 - (tEnd - r.t[i]) / 1000;
      if (x < 0) continue;
      pts.push(`${x.toFixed(1)},${(98 - (data[i] / top) * 96).toFixed(1)}`);
    }
    l.line.setAttribute('points', pts.join(' '));
    setText(l.now, compact(data[last]));
  }
  setText(chart.max, `max ${compact(top)}`);
}
