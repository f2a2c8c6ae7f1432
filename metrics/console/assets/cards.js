// ringpool operator console: the mailbox cards.
//
// One card per mailbox: its counts and times, its ring, rejections, crashes and timeouts, a
// durable mailbox's journal, a Redis mailbox's stream and fleet, threads and the autoscaler, two
// charts (charts.js), and the operator's controls (admin, with the token): pause / resume, resize,
// the autoscaler on / off, the rate limit, purge dead letters older than a time.
// Everything is built with el() from dom.js: strings only ever become text nodes.

import { bytes, compact, el, int, isNum, mailboxUrl, ms, plural, post, secs, setText, state, status, ui } from './dom.js';
import { adminBlock, adminButton, togglePanel, updateAdminControls } from './letters.js';
import { toggleQueue } from './queue.js';
import { drawCharts, makeCharts, newData } from './charts.js';

/** The rate-limit control (POST api/mailboxes/<name>/rate-limit); false leaves it out of the page. */
const RATE_LIMIT_CONTROL = true;

// ---------------------------------------------------------------------------------------------
// Mailbox cards

export function ensureBox(name, kind) {
  let box = state.boxes.get(name);
  if (box) return box;
  // f: the card's value elements; panel: its open dead-letter panel; queue: its open queue panel
  box = { name, info: { name, kind }, data: newData(), f: {}, lastDraw: 0, drawTimer: null, lastDlSize: undefined, panel: null, queue: null, busy: false };
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
  const fig = (label, key, testid) => el('span', { class: 'fig' }, el('span', { class: 'k' }, label), ' ', v(key, testid));
  f.open = el('button', { type: 'button', class: 'open', 'data-testid': 'open-dead-letters', 'aria-expanded': 'false', onclick: () => togglePanel(box) }, 'dead letters ▾');
  f.openQueue = el('button', { type: 'button', class: 'open', 'data-testid': 'open-queue', 'aria-expanded': 'false', onclick: () => toggleQueue(box) }, 'messages ▾');
  f.pause = el('button', { type: 'button', class: 'admin', 'data-testid': 'pause-toggle', 'data-help': 'pause: start nothing new until resumed (admin)', onclick: () => pauseOrResume(box) }, 'pause');
  f.charts = makeCharts(box);
  f.ring = el('progress', { class: 'ring', max: 1, value: 0, 'aria-label': 'ring use' });
  return el('article', { class: 'card', 'data-testid': 'mailbox-card', 'data-mailbox': box.name },
    el('header', { class: 'card-head' }, el('h2', { title: box.name }, box.name), (f.kind = el('span', { class: 'badge kind', 'data-testid': 'kind' }, '')),
      (f.paused = el('span', { class: 'badge paused', 'data-testid': 'paused', hidden: '' }, '')), (f.breaker = el('span', { class: 'badge breaker', 'data-testid': 'breaker', hidden: '' }, ''))),
    el('div', { class: 'stats' },
      stat('depth', 'depth', 'depth'), stat('in flight', 'inFlight', 'in-flight'), stat('delayed', 'delayed', 'delayed'),
      stat('processed', 'processed'), stat('failed', 'failed'), stat('dead letters', 'dead', 'dead-letter-count')),
    el('div', { class: 'stats times' }, stat('oldest', 'oldest'), stat('est. lag', 'lag'), stat('e2e p50', 'p50'), stat('e2e p99', 'p99')),
    el('div', { class: 'line figs' },
      el('span', { class: 'fig ringfig' }, el('span', { class: 'k' }, 'ring'), ' ', f.ring, ' ', v('ringText', 'ring-use')),
      fig('rejected', 'rejected', 'rejected'), fig('crashes', 'crashes', 'crashes'), fig('timeouts', 'timeouts', 'timeouts')),
    (f.journal = el('div', { class: 'line journal', 'data-testid': 'journal-line', hidden: '' })),
    (f.stream = el('div', { class: 'line stream', 'data-testid': 'stream-line', hidden: '' })),
    (f.fleet = el('div', { class: 'line fleet', 'data-testid': 'fleet-line', hidden: '' },
      fig('consumers', 'consumers', 'consumers'),
      el('span', { class: 'fig' }, el('span', { class: 'k' }, 'desired'), ' ', v('desired', 'desired-consumers')),
      (f.fleetReason = el('span', { class: 'reason' }, '')))),
    el('div', { class: 'line' },
      el('span', { class: 'k' }, 'threads × concurrency'), v('threads', 'threads'),
      (f.auto = el('span', { class: 'badge', 'data-testid': 'autoscale-state' }, '')), (f.limit = el('span', { class: 'badge', 'data-testid': 'rate-limit-state', hidden: '' }, '')),
      (f.reason = el('span', { class: 'reason' }, ''))),
    f.charts.root,
    makeControls(box),
    el('footer', { class: 'card-foot' }, f.openQueue, f.open, f.pause));
}

