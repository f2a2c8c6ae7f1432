/**
 * The console's HTTP guards and replies: JSON errors with a stable code, a
 * bounded JSON body, the admin checks (Origin, Bearer token compared in
 * constant time) and the Host check that keeps a loopback console away from
 * DNS rebinding.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** The largest request body the console reads. */
export const MAX_BODY_BYTES = 1 << 20;

/** A refusal: its status, its stable code and what to tell the caller. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The stable codes of the console's refusals (the `code` of a JSON error body). */
export const ConsoleCodes = {
  NOT_FOUND: 'RINGPOOL_CONSOLE_NOT_FOUND',
  METHOD: 'RINGPOOL_CONSOLE_METHOD_NOT_ALLOWED',
  UNKNOWN_MAILBOX: 'RINGPOOL_CONSOLE_UNKNOWN_MAILBOX',
  BAD_QUERY: 'RINGPOOL_CONSOLE_BAD_QUERY',
  BAD_JSON: 'RINGPOOL_CONSOLE_BAD_JSON',
  BAD_BODY: 'RINGPOOL_CONSOLE_BAD_BODY',
  BODY_TOO_LARGE: 'RINGPOOL_CONSOLE_BODY_TOO_LARGE',
  UNSUPPORTED_MEDIA: 'RINGPOOL_CONSOLE_UNSUPPORTED_MEDIA_TYPE',
  ADMIN_DISABLED: 'RINGPOOL_CONSOLE_ADMIN_DISABLED',
  UNAUTHORIZED: 'RINGPOOL_CONSOLE_UNAUTHORIZED',
  BAD_ORIGIN: 'RINGPOOL_CONSOLE_BAD_ORIGIN',
  BAD_HOST: 'RINGPOOL_CONSOLE_BAD_HOST',
  AMBIGUOUS_ID: 'RINGPOOL_CONSOLE_AMBIGUOUS_ID',
  UNAVAILABLE: 'RINGPOOL_CONSOLE_UNAVAILABLE',
  BAD_REQUEST: 'RINGPOOL_CONSOLE_BAD_REQUEST',
  HEADERS_TOO_LARGE: 'RINGPOOL_CONSOLE_HEADERS_TOO_LARGE',
  INTERNAL: 'RINGPOOL_CONSOLE_INTERNAL',
} as const;

/** Headers on every console reply: nothing sniffed, framed, cached or leaked in a Referer. */
const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'cross-origin-resource-policy': 'same-origin',
};

export const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body, jsonSafe);
  res.writeHead(status, { ...COMMON_HEADERS, ...extra, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text);
}

export function sendError(res: ServerResponse, err: HttpError, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.status, { error: err.message, code: err.code }, extra);
}

export function sendAsset(res: ServerResponse, type: string, body: Buffer, head: boolean): void {
  res.writeHead(200, { ...COMMON_HEADERS, 'content-type': type, 'content-length': body.length, 'content-security-policy': PAGE_CSP });
  res.end(head ? undefined : body);
}

/**
 * A request Node's HTTP parser refused before any route saw it (a request
 * line or headers over 16 KiB, a malformed header, a bad Content-Length):
 * the same JSON error as every other refusal, then the connection closes.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [status, code] =
    err.code === 'HPE_HEADER_OVERFLOW' ? [431, ConsoleCodes.HEADERS_TOO_LARGE] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, ConsoleCodes.BAD_REQUEST] : [400, ConsoleCodes.BAD_REQUEST];
  const text = JSON.stringify({ error: `malformed request (${err.code ?? 'refused by the HTTP parser'})`, code });
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
}

/**
 * What a decoded payload may hold that JSON cannot (msgpack's Map, Set,
 * BigInt, typed arrays; raw bytes): each as a tagged object, never a throw.
 */
