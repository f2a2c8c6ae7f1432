// ringpool operator console: the browser page's script (plain ES module, no build step, no dependency).
//
// Talks to the same-origin API: GET /api/mailboxes (admin flag, full stats), the SSE stream
// /api/events (snapshot / scale / dead-letter), GET /api/mailboxes/:name/dead-letters (one page)
// and POST .../dead-letters/redrive|purge (Bearer token).
//
// Security: everything that comes from the server (names, payloads, keys, errors, stacks) is
// rendered as text: el() below only ever uses createTextNode / setAttribute / properties.
// Markup is never built from strings; no inline handlers. The admin token lives in `state.token`
// and nowhere else (no storage, no cookie).

const POINTS = 300; // chart history: 5 minutes of one-second snapshots
const PAGE = 50; // dead letters per page (the only rows ever in the DOM)
const REASONS = ['max_attempts', 'poison', 'timeout', 'unrecoverable'];
const TOTALS_POLL_MS = 5000; // processed/failed totals are not in snapshots: re-read /api/mailboxes
const REFRESH_MS = 500; // an open dead-letter table reloads at most this often on events
const SVG_NS = 'http://www.w3.org/2000/svg';

const state = {
  admin: false, // the server has an admin token configured
  token: '', // what the operator typed; memory only
  boxes: new Map(), // mailbox name -> box (see ensureBox)
  conn: null, // the EventSource
};

const $ = (sel) => document.querySelector(sel);
const ui = {};

// ---------------------------------------------------------------------------------------------
// DOM helpers

function setAttrs(node, attrs) {
  if (!attrs) return node;
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) {
      if (typeof v !== 'function') throw new TypeError(`${k}: handlers must be functions`);
      node.addEventListener(k.slice(2), v);
    } else {
      node.setAttribute(k, v === true ? '' : String(v));
    }
  }
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** el('td', { class: 'num' }, 'text', child, ...): strings become text nodes, never markup. */
const el = (tag, attrs, ...children) => append(setAttrs(document.createElement(tag), attrs), children);
const svg = (tag, attrs, ...children) => append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);