/** The card's admin controls, folded away until opened: resize, autoscaler, rate limit, purge older. */
function makeControls(box) {
  const f = box.f;
  const num = (testid, label, attrs) => el('input', { type: 'number', class: 'num-in', 'data-testid': testid, 'aria-label': label, ...attrs });
  f.threadsIn = num('threads-input', 'threads', { min: 0, step: 1, oninput: () => { f.threadsIn.dataset.dirty = '1'; } });
  f.threadsIn.addEventListener('blur', () => { if (f.threadsIn.value === '') delete f.threadsIn.dataset.dirty; });
  f.resize = adminButton('Resize', 'resize', 'pin the thread count (turns the autoscaler off)', () => resize(box));
  f.autoToggle = adminButton('turn off', 'autoscale-toggle', 'turn the autoscaler on or off', () => setAutoscale(box));
  f.autoText = el('span', { class: 'v' }, '—');
  f.rlMax = num('rate-limit-max', 'rate limit: messages', { min: 1, step: 1, placeholder: 'max' });
  f.rlPer = num('rate-limit-per', 'rate limit: per ms', { min: 1, step: 1, placeholder: 'ms', value: 1000 });
  f.rlText = el('span', { class: 'v', 'data-testid': 'rate-limit-text' }, '—');
  f.olderIn = num('purge-older-amount', 'age', { min: 0, step: 'any', value: 60 });
  f.olderUnit = el('select', { 'data-testid': 'purge-older-unit', 'aria-label': 'unit' },
    el('option', { value: '60000' }, 'minutes'), el('option', { value: '3600000' }, 'hours'), el('option', { value: '86400000' }, 'days'));
  const row = (label, ...rest) => el('div', { class: 'ctl' }, el('span', { class: 'k' }, label), ...rest);
  f.controls = el('details', { class: 'controls', 'data-testid': 'controls' },
    el('summary', { 'data-testid': 'controls-toggle' }, 'controls'),
    el('form', { class: 'ctl-form', onsubmit: (e) => { e.preventDefault(); resize(box); } },
      row('threads', f.threadsIn, f.resize)),
    row('autoscaler', f.autoText, f.autoToggle),
    RATE_LIMIT_CONTROL
      ? el('form', { class: 'ctl-form', 'data-testid': 'rate-limit-form', onsubmit: (e) => { e.preventDefault(); setRateLimit(box, false); } },
        row('rate limit', f.rlText, f.rlMax, ' per ', f.rlPer, ' ms',
          adminButton('Set', 'rate-limit-set', 'start at most max messages per that many ms', () => setRateLimit(box, false)),
          adminButton('Off', 'rate-limit-off', 'no rate limit', () => setRateLimit(box, true))))
      : null,
    el('form', { class: 'ctl-form', onsubmit: (e) => { e.preventDefault(); purgeOlder(box); } },
      row('dead letters', 'older than ', f.olderIn, f.olderUnit,
        adminButton('Purge', 'purge-older', 'delete the dead letters that died longer ago than that', () => purgeOlder(box)))));
  return f.controls;
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
  f.pause.disabled = !!block || !!box.busy;
  f.pause.title = block || f.pause.dataset.help;
  if (paused) setText(f.paused, s.pausedForMs < 0 ? 'paused' : `paused ${secs(s.pausedForMs / 1000)}`);
  const br = typeof s.breaker === 'string' ? s.breaker : s.breaker && typeof s.breaker === 'object' ? s.breaker.state : null;
  const open = typeof br === 'string' && br !== 'closed' ? br : null;
  f.breaker.hidden = open === null;
  if (open !== null) setText(f.breaker, `breaker ${open}`);
  setText(f.depth, int(s.depth));
  setText(f.inFlight, int(s.inFlight));
  setText(f.delayed, int(s.delayed));
  setText(f.processed, compact(s.processed), int(s.processed));
  setText(f.failed, compact(s.failed), int(s.failed));
  setText(f.dead, int(s.deadLetterSize));
  setText(f.oldest, secs(s.oldestAgeSeconds));
  setText(f.lag, secs(s.estimatedLagSeconds));
  setText(f.p50, ms(s.e2eP50Ms));
  setText(f.p99, ms(s.e2eP99Ms));

  // The ring (its bytes in use), refused sends by reason, crashed threads, handlers past their lease.
  if (isNum(s.capacityBytes) && s.capacityBytes > 0 && isNum(s.usedBytes)) {
    const used = s.usedBytes / s.capacityBytes;
    if (Math.abs(f.ring.value - used) > 1e-4) f.ring.value = used;
    setText(f.ringText, `${bytes(s.usedBytes)} / ${bytes(s.capacityBytes)} (${used >= 0.1 ? Math.round(used * 100) : +(used * 100).toFixed(1)} %)`);
    f.ring.classList.toggle('high', used >= 0.8);
  }
  const by = s.rejectedBy && typeof s.rejectedBy === 'object' ? Object.entries(s.rejectedBy).filter(([, n]) => isNum(n)) : [];
  const nonZero = by.filter(([, n]) => n > 0).map(([r, n]) => `${r} ${int(n)}`);
  setText(f.rejected, isNum(s.rejected) ? `${int(s.rejected)}${nonZero.length ? ` (${nonZero.join(', ')})` : ''}` : '—',
    by.length ? `refused sends by reason: ${by.map(([r, n]) => `${r} ${int(n)}`).join(', ')}` : 'refused sends');
  f.rejected.classList.toggle('bad', isNum(s.rejected) && s.rejected > 0);
  setText(f.crashes, int(s.workerCrashes), 'consumer threads that crashed (their messages were redelivered)');
  f.crashes.classList.toggle('bad', isNum(s.workerCrashes) && s.workerCrashes > 0);
  setText(f.timeouts, int(s.handlerTimeouts), 'handlers that ran past their lease (their thread was replaced)');
  f.timeouts.classList.toggle('bad', isNum(s.handlerTimeouts) && s.handlerTimeouts > 0);

  // A durable mailbox's journal.
  const j = s.store ?? s.journal;
  f.journal.hidden = !j;
  if (j) {
    const last = isNum(j.lastFsyncMs) ? ` (last ${ms(j.lastFsyncMs)})` : '';
    setText(f.journal, `journal ${plural(j.segments ?? 0, 'segment')} · ${bytes(j.bytes)} · ${compact(j.fsyncs)} fsyncs${last} · recovered ${int(j.recovered)} · compactions ${int(j.compactions)}`);
  }

  // A Redis mailbox: its stream (the 1 s snapshot's fresher figures over the 5 s poll's), its fleet.
  const st = s.stream || s.source ? { ...(s.source ?? {}), ...(s.stream ?? {}) } : null;
  f.stream.hidden = !st;
  f.fleet.hidden = !st;
  if (st) {
    const delayedSet = st.delayedSet ?? st.delayed;
    const next = isNum(st.nextDueInMs) && st.nextDueInMs >= 0 ? `, next in ${secs(st.nextDueInMs / 1000)}` : '';
    setText(
      f.stream,
      `stream ${st.connected ? 'connected' : 'UNREACHABLE'} · lag ${int(st.lag)} · pending ${int(st.pending)} · delayed set ${int(delayedSet)}${next} · asks open ${int(st.asksOpen)} · replies in ${int(st.repliesReceived)} (dropped ${int(st.repliesDropped)}) · out ${int(st.repliesSent)}`,
    );
    f.stream.classList.toggle('bad', st.connected === false);
    setText(f.consumers, isNum(st.consumers) && st.consumers >= 0 ? int(st.consumers) : '—', 'consumers in the group (XINFO GROUPS)');
    // desired and its reason: the 1 s snapshot's, else the poll's fleet
    const fl = st.fleet && typeof st.fleet === 'object' ? st.fleet : null;
    const desired = isNum(st.desiredConsumers) ? st.desiredConsumers : fl && isNum(fl.desired) ? fl.desired : null;
    const reason = typeof st.desiredReason === 'string' ? st.desiredReason : fl && typeof fl.reason === 'string' ? fl.reason : null;
    const why = reason ?? (desired === null ? 'no recommendation yet (the group was not polled)' : 'the fleet policy\'s recommendation');
    setText(f.desired, desired === null ? '—' : int(desired), why);
    setText(f.fleetReason, reason ?? '', why);
    f.desired.classList.toggle('warn', desired !== null && isNum(st.consumers) && st.consumers >= 0 && desired !== st.consumers);
  }

  const range = isNum(s.minThreads) && isNum(s.maxThreads) ? `threads ${s.minThreads}-${s.maxThreads}` : '';
  setText(f.threads, `${int(s.threads)} × ${int(s.concurrency)}`, range);
  setText(f.auto, s.autoscale ? 'autoscale on' : 'autoscale off');
  f.auto.classList.toggle('on', !!s.autoscale);
  const rl = s.rateLimit && typeof s.rateLimit === 'object' && isNum(s.rateLimit.max) ? s.rateLimit : null;
  f.limit.hidden = !rl;
  const rlText = rl ? `${int(rl.max)} per ${rl.perMs >= 1000 && rl.perMs % 1000 === 0 ? `${rl.perMs / 1000} s` : `${int(rl.perMs)} ms`}` : 'none';
  if (rl) setText(f.limit, `limit ${rlText}`, rl.scope ? `rate limit (${rl.scope})` : 'rate limit');
  const reason = typeof s.scaleReason === 'string' && s.scaleReason ? s.scaleReason : '—';
  setText(f.reason, reason, `autoscaler's last reason: ${reason}`);

  // The controls: current values beside the inputs (an input being edited is left alone).
  setText(f.autoText, s.autoscale ? 'on' : 'off');
  setText(f.autoToggle, s.autoscale ? 'turn off' : 'turn on');
  f.autoToggle.dataset.state = s.autoscale ? 'on' : 'off';
  setText(f.rlText, rlText);
  const want = isNum(s.desiredThreads) ? s.desiredThreads : s.threads;
  if (isNum(want) && !f.threadsIn.dataset.dirty && document.activeElement !== f.threadsIn) f.threadsIn.value = String(want);
  if (isNum(s.maxThreads)) f.threadsIn.max = String(s.maxThreads);
}

