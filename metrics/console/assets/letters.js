// ringpool operator console: the dead-letter panel and the admin actions.
//
// One page of a mailbox's dead letters (GET api/mailboxes/:name/dead-letters): the table,
// paging, the reason filter, the detail view; and redrive / purge (POST .../redrive|purge with
// the Bearer token), their confirmations, and enabling / disabling the admin buttons.
// Everything is built with el() from dom.js: strings only ever become text nodes.

import { api, el, int, isNum, mailboxUrl, plural, post, pretty, setText, state, status, truncate, ui, when } from './dom.js';

const PAGE = 50; // dead letters per page (the only rows ever in the DOM)
const REASONS = ['max_attempts', 'poison', 'timeout', 'unrecoverable'];
const REFRESH_MS = 500; // an open dead-letter table reloads at most this often on events

const dlUrl = (name, tail = '') => mailboxUrl(name, `/dead-letters${tail}`); // relative: see dom.js

// ---------------------------------------------------------------------------------------------
// Admin controls: enabled only with a server-side token and a typed one

export function adminBlock() {
  if (!state.admin) return 'read-only console: the server has no admin token configured';
  if (!state.token) return 'type the admin token at the top of the page first';
  return '';
}

export function adminButton(label, testid, help, onclick) {
  return el('button', { type: 'button', class: 'admin', 'data-testid': testid, 'data-help': help, onclick }, label);
}