/** Sets a node's text only when it changed (no needless layout work at 20 cards x 1 Hz). */
function setText(node, text, title) {
  const s = String(text);
  if (node.textContent !== s) node.textContent = s;
  if (title !== undefined && node.title !== title) node.title = title;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const isNum = (n) => typeof n === 'number' && Number.isFinite(n);
const int = (n) => (isNum(n) ? String(Math.round(n)) : '—');

function compact(n) {
  if (!isNum(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${+(n / 1e3).toFixed(1)}k`;
  if (a >= 10 || Number.isInteger(n)) return String(Math.round(n));
  return String(+n.toFixed(a >= 1 ? 1 : 2));
}

function secs(s) {
  if (!isNum(s)) return '—';
  if (s <= 0) return '0 s';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function ms(v) {
  if (!isNum(v)) return '—';
  if (v >= 1000) return secs(v / 1000);
  return `${v < 1 ? v.toFixed(2) : v < 10 ? v.toFixed(1) : Math.round(v)} ms`;
}

const when = (t) => (isNum(t) ? new Date(t).toLocaleString(undefined, { hour12: false }) : '—');
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

function truncate(s, max) {
  const line = String(s).split('\n', 1)[0];
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function pretty(v) {
  try {
    return JSON.stringify(v, null, 2) ?? String(v);
  } catch {
    return String(v);
  }
}

// ---------------------------------------------------------------------------------------------
// Status line and HTTP

function status(text, kind = 'info') {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
}

/** fetch + JSON; throws Error("<status>: <server's error message>") on a non-2xx reply. */
async function api(url, init) {
  const res = await fetch(url, { cache: 'no-store', ...init });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const msg = body && typeof body.error === 'string' ? body.error : res.statusText || 'request failed';
    throw new Error(`${res.status}: ${msg}`);
  }
  return body;
}

const dlUrl = (name, tail = '') => `/api/mailboxes/${encodeURIComponent(name)}/dead-letters${tail}`;

// ---------------------------------------------------------------------------------------------
// Mailbox cards

function ensureBox(name, kind) {
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
  f.depthChart = makeChart(`depth of ${box.name}`, [{ key: 'depth', label: 'depth', cls: 's-depth' }]);
  f.rateChart = makeChart(`throughput of ${box.name}`, [{ key: 'proc', label: 'processed/s', cls: 's-proc' }, { key: 'fail', label: 'failed/s', cls: 's-fail' }]);
  return el('article', { class: 'card', 'data-testid': 'mailbox-card', 'data-mailbox': box.name },
    el('header', { class: 'card-head' }, el('h2', { title: box.name }, box.name), (f.kind = el('span', { class: 'badge kind' }, ''))),
    el('div', { class: 'stats' },
      stat('depth', 'depth', 'depth'), stat('in flight', 'inFlight'), stat('delayed', 'delayed'),
      stat('processed', 'processed'), stat('failed', 'failed'), stat('dead letters', 'dead', 'dead-letter-count')),
    el('div', { class: 'stats times' }, stat('oldest', 'oldest'), stat('est. lag', 'lag'), stat('e2e p50', 'p50'), stat('e2e p99', 'p99')),
    el('div', { class: 'line' },
      el('span', { class: 'k' }, 'threads × concurrency'), v('threads'),
      (f.auto = el('span', { class: 'badge' }, '')), (f.reason = el('span', { class: 'reason' }, ''))),
    f.depthChart.root,
    f.rateChart.root,
    el('footer', { class: 'card-foot' }, f.open));
}

function renderCard(box) {
  const s = box.info;
  const f = box.f;
  setText(f.kind, s.kind ?? '');
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

function pushPoint(box, t, snap) {
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
function scheduleDraw(box) {
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

// ---------------------------------------------------------------------------------------------
// Admin controls: enabled only with a server-side token and a typed one

function adminBlock() {
  if (!state.admin) return 'read-only console: the server has no admin token configured';
  if (!state.token) return 'type the admin token at the top of the page first';
  return '';
}

function adminButton(label, testid, help, onclick) {
  return el('button', { type: 'button', class: 'admin', 'data-testid': testid, 'data-help': help, onclick }, label);
}

function updateAdminControls() {
  const block = adminBlock();
  ui.mode.textContent = state.admin ? '' : 'read-only: no admin token configured on the server';
  for (const box of state.boxes.values()) {
    const p = box.panel;
    if (!p) continue;
    for (const b of p.root.querySelectorAll('button.admin')) {
      b.disabled = !!block || p.busy;
      b.title = block || (p.busy ? 'working…' : b.dataset.help);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dead-letter panel: one page of a mailbox's dead letters, a detail view, the admin actions

function togglePanel(box) {
  if (box.panel) {
    clearTimeout(box.panel.timer);
    box.panel.root.remove();
    box.panel = null;
    box.f.open.setAttribute('aria-expanded', 'false');
    box.card.classList.remove('expanded');
    return;
  }
  const p = makePanel(box);
  box.panel = p;
  box.card.after(p.root); // the grid places it full-width right under the card's row
  box.f.open.setAttribute('aria-expanded', 'true');
  box.card.classList.add('expanded');
  updateAdminControls();
  loadPage(p);
  p.root.scrollIntoView({ block: 'nearest' });
}

function makePanel(box) {
  const p = { box, offset: 0, reason: '', total: 0, reasons: {}, letters: [], byId: new Map(), selected: new Set(), seq: 0, timer: null, lastLoad: 0, busy: false, detail: null, detailId: null };
  p.filter = el('select', { 'data-testid': 'reason-filter', 'aria-label': 'filter by reason', onchange: () => { p.reason = p.filter.value; p.offset = 0; closeDetail(p); loadPage(p); } },
    el('option', { value: '' }, 'all'), REASONS.map((r) => el('option', { value: r }, r)));
  p.prev = el('button', { type: 'button', 'data-testid': 'page-prev', onclick: () => turn(p, -1) }, '‹ prev');
  p.next = el('button', { type: 'button', 'data-testid': 'page-next', onclick: () => turn(p, 1) }, 'next ›');
  p.range = el('span', { class: 'range', 'data-testid': 'page-range' }, '');
  p.redriveSel = adminButton('Redrive selected', 'redrive-selected', 'put the checked letters back into the mailbox', () => act(p, 'redrive', selectedIds(p)));
  p.purgeSel = adminButton('Purge selected', 'purge-selected', 'delete the checked letters for good', () => act(p, 'purge', selectedIds(p)));
  p.checkAll = el('input', { type: 'checkbox', 'data-testid': 'select-page', 'aria-label': 'select every letter on this page', onchange: () => {
    for (const id of p.byId.keys()) {
      if (p.checkAll.checked) p.selected.add(id);
      else p.selected.delete(id);
    }
    renderRows(p);
  } });
  p.tbody = el('tbody', { onclick: (e) => rowClick(p, e), onchange: (e) => rowCheck(p, e), onkeydown: (e) => rowKey(p, e) });
  p.message = el('p', { class: 'empty', hidden: true }, '');
  p.body = el('div', { class: 'panel-body' },
    el('div', { class: 'table-wrap' },
      el('table', { class: 'letters' },
        el('thead', null, el('tr', null, el('th', { class: 'c' }, p.checkAll), ['id', 'reason', 'attempts', 'key', 'dead at', 'last error'].map((h) => el('th', { class: h === 'id' || h === 'attempts' ? 'num' : null }, h)))),
        p.tbody),
      p.message));
  p.root = el('section', { class: 'panel', 'data-testid': 'dead-letters', 'data-mailbox': box.name, 'aria-label': `dead letters of ${box.name}` },
    el('header', { class: 'panel-head' },
      el('h3', null, 'dead letters · ', el('span', { class: 'mono' }, box.name)),
      el('button', { type: 'button', class: 'x', title: 'close', 'aria-label': 'close', onclick: () => togglePanel(box) }, '×')),
    el('div', { class: 'toolbar' },
      el('label', null, 'reason ', p.filter),
      el('span', { class: 'pager' }, p.prev, p.range, p.next),
      el('span', { class: 'actions' }, p.redriveSel, p.purgeSel,
        adminButton('Redrive all', 'redrive-all', 'put every dead letter of this mailbox back (all reasons)', () => act(p, 'redrive', null)),
        adminButton('Purge all', 'purge-all', 'delete every dead letter of this mailbox (all reasons)', () => act(p, 'purge', null)))),
    p.body);
  return p;
}

function turn(p, dir) {
  const next = p.offset + dir * PAGE;
  if (next < 0 || next >= p.total) return;
  p.offset = next;
  closeDetail(p);
  loadPage(p);
}

/** Reloads an open table soon, at most every REFRESH_MS (events arrive in bursts). */
function scheduleRefresh(p) {
  if (p.timer) return;
  const wait = Math.max(50, REFRESH_MS - (performance.now() - p.lastLoad));
  p.timer = setTimeout(() => { p.timer = null; loadPage(p); }, wait);
}

async function loadPage(p) {
  const seq = ++p.seq;
  p.lastLoad = performance.now();
  const q = new URLSearchParams({ offset: String(p.offset), limit: String(PAGE) });
  if (p.reason) q.set('reason', p.reason);
  try {
    const body = await api(dlUrl(p.box.name, `?${q}`));
    if (seq !== p.seq || p.box.panel !== p) return; // a newer load or a closed panel
    p.total = isNum(body.total) ? body.total : 0;
    if (p.offset > 0 && p.offset >= p.total) { // the page emptied (redrive, purge): go to the last one
      p.offset = Math.max(0, Math.floor((p.total - 1) / PAGE) * PAGE);
      return loadPage(p);
    }
    p.reasons = body.reasons && typeof body.reasons === 'object' ? body.reasons : {};
    p.letters = Array.isArray(body.letters) ? body.letters.slice(0, PAGE) : [];
    p.byId = new Map(p.letters.map((l) => [String(l.id), l]));
    for (const id of p.selected) if (!p.byId.has(id)) p.selected.delete(id); // selection is per page
    p.error = null;
    renderPanel(p);
  } catch (e) {
    if (seq !== p.seq || p.box.panel !== p) return;
    p.error = `could not load dead letters: ${e.message}`;
    renderPanel(p);
  }
}

function renderPanel(p) {
  let all = 0;
  for (const r of REASONS) all += isNum(p.reasons[r]) ? p.reasons[r] : 0;
  for (const opt of p.filter.options) {
    const n = opt.value ? p.reasons[opt.value] : all;
    opt.textContent = `${opt.value || 'all'} (${int(n ?? 0)})`;
  }
  p.allCount = all || (p.reason ? 0 : p.total); // every reason: what redrive/purge all act on
  const shown = p.letters.length;
  setText(p.range, p.total ? `${p.offset + 1}-${p.offset + shown} of ${p.total}` : '0 of 0');
  p.prev.disabled = p.offset === 0;
  p.next.disabled = p.offset + PAGE >= p.total;
  renderRows(p);
  p.message.hidden = !p.error && shown > 0;
  p.message.textContent = p.error ?? (p.reason ? `no dead letters with reason ${p.reason}` : 'no dead letters');
  p.message.classList.toggle('error', !!p.error);
}

function renderRows(p) {
  p.tbody.replaceChildren(...p.letters.map((l) => letterRow(p, l)));
  selectionChanged(p);
}

function selectionChanged(p) {
  const n = p.selected.size;
  p.checkAll.checked = n > 0 && n === p.letters.length;
  p.checkAll.indeterminate = n > 0 && n < p.letters.length;
  setText(p.redriveSel, n ? `Redrive selected (${n})` : 'Redrive selected');
  setText(p.purgeSel, n ? `Purge selected (${n})` : 'Purge selected');
}

function letterRow(p, l) {
  const id = String(l.id);
  const cb = el('input', { type: 'checkbox', 'data-testid': 'select-letter', 'aria-label': `select letter ${id}` });
  cb.checked = p.selected.has(id);
  const err = l.lastError ? `${l.lastError.name ?? 'Error'}: ${l.lastError.message ?? ''}` : '';
  const reason = String(l.reason ?? '');
  return el('tr', { 'data-testid': 'dead-letter-row', 'data-id': id, tabindex: 0, class: p.detailId === id ? 'open' : null },
    el('td', { class: 'c' }, cb),
    el('td', { class: 'num' }, id),
    el('td', null, el('span', { class: REASONS.includes(reason) ? `badge r-${reason}` : 'badge' }, reason)),
    el('td', { class: 'num' }, int(l.attempts)),
    el('td', { class: 'mono', title: l.key ?? '' }, l.key == null ? '—' : truncate(l.key, 40)),
    el('td', { class: 'when' }, when(l.deadAt)),
    el('td', { class: 'msg', title: err }, truncate(err, 90)));
}

function rowClick(p, e) {
  const tr = e.target.closest('tr[data-id]');
  if (!tr) return;
  if (e.target.closest('td.c')) { // the checkbox cell selects, it does not open
    if (e.target.tagName !== 'INPUT') tr.querySelector('input').click();
    return;
  }
  const l = p.byId.get(tr.dataset.id);
  if (l) openDetail(p, l);
}

function rowKey(p, e) {
  if ((e.key === 'Enter' || e.key === ' ') && e.target.matches('tr[data-id]')) {
    e.preventDefault();
    const l = p.byId.get(e.target.dataset.id);
    if (l) openDetail(p, l);
  }
}

function rowCheck(p, e) {
  const tr = e.target.closest('tr[data-id]');
  if (!tr || e.target.type !== 'checkbox') return;
  if (e.target.checked) p.selected.add(tr.dataset.id);
  else p.selected.delete(tr.dataset.id);
  selectionChanged(p);
}

const selectedIds = (p) => [...p.selected].map((id) => p.byId.get(id)?.id).filter((id) => id !== undefined);

function errorBlock(label, err) {
  return el('div', { class: 'err', 'data-testid': 'letter-error' },
    el('h4', null, label),
    el('p', { class: 'emsg' }, el('strong', null, String(err.name ?? 'Error')), ': ', String(err.message ?? '')),
    err.stack ? el('pre', { class: 'stack' }, String(err.stack)) : null);
}

function openDetail(p, l) {
  closeDetail(p);
  const id = String(l.id);
  p.detailId = id;
  const bytes = l.payload && typeof l.payload === 'object' && !Array.isArray(l.payload) && typeof l.payload.$bytes === 'string' && Object.keys(l.payload).length === 1;
  const meta = [['reason', l.reason], ['attempts', int(l.attempts)], ['key', l.key ?? '—'], ['enqueued', when(l.enqueuedAt)], ['dead at', when(l.deadAt)]];
  const errors = [['first error', l.firstError], ['last error', l.lastError]].filter(([, e]) => e && typeof e === 'object');
  p.detail = el('aside', { class: 'detail', 'data-testid': 'letter-detail', 'data-id': id, 'aria-label': `dead letter ${id}` },
    el('header', { class: 'detail-head' },
      el('h3', null, `letter ${id}`),
      adminButton('Redrive', 'redrive-letter', 'put this letter back into the mailbox', () => act(p, 'redrive', [l.id])),
      adminButton('Purge', 'purge-letter', 'delete this letter for good', () => act(p, 'purge', [l.id])),
      el('button', { type: 'button', class: 'x', title: 'close', 'aria-label': 'close', onclick: () => closeDetail(p) }, '×')),
    el('dl', { class: 'meta' }, meta.map(([k, v]) => [el('dt', null, k), el('dd', null, String(v ?? '—'))])),
    el('h4', null, bytes ? 'payload (undecodable bytes, base64)' : 'payload'),
    el('pre', { class: 'payload', 'data-testid': 'letter-payload' }, pretty(l.payload)),
    errors.length ? errors.map(([label, e]) => errorBlock(label, e)) : el('p', { class: 'muted' }, 'no error recorded'));
  p.detail.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDetail(p); });
  p.body.append(p.detail);
  p.body.classList.add('with-detail');
  for (const tr of p.tbody.rows) tr.classList.toggle('open', tr.dataset.id === id);
  updateAdminControls();
}

function closeDetail(p) {
  if (!p.detail) return;
  p.detail.remove();
  p.detail = null;
  p.detailId = null;
  p.body.classList.remove('with-detail');
  for (const tr of p.tbody.rows) tr.classList.remove('open');
}

/** Redrive or purge: ids = [..] for those letters, null for all of the mailbox's letters. */
async function act(p, op, ids) {
  const name = p.box.name;
  const block = adminBlock();
  if (block) return status(block, 'warn');
  if (ids && !ids.length) return status(`select dead letters of ${name} first`, 'warn');
  const n = ids ? ids.length : p.allCount || p.total;
  if (!ids && !n) return status(`${name} holds no dead letters`, 'warn');
  const verb = op === 'redrive' ? 'Redrive' : 'Purge';
  let question = `${verb} ${ids ? plural(n, 'dead letter') : `all ${plural(n, 'dead letter')}`} of mailbox "${name}"?`;
  if (!ids && p.reason) question += `\n(Every reason, not only "${p.reason}".)`;
  if (op === 'purge') question += '\nPurged letters are deleted for good.';
  if (!window.confirm(question)) return status(`${op} cancelled`, 'info');
  p.busy = true;
  updateAdminControls();
  status(`${op === 'redrive' ? 'redriving' : 'purging'} in ${name}…`, 'info');
  try {
    const body = await api(dlUrl(name, `/${op}`), {
      method: 'POST',
      headers: { Authorization: `Bearer ${state.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(ids ? { ids } : {}),
    });
    const done = op === 'redrive' ? body?.redriven : body?.purged;
    status(`${op === 'redrive' ? 'redriven' : 'purged'} ${int(done)} (${name})`, 'ok');
    if (!ids || (p.detailId !== null && ids.some((id) => String(id) === p.detailId))) closeDetail(p);
    for (const id of ids ?? [...p.selected]) p.selected.delete(String(id));
  } catch (e) {
    status(`${op} failed (${name}): ${e.message}`, 'error');
  } finally {
    p.busy = false;
    updateAdminControls();
    if (p.box.panel === p) loadPage(p);
  }
}

// ---------------------------------------------------------------------------------------------
// Data: the initial list (and totals), the event stream

async function loadMailboxes() {
  const body = await api('/api/mailboxes');
  state.admin = body?.admin === true;
  for (const m of Array.isArray(body?.mailboxes) ? body.mailboxes : []) {
    if (!m || typeof m.name !== 'string') continue;
    const box = ensureBox(m.name, m.kind);
    box.info = { ...box.info, ...m }; // spread, not Object.assign: no setters run for odd keys
    renderCard(box);
  }
  if (!state.boxes.size) ui.placeholder.textContent = 'no mailboxes';
  updateAdminControls();
}

function onSnapshot(msg) {
  const t = isNum(msg.t) ? msg.t : Date.now();
  const seen = new Set();
  for (const m of Array.isArray(msg.mailboxes) ? msg.mailboxes : []) {
    if (!m || typeof m.name !== 'string') continue;
    const box = ensureBox(m.name, m.kind);
    seen.add(m.name);
    box.info = { ...box.info, ...m };
    pushPoint(box, t, m);
    // the store changed size (a redrive elsewhere, letters dropped): reload an open table
    if (box.panel && box.lastDlSize !== undefined && m.deadLetterSize !== box.lastDlSize) scheduleRefresh(box.panel);
    box.lastDlSize = m.deadLetterSize;
    renderCard(box);
    scheduleDraw(box);
  }
  for (const box of state.boxes.values()) box.card.classList.toggle('gone', !seen.has(box.name));
}

function onEvent(msg) {
  if (!msg || typeof msg !== 'object') return;
  const box = typeof msg.mailbox === 'string' ? state.boxes.get(msg.mailbox) : undefined;
  if (msg.type === 'snapshot') onSnapshot(msg);
  else if (msg.type === 'scale' && box) {
    box.info = { ...box.info, threads: msg.threads ?? box.info.threads, concurrency: msg.concurrency ?? box.info.concurrency, scaleReason: msg.reason ?? box.info.scaleReason };
    renderCard(box);
  } else if (msg.type === 'dead-letter' && box?.panel) scheduleRefresh(box.panel);
}

function setConnection(live) {
  setText(ui.conn, live ? 'live' : 'disconnected');
  ui.conn.dataset.state = live ? 'live' : 'down';
}

function connect() {
  const es = new EventSource('/api/events');
  state.conn = es;
  es.onopen = () => setConnection(true);
  es.onmessage = (e) => {
    setConnection(true);
    try { onEvent(JSON.parse(e.data)); } catch (err) { console.error('console: bad event', err); }
  };
  es.onerror = () => {
    setConnection(false);
    // EventSource retries by itself, unless the server refused the stream outright (then we do)
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
  };
}

async function boot() {
  ui.cards = $('#cards');
  ui.placeholder = $('#placeholder');
  ui.status = $('[data-testid="status"]');
  ui.conn = $('[data-testid="connection"]');
  ui.mode = $('#mode');
  const token = $('[data-testid="admin-token"]');
  token.value = '';
  token.addEventListener('input', () => { state.token = token.value.trim(); updateAdminControls(); });
  token.form?.addEventListener('submit', (e) => e.preventDefault());
  for (;;) {
    try {
      await loadMailboxes();
      break;
    } catch (e) {
      status(`could not load /api/mailboxes: ${e.message} (retrying)`, 'error');
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
  if (ui.status.dataset.kind === 'error') status('');
  document.body.dataset.ready = '1';
  connect();
  let pollFailed = false; // a failed poll says so once, and clears its message when it recovers
  setInterval(() => {
    if (document.hidden) return;
    loadMailboxes().then(
      () => { if (pollFailed && ui.status.dataset.kind === 'error') status(''); pollFailed = false; },
      (e) => { if (!pollFailed) status(`could not refresh /api/mailboxes: ${e.message}`, 'error'); pollFailed = true; });
  }, TOTALS_POLL_MS);
}

boot();
