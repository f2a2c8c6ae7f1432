// ringpool operator console: the event log (newest first).
//
// What happened, kept by the server: scale decisions, breaker transitions, dead letters, thread
// crashes, handler timeouts and operators' actions. `api/history` gives the last ones when the
// page opens; the SSE feed adds the rest as they happen. At most MAX lines; filters by type and
// by mailbox. Lines are built with el() from dom.js: a mailbox name or a text is only ever text.

import { clock, el, isNum, setText, state, when } from './dom.js';

const MAX = 500;
const TYPES = ['scale', 'breaker', 'dead-letter', 'crash', 'timeout', 'action'];

const log = { entries: [], keys: new Set(), pending: [], timer: null, type: '', mailbox: '', root: null, list: null, count: null, empty: null, typeSel: null, boxSel: null };

/** Builds the panel into `root` (the page's aside). */
export function makeLog(root) {
  log.root = root;
  log.typeSel = el('select', { 'data-testid': 'event-type-filter', 'aria-label': 'event type', onchange: () => { log.type = log.typeSel.value; renderAll(); } },
    el('option', { value: '' }, 'all types'), TYPES.map((t) => el('option', { value: t }, t)));
  log.boxSel = el('select', { 'data-testid': 'event-mailbox-filter', 'aria-label': 'mailbox', onfocus: fillMailboxes, onchange: () => { log.mailbox = log.boxSel.value; renderAll(); } },
    el('option', { value: '' }, 'all mailboxes'));
  log.count = el('span', { class: 'muted', 'data-testid': 'event-count' }, '');
  log.list = el('ol', { class: 'events', 'data-testid': 'event-list', reversed: true });
  log.empty = el('p', { class: 'empty', 'data-testid': 'event-empty' }, 'no events yet');
  root.replaceChildren(
    el('header', { class: 'log-head' }, el('h2', null, 'events'), log.count),
    el('div', { class: 'log-filters' }, log.typeSel, log.boxSel),
    log.empty,
    log.list);
}

/** Keeps the mailbox filter's options in step with the cards. */
export function fillMailboxes() {
  if (!log.boxSel) return;
  const names = [...state.boxes.keys()].sort();
  const have = [...log.boxSel.options].slice(1).map((o) => o.value);
  if (have.length === names.length && have.every((n, i) => n === names[i])) return;
  log.boxSel.replaceChildren(el('option', { value: '' }, 'all mailboxes'), names.map((n) => el('option', { value: n }, n)));
  log.boxSel.value = names.includes(log.mailbox) ? log.mailbox : '';
  log.mailbox = log.boxSel.value;
}

/** An event's line text: the server's `text`, or one made from the fields of an older server's event. */
function textOf(ev) {
  if (typeof ev.text === 'string') return ev.text;
  switch (ev.type) {
    case 'scale':
      return `threads ${ev.from ?? '?'} → ${ev.to ?? ev.threads ?? '?'}${isNum(ev.concurrency) ? ` (× ${ev.concurrency})` : ''}${ev.reason ? `: ${ev.reason}` : ''}`;
    case 'dead-letter':
      return `message ${ev.id ?? '?'} dead-lettered${ev.reason ? ` (${ev.reason}` : ' ('}${isNum(ev.attempts) ? `, ${ev.attempts} attempts)` : ')'}`;
    default:
      return '';
  }
}

/** Adds events (any order; duplicates of held ones dropped); drawn on the next tick, in one go. */
export function addEvents(list) {
  for (const ev of list) {
    if (!ev || typeof ev !== 'object' || typeof ev.type !== 'string' || ev.type === 'snapshot') continue;
    const e = { t: isNum(ev.t) ? ev.t : Date.now(), type: ev.type, mailbox: typeof ev.mailbox === 'string' ? ev.mailbox : '', text: textOf(ev) };
    const key = `${e.t}|${e.type}|${e.mailbox}|${e.text}`;
    if (log.keys.has(key)) continue;
    log.keys.add(key);
    e.key = key;
    log.entries.push(e);
    log.pending.push(e);
  }
  if (log.entries.length > MAX) {
    for (const e of log.entries.splice(0, log.entries.length - MAX)) log.keys.delete(e.key);
  }
  if (log.pending.length && !log.timer) log.timer = setTimeout(flush, 50);
}

const shown = (e) => (!log.type || e.type === log.type) && (!log.mailbox || e.mailbox === log.mailbox);

function line(e) {
  const known = TYPES.includes(e.type);
  return el('li', { class: 'ev', 'data-testid': 'event-row', 'data-type': e.type, 'data-mailbox': e.mailbox },
    el('time', { datetime: new Date(e.t).toISOString(), title: when(e.t) }, clock(e.t)),
    el('span', { class: known ? `badge ev-${e.type}` : 'badge' }, e.type),
    el('span', { class: 'ev-box mono', title: e.mailbox }, e.mailbox || '—'),
    el('span', { class: 'ev-text', title: e.text }, e.text));
}

function flush() {
  log.timer = null;
  if (!log.list) return;
  const fresh = log.pending.splice(0).filter(shown);
  if (fresh.length > MAX) fresh.splice(0, fresh.length - MAX);
  // newest first: the newest of the batch goes on top
  fresh.sort((a, b) => a.t - b.t);
  const frag = document.createDocumentFragment();
  for (let i = fresh.length - 1; i >= 0; i--) frag.append(line(fresh[i]));
  log.list.prepend(frag);
  while (log.list.childElementCount > MAX) log.list.lastElementChild.remove();
  status();
}

function renderAll() {
  log.pending = [];
  const rows = log.entries.filter(shown).sort((a, b) => b.t - a.t).slice(0, MAX);
  log.list.replaceChildren(...rows.map(line));
  status();
}

function status() {
  const n = log.list.childElementCount;
  log.empty.hidden = n > 0;
  log.empty.textContent = log.type || log.mailbox ? 'no events match' : 'no events yet';
  setText(log.count, `${n}${log.entries.length > n ? ` of ${log.entries.length}` : ''}`);
}