export function updateAdminControls() {
  const block = adminBlock();
  ui.mode.textContent = state.admin ? '' : 'read-only: no admin token configured on the server';
  for (const box of state.boxes.values()) {
    // The card's own admin buttons (pause / resume, its controls).
    for (const b of box.card.querySelectorAll('button.admin')) {
      b.disabled = !!block || !!box.busy;
      b.title = block || (box.busy ? 'working…' : b.dataset.help);
    }
    // The open panels' (dead letters; the queue's promote buttons).
    for (const p of [box.panel, box.queue]) {
      if (!p) continue;
      for (const b of p.root.querySelectorAll('button.admin')) {
        b.disabled = !!block || !!p.busy;
        b.title = block || (p.busy ? 'working…' : b.dataset.help);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dead-letter panel: one page of a mailbox's dead letters, a detail view, the admin actions

export function togglePanel(box) {
  if (box.panel) {
    clearTimeout(box.panel.timer);
    box.panel.root.remove();
    box.panel = null;
    box.f.open.setAttribute('aria-expanded', 'false');
    box.card.classList.toggle('expanded', !!box.queue);
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
  p.redriveSel = adminButton('Redrive selected', 'redrive-selected', 'put the checked letters back into the mailbox', () => act(p, 'redrive', selectedRefs(p)));
  p.purgeSel = adminButton('Purge selected', 'purge-selected', 'delete the checked letters for good', () => act(p, 'purge', selectedRefs(p)));
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
export function scheduleRefresh(p) {
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
    p.byId = new Map(p.letters.map((l) => [refOf(l), l]));
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
  const ref = refOf(l);
  const cb = el('input', { type: 'checkbox', 'data-testid': 'select-letter', 'aria-label': `select letter ${id}` });
  cb.checked = p.selected.has(ref);
  const err = l.lastError ? `${l.lastError.name ?? 'Error'}: ${l.lastError.message ?? ''}` : '';
  const reason = String(l.reason ?? '');
  return el('tr', { 'data-testid': 'dead-letter-row', 'data-id': id, 'data-ref': ref, tabindex: 0, class: p.detailId === ref ? 'open' : null },
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
  const l = p.byId.get(tr.dataset.ref);
  if (l) openDetail(p, l);
}

function rowKey(p, e) {
  if ((e.key === 'Enter' || e.key === ' ') && e.target.matches('tr[data-id]')) {
    e.preventDefault();
    const l = p.byId.get(e.target.dataset.ref);
    if (l) openDetail(p, l);
  }
}

function rowCheck(p, e) {
  const tr = e.target.closest('tr[data-id]');
  if (!tr || e.target.type !== 'checkbox') return;
  if (e.target.checked) p.selected.add(tr.dataset.ref);
  else p.selected.delete(tr.dataset.ref);
  selectionChanged(p);
}

/** A letter's handle, unique in its mailbox (a Redis mailbox's letters from several processes may share an id). */
const refOf = (l) => (typeof l.ref === 'string' ? l.ref : String(l.id));
const selectedRefs = (p) => [...p.selected].filter((ref) => p.byId.has(ref));

function errorBlock(label, err) {
  return el('div', { class: 'err', 'data-testid': 'letter-error' },
    el('h4', null, label),
    el('p', { class: 'emsg' }, el('strong', null, String(err.name ?? 'Error')), ': ', String(err.message ?? '')),
    err.stack ? el('pre', { class: 'stack' }, String(err.stack)) : null);
}

function openDetail(p, l) {
  closeDetail(p);
  const id = String(l.id);
  const ref = refOf(l);
  p.detailId = ref;
  // Bytes the codec could not decode come as { $bytes, type } (base64).
  const bytes = l.payload && typeof l.payload === 'object' && !Array.isArray(l.payload) && typeof l.payload.$bytes === 'string' && Object.keys(l.payload).every((k) => k === '$bytes' || k === 'type');
  const meta = [['reason', l.reason], ['attempts', int(l.attempts)], ['key', l.key ?? '—'], ['enqueued', when(l.enqueuedAt)], ['dead at', when(l.deadAt)]];
  const errors = [['first error', l.firstError], ['last error', l.lastError]].filter(([, e]) => e && typeof e === 'object');
  p.detail = el('aside', { class: 'detail', 'data-testid': 'letter-detail', 'data-id': id, 'aria-label': `dead letter ${id}` },
    el('header', { class: 'detail-head' },
      el('h3', null, `letter ${id}`),
      adminButton('Redrive', 'redrive-letter', 'put this letter back into the mailbox', () => act(p, 'redrive', [ref])),
      adminButton('Purge', 'purge-letter', 'delete this letter for good', () => act(p, 'purge', [ref])),
      el('button', { type: 'button', class: 'x', title: 'close', 'aria-label': 'close', onclick: () => closeDetail(p) }, '×')),
    el('dl', { class: 'meta' }, meta.map(([k, v]) => [el('dt', null, k), el('dd', null, String(v ?? '—'))])),
    el('h4', null, bytes ? 'payload (undecodable bytes, base64)' : 'payload'),
    el('pre', { class: 'payload', 'data-testid': 'letter-payload' }, pretty(l.payload)),
    l.headers && typeof l.headers === 'object' && Object.keys(l.headers).length
      ? [el('h4', null, 'headers'), el('pre', { class: 'payload', 'data-testid': 'letter-headers' }, pretty(l.headers))]
      : null,
    errors.length ? errors.map(([label, e]) => errorBlock(label, e)) : el('p', { class: 'muted' }, 'no error recorded'));
  p.detail.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDetail(p); });
  p.body.append(p.detail);
  p.body.classList.add('with-detail');
  for (const tr of p.tbody.rows) tr.classList.toggle('open', tr.dataset.ref === ref);
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

/** Redrive or purge: refs = [..] for those letters (sent as `refs`), null for all of the mailbox's letters (sent as `all: true`). */
async function act(p, op, refs) {
  const ids = refs;
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
    const body = await post(dlUrl(name, `/${op}`), ids ? { refs: ids } : { all: true }); // "all" is said, never implied by an empty body
    const done = op === 'redrive' ? body?.redriven : body?.purged;
    status(`${op === 'redrive' ? 'redriven' : 'purged'} ${int(done)} (${name})`, 'ok');
    if (!ids || (p.detailId !== null && ids.includes(p.detailId))) closeDetail(p);
    for (const ref of ids ?? [...p.selected]) p.selected.delete(ref);
  } catch (e) {
    status(`${op} failed (${name}): ${e.message}`, 'error');
  } finally {
    p.busy = false;
    updateAdminControls();
    if (p.box.panel === p) loadPage(p);
  }
}