// ---------------------------------------------------------------------------------------------
// The card's actions (admin): each a POST with the token; its answer updates the card at once

async function cardAction(box, what, tail, body, done) {
  const block = adminBlock();
  if (block) return status(block, 'warn');
  box.busy = true;
  updateAdminControls();
  try {
    const r = await post(mailboxUrl(box.name, tail), body);
    done(r ?? {});
  } catch (e) {
    status(`${what} failed (${box.name}): ${e.message}`, 'error');
  } finally {
    box.busy = false;
    renderCard(box);
    updateAdminControls();
  }
}

/** Pause (until resumed) or resume: POST .../pause or .../resume. */
function pauseOrResume(box) {
  const resume = box.f.pause.textContent === 'resume';
  const op = resume ? 'resume' : 'pause';
  if (!resume && !window.confirm(`Pause mailbox "${box.name}"? It starts nothing new until resumed (its messages wait).`)) return status('pause cancelled', 'info');
  return cardAction(box, op, `/${op}`, {}, (r) => {
    box.info = { ...box.info, pausedForMs: r.pausedForMs ?? 0 };
    status(`${box.name} ${r.paused ? 'paused' : 'resumed'}`, 'ok');
  });
}

/** POST .../threads { threads }: pins the size, turns the autoscaler off. */
function resize(box) {
  const f = box.f;
  const raw = f.threadsIn.value.trim();
  const n = Number(raw);
  const max = box.info.maxThreads;
  if (raw === '' || !Number.isInteger(n) || n < 0 || (isNum(max) && n > max)) {
    return status(`threads for ${box.name}: an integer from 0 to ${isNum(max) ? max : 'maxThreads'}`, 'warn');
  }
  const off = box.info.autoscale ? ' This turns its autoscaler off.' : '';
  if (!window.confirm(`Resize mailbox "${box.name}" to ${plural(n, 'thread')}?${off}`)) return status('resize cancelled', 'info');
  return cardAction(box, 'resize', '/threads', { threads: n }, (r) => {
    delete f.threadsIn.dataset.dirty;
    box.info = { ...box.info, desiredThreads: r.threads ?? n, autoscale: r.autoscale ?? false };
    status(`${box.name} resized to ${plural(r.threads ?? n, 'thread')}; autoscaler ${r.autoscale ? 'on' : 'off'}`, 'ok');
  });
}

