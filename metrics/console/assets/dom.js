// ringpool operator console: DOM helpers, formatting, the status line, HTTP, shared state.
//
// Part of the browser page (plain ES modules, no build step; uPlot is the one library, a classic
// script): console.js is the entry point and imports this module, cards.js, charts.js, queue.js,
// log.js and letters.js. This module imports nothing, and nothing here runs at load time beyond
// defining the shared `state` / `ui` objects.
//
// URLs are relative (`api/...`, never `/api/...`): the console may be mounted under a base path
// (`/ops/queue/`) of another server, and the page is always served at a URL ending in `/`.
//
// Security: everything that comes from the server (names, payloads, keys, errors, stacks) is
// rendered as text: el() below only ever uses createTextNode / setAttribute / properties.
// Markup is never built from strings; no inline handlers. The admin token lives in `state.token`
// and nowhere else (no storage, no cookie).

const SVG_NS = 'http://www.w3.org/2000/svg';

/** The page's shared mutable state: every module imports this one object. */
export const state = {
  admin: false, // the server has an admin token configured
  token: '', // what the operator typed; memory only
  boxes: new Map(), // mailbox name -> box (see ensureBox in cards.js)
  conn: null, // the EventSource
};

export const $ = (sel) => document.querySelector(sel);
/** The page's fixed elements, filled in by boot() (console.js). */
export const ui = {};

// ---------------------------------------------------------------------------------------------
// DOM helpers

export function setAttrs(node, attrs) {
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

export function append(node, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** el('td', { class: 'num' }, 'text', child, ...): strings become text nodes, never markup. */
export const el = (tag, attrs, ...children) => append(setAttrs(document.createElement(tag), attrs), children);
export const svg = (tag, attrs, ...children) => append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);

/** Sets a node's text only when it changed (no needless layout work at 20 cards x 1 Hz). */
export function setText(node, text, title) {
  const s = String(text);
  if (node.textContent !== s) node.textContent = s;
  if (title !== undefined && node.title !== title) node.title = title;
}

// ---------------------------------------------------------------------------------------------
// Formatting

export const isNum = (n) => typeof n === 'number' && Number.isFinite(n);
export const int = (n) => (isNum(n) ? String(Math.round(n)) : '—');

export function compact(n) {
  if (!isNum(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${+(n / 1e3).toFixed(1)}k`;
  if (a >= 10 || Number.isInteger(n)) return String(Math.round(n));
  return String(+n.toFixed(a >= 1 ? 1 : 2));
}

export function secs(s) {
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

export function ms(v) {
  if (!isNum(v)) return '—';
  if (v >= 1000) return secs(v / 1000);
  return `${v < 1 ? v.toFixed(2) : v < 10 ? v.toFixed(1) : Math.round(v)} ms`;
}

/** Bytes: 812 B, 1.2 KiB, 8 MiB. */
export function bytes(n) {
  if (!isNum(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${u === 0 || v >= 10 ? Math.round(v) : +v.toFixed(1)} ${units[u]}`;
}

/** A time relative to now: "4.2 s ago", "in 58 s" (a clock skew of the server's shows as such). */
export function ago(t, now = Date.now()) {
  if (!isNum(t)) return '—';
  const d = (now - t) / 1000;
  if (Math.abs(d) < 0.05) return 'now';
  return d >= 0 ? `${secs(d)} ago` : `in ${secs(-d)}`;
}

/** A clock time, 24-hour, with seconds: 14:03:27. */
export function clock(t) {
  if (!isNum(t)) return '—';
  const d = new Date(t);
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export const when = (t) => (isNum(t) ? new Date(t).toLocaleString(undefined, { hour12: false }) : '—');
export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function truncate(s, max) {
  const line = String(s).split('\n', 1)[0];
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export function pretty(v) {
  try {
    return JSON.stringify(v, null, 2) ?? String(v);
  } catch {
    return String(v);
  }
}

// ---------------------------------------------------------------------------------------------
// Status line and HTTP

export function status(text, kind = 'info') {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
}

/** A mailbox's API path, relative to the page: mailboxUrl('a/b', '/pause') -> 'api/mailboxes/a%2Fb/pause'. */
export const mailboxUrl = (name, tail = '') => `api/mailboxes/${encodeURIComponent(name)}${tail}`;

/** An admin POST: JSON body, the Bearer token; the reply's JSON (throws like api()). */
export function post(url, body) {
  return api(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${state.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
}

/** fetch + JSON; throws Error("<status>: <server's error message>") on a non-2xx reply. */
export async function api(url, init) {
  const res = await fetch(url, { cache: 'no-store', ...init });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const msg = body && typeof body.error === 'string' ? body.error : res.statusText || 'request failed';
    const err = new Error(`${res.status}: ${msg}`);
    err.status = res.status;
    err.code = body && typeof body.code === 'string' ? body.code : undefined;
    throw err;
  }
  return body;
}