export function jsonSafe(this: unknown, key: string, value: unknown): unknown {
  // The value before its toJSON (a Buffer's toJSON would give { type, data: [...] }).
  const raw = (this as Record<string, unknown>)[key];
  if (typeof raw === 'bigint') return { $bigint: raw.toString() };
  if (raw instanceof Map) return { $map: [...raw.entries()] };
  if (raw instanceof Set) return { $set: [...raw.values()] };
  if (ArrayBuffer.isView(raw)) {
    const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    return { $bytes: bytes.toString('base64'), type: raw.constructor.name };
  }
  if (raw instanceof ArrayBuffer || raw instanceof SharedArrayBuffer) return { $bytes: Buffer.from(new Uint8Array(raw)).toString('base64'), type: raw.constructor.name };
  return value;
}

/** A request whose declared body is over the limit: refused before anything else looks at it. */
export function checkDeclaredLength(req: IncomingMessage): void {
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
    throw new HttpError(413, ConsoleCodes.BODY_TOO_LARGE, `request body over ${MAX_BODY_BYTES} bytes`);
  }
}

/**
 * Read a JSON object body of at most MAX_BODY_BYTES. An empty body is `{}`
 * (which names no letters: parseSelection refuses it).
 * A larger one is refused as soon as it passes the limit (413), without
 * reading the rest.
 */
