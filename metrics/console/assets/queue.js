// ringpool operator console: a mailbox's queue, not only its failures.
//
// Opened from a card ("messages ▾"): tabs for the messages ready, in flight (the thread running
// each, since when) and delayed or retrying (due when; Promote makes one ready now, admin), the
// first page of each (GET api/mailboxes/:name/messages?state=..&limit=..), reloaded every
// couple of seconds while open; and a message by id (GET api/mailboxes/:name/messages/:id) with
// its payload. A Redis mailbox shows what this process holds.
// Everything is built with el() from dom.js: payloads, keys, ids only ever become text nodes.

import { ago, api, bytes, el, int, isNum, mailboxUrl, post, pretty, setText, status, truncate, when } from './dom.js';
import { adminBlock, adminButton, updateAdminControls } from './letters.js';

const LIMIT = 50; // rows per tab (the server allows up to 500)
const RELOAD_MS = 2000;

const TABS = [
  { state: 'ready', label: 'ready', count: (s) => s.depth },
  { state: 'in-flight', label: 'in flight', count: (s) => s.inFlight },
  { state: 'delayed', label: 'delayed / retrying', count: (s) => s.delayed },
];

// The columns of each tab: [header, cell(message, now), class]
const COLS = {
  id: ['id', (m) => String(m.id), 'num'],
  attempt: ['attempt', (m) => int(m.attempt), 'num'],
  key: ['key', (m) => (m.key == null ? '—' : truncate(m.key, 40)), 'mono'],
  sent: ['sent', (m, now) => ago(m.sentAt, now), 'when'],
  due: ['due', (m, now) => ago(m.dueAt, now), 'when'],
  thread: ['thread', (m) => (isNum(m.thread) ? String(m.thread) : '—'), 'num'],
  running: ['running since', (m, now) => (isNum(m.runningSince) ? ago(m.runningSince, now) : '—'), 'when'],
  bytes: ['bytes', (m) => bytes(m.bytes), 'num'],
};
const COLUMNS = {
  ready: ['id', 'attempt', 'key', 'sent', 'bytes'],
  'in-flight': ['id', 'attempt', 'key', 'thread', 'running', 'sent', 'bytes'],
  delayed: ['id', 'attempt', 'key', 'due', 'sent', 'bytes'],
};
// testids of the cells the tests read
const CELL_IDS = { thread: 'msg-thread', running: 'msg-running-since', due: 'msg-due', attempt: 'msg-attempt' };

export function toggleQueue(box) {
  if (box.queue) {
    clearInterval(box.queue.timer);
    box.queue.root.remove();
    box.queue = null;
    box.f.openQueue.setAttribute('aria-expanded', 'false');
    box.card.classList.toggle('expanded', !!box.panel);
    return;
  }
  const q = makeQueue(box);
  box.queue = q;
  box.card.after(q.root); // full width, right under the card's row
  box.f.openQueue.setAttribute('aria-expanded', 'true');
  box.card.classList.add('expanded');
  q.timer = setInterval(() => { if (!document.hidden && !q.loading) load(q); }, RELOAD_MS);
  updateAdminControls();
  renderTabs(q);
  load(q);
  q.root.scrollIntoView({ block: 'nearest' });
}

function makeQueue(box) {
  const q = { box, state: 'ready', seq: 0, timer: null, loading: false, total: 0, messages: [], byId: new Map(), error: null, busy: false, detail: null, detailId: null, detailSeq: 0 };
  q.tabs = TABS.map((t) => {
    const n = el('span', { class: 'n' }, '');
    const b = el('button', { type: 'button', role: 'tab', class: 'tab', 'data-testid': 'queue-tab', 'data-state': t.state, 'aria-selected': 'false', onclick: () => select(q, t.state) }, `${t.label} `, n);
    return { ...t, button: b, n };
  });
  q.findIn = el('input', { type: 'text', inputmode: 'numeric', class: 'find-in', 'data-testid': 'find-id', placeholder: 'message id', 'aria-label': 'message id', autocomplete: 'off', spellcheck: 'false' });
  q.range = el('span', { class: 'range', 'data-testid': 'queue-range' }, '');
  q.thead = el('thead');
  q.tbody = el('tbody', { onclick: (e) => rowClick(q, e), onkeydown: (e) => rowKey(q, e) });
  q.message = el('p', { class: 'empty', hidden: true }, '');
  q.body = el('div', { class: 'panel-body' }, el('div', { class: 'table-wrap' }, el('table', { class: 'letters messages' }, q.thead, q.tbody), q.message));
  q.root = el('section', { class: 'panel queue', 'data-testid': 'queue', 'data-mailbox': box.name, 'aria-label': `messages of ${box.name}` },
    el('header', { class: 'panel-head' },
      el('h3', null, 'messages · ', el('span', { class: 'mono' }, box.name)),
      el('button', { type: 'button', class: 'x', title: 'close', 'aria-label': 'close', onclick: () => toggleQueue(box) }, '×')),
    el('div', { class: 'toolbar' },
      el('span', { class: 'tabs', role: 'tablist' }, q.tabs.map((t) => t.button)),
      q.range,
      el('button', { type: 'button', 'data-testid': 'queue-reload', title: 'reload now', onclick: () => load(q) }, 'reload'),
      el('form', { class: 'find', onsubmit: (e) => { e.preventDefault(); find(q); } },
        el('label', null, 'find ', q.findIn), el('button', { type: 'submit', 'data-testid': 'find-button' }, 'Find'))),
    q.body);
  return q;
}

