// ringpool operator console: the browser page's entry point (plain ES module, no build step,
// no dependency). index.html loads only this file; it imports dom.js, cards.js and letters.js.
//
// Talks to the same-origin API: GET /api/mailboxes (admin flag, full stats), the SSE stream
// /api/events (snapshot / scale / dead-letter), GET /api/mailboxes/:name/dead-letters (one page)
// and POST .../dead-letters/redrive|purge (Bearer token); this module owns the first two and
// boots the page. The shared `state` / `ui` objects live in dom.js.
//
// Security: everything that comes from the server (names, payloads, keys, errors, stacks) is
// rendered as text (see dom.js). Markup is never built from strings; no inline handlers.

import { $, api, isNum, setText, state, status, ui } from './dom.js';
import { ensureBox, pushPoint, renderCard, scheduleDraw } from './cards.js';
import { scheduleRefresh, updateAdminControls } from './letters.js';

const TOTALS_POLL_MS = 5000; // the rest of the stats (totals, min/max threads, admin) come from /api/mailboxes: re-read it

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
