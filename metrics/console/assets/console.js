// ringpool operator console: the browser page's entry point (plain ES module, no build step).
// index.html loads uplot.js (the charts' library, a classic script) and this module; it imports
// dom.js, cards.js, charts.js, queue.js, log.js and letters.js.
//
// Talks to the API next to the page, by relative URLs only (the console may be mounted under a
// base path): api/mailboxes (admin flag, full stats), api/history (the last minutes of snapshots
// and events: the charts and the event log are filled when the page opens), the SSE stream
// api/events (snapshots, scale / breaker / dead-letter / crash / timeout / action events), and
// the per-mailbox routes used by cards.js, queue.js and letters.js. This module owns the first
// three and boots the page. The shared `state` / `ui` objects live in dom.js.
//
// Security: everything that comes from the server (names, payloads, keys, errors, stacks) is
// rendered as text (see dom.js). Markup is never built from strings; no inline handlers.

import { $, api, isNum, setText, state, status, ui } from './dom.js';
import { ensureBox, renderCard, scheduleDraw } from './cards.js';
import { addPoint, drawCharts } from './charts.js';
import { queueStats } from './queue.js';
import { addEvents, fillMailboxes, makeLog } from './log.js';
import { scheduleRefresh, updateAdminControls } from './letters.js';

const TOTALS_POLL_MS = 5000; // the rest of the stats (totals, ring, journal, fleet, admin) come from api/mailboxes: re-read it
const MAX_BUFFERED = 10_000; // live events held while the history loads

// ---------------------------------------------------------------------------------------------
// Data: the list (and full stats), the history, the event stream

async function loadMailboxes() {
  const body = await api('api/mailboxes');
  state.admin = body?.admin === true;
  const fresh = [];
  for (const m of Array.isArray(body?.mailboxes) ? body.mailboxes : []) {
    if (!m || typeof m.name !== 'string') continue;
    const had = state.boxes.has(m.name);
    const box = ensureBox(m.name, m.kind);
    box.info = { ...box.info, ...m }; // spread, not Object.assign: no setters run for odd keys
    renderCard(box);
    queueStats(box);
    if (!had) fresh.push(box);
  }
  for (const box of fresh) drawCharts(box); // after every card is in: their widths are final
  if (!state.boxes.size) ui.placeholder.textContent = 'no mailboxes';
  fillMailboxes();
  updateAdminControls();
}

/** The last minutes the server kept: the charts' points and the event log. An older server has none (404). */
async function loadHistory() {
  let body;
  try {
    body = await api('api/history');
  } catch (e) {
    if (e.status !== 404) status(`could not load api/history: ${e.message} (charts start now)`, 'warn');
    return;
  }
  for (const snap of Array.isArray(body?.snapshots) ? body.snapshots : []) {
    if (!snap || !isNum(snap.t)) continue;
    for (const m of Array.isArray(snap.mailboxes) ? snap.mailboxes : []) {
      const box = m && typeof m.name === 'string' ? state.boxes.get(m.name) : undefined;
      if (box) addPoint(box, snap.t, m);
    }
  }
  for (const box of state.boxes.values()) drawCharts(box, true); // on screen: drawn before the page says it is ready
  addEvents(Array.isArray(body?.events) ? body.events : []);
}

function onSnapshot(msg) {
  const t = isNum(msg.t) ? msg.t : Date.now();
  const seen = new Set();
  for (const m of Array.isArray(msg.mailboxes) ? msg.mailboxes : []) {
    if (!m || typeof m.name !== 'string') continue;
    const box = ensureBox(m.name, m.kind);
    seen.add(m.name);
    box.info = { ...box.info, ...m };
    // the store changed size (a redrive elsewhere, letters dropped): reload an open table
    if (box.panel && box.lastDlSize !== undefined && m.deadLetterSize !== box.lastDlSize) scheduleRefresh(box.panel);
    box.lastDlSize = m.deadLetterSize;
    renderCard(box);
    queueStats(box);
    if (addPoint(box, t, m)) scheduleDraw(box);
  }
  for (const box of state.boxes.values()) box.card.classList.toggle('gone', !seen.has(box.name));
}

function onEvent(msg) {
  if (!msg || typeof msg !== 'object') return;
  if (msg.type === 'snapshot') return onSnapshot(msg);
  addEvents([msg]);
  const box = typeof msg.mailbox === 'string' ? state.boxes.get(msg.mailbox) : undefined;
  if (msg.type === 'scale' && box) {
    box.info = { ...box.info, threads: msg.threads ?? box.info.threads, concurrency: msg.concurrency ?? box.info.concurrency, scaleReason: msg.reason ?? box.info.scaleReason };
    renderCard(box);
  } else if (msg.type === 'dead-letter' && box?.panel) scheduleRefresh(box.panel);
}

function setConnection(live) {
  setText(ui.conn, live ? 'live' : 'disconnected');
  ui.conn.dataset.state = live ? 'live' : 'down';
}

function connect() {
  const es = new EventSource('api/events');
  state.conn = es;
  es.onopen = () => setConnection(true);
  es.onmessage = (e) => {
    setConnection(true);
    let msg;
    try { msg = JSON.parse(e.data); } catch (err) { console.error('console: bad event', err); return; }
    if (state.held) { // the history is loading: its end and the feed's start overlap, applied in order after it
      if (state.held.length < MAX_BUFFERED) state.held.push(msg);
      return;
    }
    try { onEvent(msg); } catch (err) { console.error('console: bad event', err); }
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
  makeLog($('#log'));
  const token = $('[data-testid="admin-token"]');
  token.value = '';
  token.addEventListener('input', () => { state.token = token.value.trim(); updateAdminControls(); });
  token.form?.addEventListener('submit', (e) => e.preventDefault());
  for (;;) {
    try {
      await loadMailboxes();
      break;
    } catch (e) {
      status(`could not load api/mailboxes: ${e.message} (retrying)`, 'error');
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
  if (ui.status.dataset.kind === 'error') status('');
  // The feed first (held), then the history: nothing falls between the two.
  state.held = [];
  connect();
  await loadHistory();
  const held = state.held;
  state.held = null;
  for (const msg of held) {
    try { onEvent(msg); } catch (err) { console.error('console: bad event', err); }
  }
  document.body.dataset.ready = '1';
  let pollFailed = false; // a failed poll says so once, and clears its message when it recovers
  setInterval(() => {
    if (document.hidden) return;
    loadMailboxes().then(
      () => { if (pollFailed && ui.status.dataset.kind === 'error') status(''); pollFailed = false; },
      (e) => { if (!pollFailed) status(`could not refresh api/mailboxes: ${e.message}`, 'error'); pollFailed = true; });
  }, TOTALS_POLL_MS);
}

boot();