function select(q, st) {
  if (q.state === st) return;
  q.state = st;
  q.messages = [];
  q.byId = new Map();
  renderTabs(q);
  renderRows(q);
  load(q);
}

function renderTabs(q) {
  const s = q.box.info;
  for (const t of q.tabs) {
    t.button.setAttribute('aria-selected', String(t.state === q.state));
    t.button.classList.toggle('on', t.state === q.state);
    setText(t.n, `(${int(t.count(s))})`);
  }
}

/** The card's counts changed (a snapshot): the tab labels follow. */
export function queueStats(box) {
  if (box.queue) renderTabs(box.queue);
}

async function load(q) {
  const seq = ++q.seq;
  q.loading = true;
  const st = q.state;
  try {
    const body = await api(mailboxUrl(q.box.name, `/messages?${new URLSearchParams({ state: st, limit: String(LIMIT) })}`));
    if (seq !== q.seq || q.box.queue !== q) return;
    q.total = isNum(body?.total) ? body.total : 0;
    q.messages = Array.isArray(body?.messages) ? body.messages.slice(0, LIMIT) : [];
    q.byId = new Map(q.messages.map((m) => [String(m.id), m]));
    q.error = null;
  } catch (e) {
    if (seq !== q.seq || q.box.queue !== q) return;
    q.error = `could not load ${st} messages: ${e.message}`;
  } finally {
    if (seq === q.seq) q.loading = false;
  }
  renderTabs(q);
  renderRows(q);
}

function renderRows(q) {
  const cols = COLUMNS[q.state];
  const promote = q.state === 'delayed';
  q.thead.replaceChildren(el('tr', null, cols.map((c) => el('th', { class: COLS[c][2] === 'num' ? 'num' : null }, COLS[c][0])), promote ? el('th', null, '') : null));
  const now = Date.now();
  q.tbody.replaceChildren(...q.messages.map((m) => {
    const id = String(m.id);
    return el('tr', { 'data-testid': 'queue-row', 'data-id': id, 'data-state': String(m.state ?? q.state), tabindex: 0, class: q.detailId === id ? 'open' : null },
      cols.map((c) => {
        const [, cell, cls] = COLS[c];
        const title = c === 'key' ? m.key ?? '' : c === 'sent' ? when(m.sentAt) : c === 'due' ? when(m.dueAt) : c === 'running' ? when(m.runningSince) : c === 'bytes' ? `${int(m.bytes)} bytes` : null;
        return el('td', { class: cls, title, 'data-testid': CELL_IDS[c] }, cell(m, now));
      }),
      promote ? el('td', { class: 'c-act' }, adminButton('Promote', 'promote', 'make it ready now, not at its due time (admin)', () => promoteMessage(q, m.id))) : null);
  }));
  const shown = q.messages.length;
  q.thead.hidden = shown === 0; // an empty table says so below, without a row of headers
  setText(q.range, q.error ? '' : shown < q.total ? `first ${shown} of ${int(q.total)}` : `${int(q.total)} ${q.total === 1 ? 'message' : 'messages'}`);
  q.message.hidden = !q.error && shown > 0;
  const label = TABS.find((t) => t.state === q.state)?.label ?? q.state;
  q.message.textContent = q.error ?? `no ${label} messages`;
  q.message.classList.toggle('error', !!q.error);
  updateAdminControls();
}

function rowClick(q, e) {
  if (e.target.closest('button')) return;
  const tr = e.target.closest('tr[data-id]');
  if (tr) openDetail(q, tr.dataset.id);
}