/** POST .../autoscale { on }. */
function setAutoscale(box) {
  const on = !box.info.autoscale;
  return cardAction(box, 'autoscale', '/autoscale', { on }, (r) => {
    box.info = { ...box.info, autoscale: r.autoscale ?? on };
    status(`${box.name}: autoscaler ${box.info.autoscale ? 'on' : 'off'}`, 'ok');
  });
}

/** POST .../rate-limit { max, perMs } or { off: true }. */
function setRateLimit(box, off) {
  const f = box.f;
  let body = { off: true };
  if (!off) {
    const max = Number(f.rlMax.value);
    const perMs = Number(f.rlPer.value);
    if (!Number.isInteger(max) || max < 1 || !Number.isInteger(perMs) || perMs < 1) return status(`rate limit for ${box.name}: max and ms must be integers of at least 1`, 'warn');
    body = { max, perMs };
  }
  return cardAction(box, 'rate limit', '/rate-limit', body, (r) => {
    const rl = r.rateLimit !== undefined ? r.rateLimit : off ? null : body;
    box.info = { ...box.info, rateLimit: rl };
    status(`${box.name}: ${rl ? `rate limit ${rl.max} per ${rl.perMs} ms` : 'no rate limit'}`, 'ok');
  });
}

/** POST .../dead-letters/purge { olderThanMs }. */
function purgeOlder(box) {
  const f = box.f;
  const amount = Number(f.olderIn.value);
  const unit = Number(f.olderUnit.value);
  if (f.olderIn.value.trim() === '' || !(amount >= 0) || !Number.isFinite(amount)) return status(`purge ${box.name}: the age must be a number of at least 0`, 'warn');
  const olderThanMs = Math.round(amount * unit);
  const label = `${amount} ${f.olderUnit.selectedOptions[0]?.textContent ?? 'minutes'}`;
  if (!window.confirm(`Purge the dead letters of mailbox "${box.name}" that died more than ${label} ago?\nPurged letters are deleted for good.`)) return status('purge cancelled', 'info');
  return cardAction(box, 'purge', '/dead-letters/purge', { olderThanMs }, (r) => {
    status(`purged ${int(r.purged)} dead letter${r.purged === 1 ? '' : 's'} older than ${label} (${box.name})`, 'ok');
  });
}

// ---------------------------------------------------------------------------------------------
// Charts: redrawn at most once a second per card (trailing edge), not while the page is hidden

export function scheduleDraw(box) {
  if (box.drawTimer) return;
  const wait = Math.max(0, 1000 - (performance.now() - box.lastDraw));
  box.drawTimer = setTimeout(() => {
    box.drawTimer = null;
    if (document.hidden) return;
    box.lastDraw = performance.now();
    drawCharts(box);
  }, wait);
}