export function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const type = req.headers['content-type'];
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        done = true;
        reject(new HttpError(413, ConsoleCodes.BODY_TOO_LARGE, `request body over ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('error', (e) => {
      if (done) return;
      done = true;
      reject(new HttpError(400, ConsoleCodes.BAD_BODY, `request body: ${e.message}`));
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') {
        resolve({});
        return;
      }
      if (type !== undefined && !/^application\/json\b/i.test(type)) {
        reject(new HttpError(415, ConsoleCodes.UNSUPPORTED_MEDIA, `expected Content-Type: application/json, got '${type}'`));
        return;
      }
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        reject(new HttpError(400, ConsoleCodes.BAD_JSON, `malformed JSON body: ${(e as Error).message}`));
        return;
      }
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        reject(new HttpError(400, ConsoleCodes.BAD_BODY, 'the body must be a JSON object: {"ids":[...]}, {"refs":[...]} or {"all":true}'));
        return;
      }
      resolve(v as Record<string, unknown>);
    });
  });
}

/** Which letters a redrive or purge acts on: every one, or those named. */
export type Selection = { all: true } | { all: false; ids: Set<number>; refs: Set<string> } | { all: false; olderThanMs: number };

const SELECTION_KEYS = ['all', 'ids', 'refs', 'olderThanMs'];

/**
 * Which letters a redrive or purge body names: `{"all": true}` (every letter
 * of the mailbox, said explicitly), or `ids` (message ids, integers) and/or
 * `refs` (the `ref` of each letter in a page: unique in its mailbox, also for
 * a Redis mailbox whose letters from several processes may share an id).
 * Anything else is refused (400), so that a misspelt key or an empty body
 * never acts on every letter: an unknown key, a body naming nothing, `all`
 * other than `true` or beside `ids`/`refs`, a known key of the wrong type.
 */
export function parseSelection(body: Record<string, unknown>): Selection {
  const bad = (why: string): HttpError => new HttpError(400, ConsoleCodes.BAD_BODY, `${why}: send {"ids":[...]}, {"refs":[...]}, {"olderThanMs":n} or {"all":true}`);
  for (const k of Object.keys(body)) {
    if (!SELECTION_KEYS.includes(k)) throw bad(`unknown key '${k.length > 40 ? `${k.slice(0, 37)}...` : k}' in the body (known: ${SELECTION_KEYS.join(', ')}); nothing was changed`);
  }
  const own = (k: string): unknown => (Object.hasOwn(body, k) ? body[k] : undefined);
  const all = own('all');
  const ids = own('ids');
  const refs = own('refs');
  const older = own('olderThanMs');
  if (older !== undefined) {
    if (typeof older !== 'number' || !Number.isSafeInteger(older) || older < 0) throw bad("'olderThanMs' must be an integer >= 0 (letters dead for longer than that)");
    if (all !== undefined || ids !== undefined || refs !== undefined) throw bad("'olderThanMs' selects by age: give it alone");
    return { all: false, olderThanMs: older };
  }
  if (all !== undefined) {
    if (all !== true) throw bad("'all' must be true (or absent)");
    if (ids !== undefined || refs !== undefined) throw bad("'all' names every letter: give it without 'ids' or 'refs'");
    return { all: true };
  }
  if (ids === undefined && refs === undefined) throw bad('the body names no letters; nothing was changed');
  if (ids !== undefined && (!Array.isArray(ids) || !ids.every((x) => Number.isSafeInteger(x)))) {
    throw bad("'ids' must be an array of integer message ids");
  }
  if (refs !== undefined && (!Array.isArray(refs) || !refs.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 64))) {
    throw bad("'refs' must be an array of the letters' ref strings");
  }
  return { all: false, ids: new Set((ids ?? []) as number[]), refs: new Set((refs ?? []) as string[]) };
}

/** The admin token, hashed once: the compare then always runs over 32 bytes, whatever was sent. */
export class AdminToken {
  private readonly digest: Buffer | null;
  constructor(token: string | undefined) {
    this.digest = token === undefined ? null : sha256(token);
  }

  get configured(): boolean {
    return this.digest !== null;
  }

  /** 403 when no token is configured, 401 when the header is missing or the token wrong. */
  check(req: IncomingMessage): void {
    if (this.digest === null) {
      throw new HttpError(403, ConsoleCodes.ADMIN_DISABLED, 'admin calls are disabled: serve() was given no admin.token');
    }
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
    if (m === null) throw new HttpError(401, ConsoleCodes.UNAUTHORIZED, 'admin calls need an Authorization: Bearer <token> header');
    if (!timingSafeEqual(sha256(m[1]!), this.digest)) throw new HttpError(401, ConsoleCodes.UNAUTHORIZED, 'wrong admin token');
  }
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
const isLoopback = (host: string): boolean => LOOPBACK_NAMES.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '[::]';

/**
 * Who may talk to the console: the Host header (a console bound to loopback
 * answers only loopback names, so a DNS-rebinding page cannot read it) and,
 * for admin calls, the Origin (absent, or the console's own).
 */
export class Origins {
  private readonly hosts: Set<string>;
  constructor(
    private readonly boundHost: string,
    port: number,
    extra: readonly string[],
  ) {
    const bracket = (h: string): string => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
    const names = new Set([bracket(boundHost)]);
    if (isLoopback(boundHost) || isWildcard(boundHost)) for (const n of ['localhost', '127.0.0.1', '[::1]']) names.add(n);
    this.hosts = new Set([...names].map((n) => `${n}:${port}`));
    // On the scheme's default port a browser sends Host and Origin without it.
    if (port === 80 || port === 443) for (const n of names) this.hosts.add(n);
    for (const o of extra) this.hosts.add(new URL(o).host);
  }

  /** The request's Host is one of ours (any Host when bound to a wildcard address: we cannot know our names). */
  checkHost(req: IncomingMessage): void {
    if (isWildcard(this.boundHost)) return;
    const host = (req.headers.host ?? '').toLowerCase();
    if (!this.hosts.has(host)) throw new HttpError(403, ConsoleCodes.BAD_HOST, `Host '${host}' is not this console's (list it in serve()'s admin.origins)`);
  }

  /** An admin call: Origin absent (curl, a script) or this console's own. */
  checkOrigin(req: IncomingMessage): void {
    const origin = req.headers.origin;
    if (origin === undefined) return;
    let host: string;
    try {
      const u = new URL(origin);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
      host = u.host;
    } catch {
      throw new HttpError(403, ConsoleCodes.BAD_ORIGIN, `Origin '${origin}' is not this console's`);
    }
    const own = isWildcard(this.boundHost) ? host === (req.headers.host ?? '').toLowerCase() || this.hosts.has(host) : this.hosts.has(host);
    if (!own) throw new HttpError(403, ConsoleCodes.BAD_ORIGIN, `Origin '${origin}' is not this console's: admin calls come from its own page only`);
  }
}