function rowKey(q, e) {
  if ((e.key === 'Enter' || e.key === ' ') && e.target.matches('tr[data-id]')) {
    e.preventDefault();
    openDetail(q, e.target.dataset.id);
  }
}

function find(q) {
  const raw = q.findIn.value.trim();
  if (!/^\d+$/.test(raw)) return status('a message id is a whole number', 'warn');
  openDetail(q, String(Number(raw)));
}

/** One message by id: GET .../messages/<id>, its payload rendered as text. */
async function openDetail(q, id) {
  const seq = ++q.detailSeq;
  q.detailId = id;
  for (const tr of q.tbody.rows) tr.classList.toggle('open', tr.dataset.id === id);
  showDetail(q, id, el('p', { class: 'muted' }, 'loading…'), null);
  let m;
  try {
    m = await api(mailboxUrl(q.box.name, `/messages/${encodeURIComponent(id)}`));
  } catch (e) {
    if (seq !== q.detailSeq || q.box.queue !== q) return;
    const text = e.status === 404 ? `no message ${id} in ${q.box.name} now: it finished, or it is not held by this process` : `could not load message ${id}: ${e.message}`;
    showDetail(q, id, el('p', { class: e.status === 404 ? 'empty' : 'empty error', 'data-testid': 'message-missing' }, text), null);
    return;
  }
  if (seq !== q.detailSeq || q.box.queue !== q) return;
  const hasPayload = m && typeof m === 'object' && Object.prototype.hasOwnProperty.call(m, 'payload');
  const meta = [
    ['state', m.state], ['attempt', int(m.attempt)], ['key', m.key ?? '—'], ['sent', isNum(m.sentAt) ? `${when(m.sentAt)} (${ago(m.sentAt)})` : '—'],
    m.dueAt != null ? ['due', `${when(m.dueAt)} (${ago(m.dueAt)})`] : null,
    m.thread != null ? ['thread', String(m.thread)] : null,
    m.runningSince != null ? ['running since', `${when(m.runningSince)} (${ago(m.runningSince)})`] : null,
    ['bytes', isNum(m.bytes) ? `${int(m.bytes)} (${bytes(m.bytes)})` : '—'],
  ].filter(Boolean);
  const body = [
    el('dl', { class: 'meta' }, meta.map(([k, v]) => [el('dt', null, k), el('dd', { 'data-testid': `detail-${k.replace(/\s+/g, '-')}` }, String(v ?? '—'))])),
    el('h4', null, 'payload'),
    hasPayload ? el('pre', { class: 'payload', 'data-testid': 'message-payload' }, pretty(m.payload)) : el('p', { class: 'muted', 'data-testid': 'message-payload-missing' }, 'the payload cannot be read here'),
  ];
  const action = m.state === 'delayed' ? adminButton('Promote', 'promote-message', 'make it ready now, not at its due time (admin)', () => promoteMessage(q, m.id)) : null;
  showDetail(q, id, body, action);
}

function showDetail(q, id, content, action) {
  const d = el('aside', { class: 'detail', 'data-testid': 'message-detail', 'data-id': id, 'aria-label': `message ${id}` },
    el('header', { class: 'detail-head' },
      el('h3', null, `message ${id}`), action,
      el('button', { type: 'button', class: 'x', title: 'close', 'aria-label': 'close', onclick: () => closeDetail(q) }, '×')),
    content);
  d.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDetail(q); });
  if (q.detail) q.detail.replaceWith(d);
  else q.body.append(d);
  q.detail = d;
  q.body.classList.add('with-detail');
  updateAdminControls();
}

function closeDetail(q) {
  if (!q.detail) return;
  q.detailSeq++;
  q.detail.remove();
  q.detail = null;
  q.detailId = null;
  q.body.classList.remove('with-detail');
  for (const tr of q.tbody.rows) tr.classList.remove('open');
}

/** POST .../messages/<id>/promote: a delayed or retrying message becomes ready now. */
async function promoteMessage(q, id) {
  const block = adminBlock();
  if (block) return status(block, 'warn');
  q.busy = true;
  updateAdminControls();
  try {
    await post(mailboxUrl(q.box.name, `/messages/${encodeURIComponent(String(id))}/promote`), {});
    status(`message ${id} promoted: ready now (${q.box.name})`, 'ok');
  } catch (e) {
    status(`promote failed (${q.box.name}, message ${id}): ${e.message}`, 'error');
  } finally {
    q.busy = false;
    updateAdminControls();
    if (q.box.queue === q) {
      load(q);
      if (q.detailId === String(id)) openDetail(q, String(id));
    }
  }
}
