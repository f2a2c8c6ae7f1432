/**
 * The operator console's routes (`serve(registry, { console: true })`): the
 * page and its two assets, every mailbox's stats, a page of dead letters,
 * redrive and purge (admin: Bearer token, own Origin), and the live feed.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Runtime } from '../../runtime/runtime.js';
import { pageOf, type DeadLetter, type DeadLetterPage, type DeadLetterReason } from '../../runtime/dead-letters.js';
import { DEAD_LETTER_REASONS } from '../../runtime/outcome.js';
import { AdminToken, ConsoleCodes, HttpError, Origins, checkDeclaredLength, parseSelection, readJsonObject, sendAsset, sendError, sendJson, type Selection } from './http.js';
import { EventHub, kindOf } from './events.js';
import { autoscale, idOf, messagesPage, oneMessage, promote, rateLimit, resize } from './queue.js';

const require = createRequire(import.meta.url);

/** The page's files: shipped in the package under metrics/console/assets, read once. */
const ASSETS_DIR = new URL('../../../metrics/console/assets/', import.meta.url);
const ASSETS: Record<string, [file: string, type: string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/console.css': ['console.css', 'text/css; charset=utf-8'],
  // The page's modules (console.js imports the others).
  '/console.js': ['console.js', 'text/javascript; charset=utf-8'],
  '/dom.js': ['dom.js', 'text/javascript; charset=utf-8'],
  '/cards.js': ['cards.js', 'text/javascript; charset=utf-8'],
  '/letters.js': ['letters.js', 'text/javascript; charset=utf-8'],
};
/** Charts: uPlot's files, served from its package (a dependency). */
const VENDOR: Record<string, [module: string, type: string]> = {
  '/uplot.js': ['uplot/dist/uPlot.iife.min.js', 'text/javascript; charset=utf-8'],
  '/uplot.css': ['uplot/dist/uPlot.min.css', 'text/css; charset=utf-8'],
};
for (const f of readdirSync(ASSETS_DIR)) {
  // The page's own further modules and styles (queue.js, charts.js, ...): every file of the assets directory.
  const type = f.endsWith('.js') ? 'text/javascript; charset=utf-8' : f.endsWith('.css') ? 'text/css; charset=utf-8' : null;
  if (type !== null && ASSETS[`/${f}`] === undefined) ASSETS[`/${f}`] = [f, type];
}

const MAX_PAGE = 500;
const DEFAULT_PAGE = 50;

/** Either store: the in-memory one answers at once, a Redis mailbox's with promises. */
interface AnyDeadLetters {
  list(): DeadLetter[] | Promise<DeadLetter[]>;
  redrive(filter?: (l: DeadLetter) => boolean): number | Promise<number>;
  purge(filter?: (l: DeadLetter) => boolean): number | Promise<number>;
  /** The in-memory store decodes only the page asked for. */
  page?(offset: number, limit: number, reason?: DeadLetterReason): DeadLetterPage<DeadLetter>;
}

export interface ConsoleConfig {
  token: string | undefined;
  host: string;
  port: number;
  origins: readonly string[];
  /** Mounted in another server (consoleHandler): its names are not known, so Host is not checked and Origin must match the request's Host. */
  mounted?: boolean;
}

export class ConsoleRoutes {
  readonly events: EventHub;
  private readonly token: AdminToken;
  private origins: Origins;
  private readonly assets = new Map<string, Buffer>();

  constructor(
    private readonly runtimes: () => Runtime[],
    private readonly config: ConsoleConfig,
  ) {
    this.token = new AdminToken(config.token);
    this.origins = new Origins(config.mounted === true ? '0.0.0.0' : config.host, config.port, config.origins);
    this.events = new EventHub(runtimes);
  }

  /** The port is known once listening (port 0 picks one). */
  listening(port: number): void {
    this.origins = new Origins(this.config.mounted === true ? '0.0.0.0' : this.config.host, port, this.config.origins);
  }

  /** True when the path is the console's (handled, or refused, here). */
  handles(path: string): boolean {
    return path in ASSETS || path in VENDOR || path === '/api' || path.startsWith('/api/');
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    try {
      this.origins.checkHost(req);
      checkDeclaredLength(req);
      const method = req.method ?? 'GET';
      const asset = ASSETS[path] ?? VENDOR[path];
      if (asset !== undefined) {
        this.only(method, ['GET', 'HEAD']);
        sendAsset(res, asset[1], this.asset(asset[0], path in VENDOR), method === 'HEAD');
        return;
      }
      if (path === '/api/history') {
        this.only(method, ['GET']);
        sendJson(res, 200, this.events.history());
        return;
      }
      const q = /^\/api\/mailboxes\/([^/]+)\/(?:(threads|autoscale|rate-limit)|messages(?:\/([^/]+)(\/promote)?)?)$/.exec(path);
      if (q !== null) {
        const name = nameOf(q[1]!);
        const rt = this.find(name);
        if (q[2] === undefined && q[4] === undefined) {
          this.only(method, ['GET']);
          sendJson(res, 200, q[3] === undefined ? messagesPage(rt, name, query) : oneMessage(rt, name, idOf(q[3])));
          return;
        }
        this.only(method, ['POST']);
        this.origins.checkOrigin(req);
        this.token.check(req);
        const body = await readJsonObject(req);
        if (q[4] !== undefined) {
          const r = promote(rt, name, idOf(q[3]!));
          this.events.action(name, `message ${r.id} promoted: runs now`);
          sendJson(res, 200, r);
        } else if (q[2] === 'rate-limit') {
          const r = rateLimit(rt, name, body) as { rateLimit: { max: number; perMs: number } | null };
          this.events.action(name, r.rateLimit === null ? 'rate limit lifted' : `rate limit set to ${r.rateLimit.max} per ${r.rateLimit.perMs} ms`);
          sendJson(res, 200, r);
        } else if (q[2] === 'threads') {
          const r = resize(rt, name, body);
          this.events.action(name, `resized to ${r.threads} thread${r.threads === 1 ? '' : 's'} (autoscaler off)`);
          sendJson(res, 200, r);
        } else {
          const r = autoscale(rt, name, body);
          this.events.action(name, `autoscaler ${r.autoscale ? 'on' : 'off'}`);
          sendJson(res, 200, r);
        }
        return;
      }
      if (path === '/api/mailboxes') {
        this.only(method, ['GET']);
        sendJson(res, 200, this.mailboxes());
        return;
      }
      if (path === '/api/events') {
        this.only(method, ['GET']);
        this.events.open(req, res);
        return;
      }
      const g = /^\/api\/mailboxes\/([^/]+)\/(pause|resume)$/.exec(path);
      if (g !== null) {
        this.only(method, ['POST']);
        this.origins.checkOrigin(req);
        this.token.check(req);
        const name = nameOf(g[1]!);
        const r = this.pauseOrResume(name, g[2]!, await readJsonObject(req)) as { pausedForMs: number };
        this.events.action(name, g[2] === 'pause' ? `paused ${r.pausedForMs < 0 ? 'until resumed' : `for ${r.pausedForMs} ms`}` : 'resumed');
        sendJson(res, 200, r);
        return;
      }
      const m = /^\/api\/mailboxes\/([^/]+)\/dead-letters(?:\/(redrive|purge))?$/.exec(path);
      if (m === null) throw new HttpError(404, ConsoleCodes.NOT_FOUND, `no such console route: ${path}`);
      const name = nameOf(m[1]!);
      const action = m[2];
      if (action === undefined) {
        this.only(method, ['GET']);
        sendJson(res, 200, await this.deadLetterPage(name, query));
        return;
      }
      this.only(method, ['POST']);
      // Origin first (a foreign page learns nothing, not even whether admin is on), then the token, then the body.
      this.origins.checkOrigin(req);
      this.token.check(req);
      const store = this.store(name);
      const sel = parseSelection(await readJsonObject(req));
      const n = await this.act(name, store, action, sel);
      const which = sel.all ? 'every letter' : 'olderThanMs' in sel ? `letters dead over ${sel.olderThanMs} ms` : 'selected letters';
      this.events.action(name, `${action === 'redrive' ? 'redrove' : 'purged'} ${n} dead letter${n === 1 ? '' : 's'} (${which})`);
      sendJson(res, 200, { mailbox: name, [action === 'redrive' ? 'redriven' : 'purged']: n });
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, ConsoleCodes.INTERNAL, `console: ${(err as Error)?.message ?? String(err)}`);
      const extra: Record<string, string> = {};
      // A body not read (refused before it was): close after the reply, so Node does not read it to its end.
      if (!req.readableEnded && req.method !== 'GET' && req.method !== 'HEAD') extra.connection = 'close';
      if (e instanceof MethodError) extra.allow = e.allow;
      if (e.status === 401) extra['www-authenticate'] = 'Bearer realm="ringpool console"';
      sendError(res, e, extra);
    }
  }

  /** rt.pause (body { ms? }: for ms, else until resumed) or rt.resume on the mailbox (issue #31); its pause as it is after. */
  private pauseOrResume(name: string, action: string, body: Record<string, unknown>): object {
    const rt = this.find(name);
    if (action === 'pause') {
      const ms = body.ms;
      if (ms !== undefined && (typeof ms !== 'number' || !Number.isFinite(ms))) throw new HttpError(400, ConsoleCodes.BAD_BODY, "'ms' must be a number (ms), or absent: paused until resumed");
      try {
        rt.pause(name, ms === undefined ? undefined : { ms });
      } catch (err) {
        throw new HttpError(400, ConsoleCodes.BAD_BODY, (err as Error).message);
      }
    } else rt.resume(name);
    const s = rt.stats(name);
    return { mailbox: name, paused: s.paused, pausedForMs: s.pausedForMs };
  }

  /** Redrive or purge the selected letters (every one for `{ all: true }`). */
  private async act(name: string, store: AnyDeadLetters, action: string, sel: Selection): Promise<number> {
    if (!sel.all && 'olderThanMs' in sel) {
      const before = Date.now() - sel.olderThanMs;
      return this.redis(name, () => (action === 'redrive' ? store.redrive((l) => l.deadAt < before) : store.purge((l) => l.deadAt < before)));
    }
    if (!sel.all && sel.ids.size > 0 && store.page === undefined) {
      // A Redis mailbox's letters come from every process of its group: an id may name two. Refuse rather than guess.
      const seen = new Map<number, number>();
      for (const l of await this.redis(name, () => store.list())) if (sel.ids.has(l.id)) seen.set(l.id, (seen.get(l.id) ?? 0) + 1);
      const twice = [...seen].filter(([, k]) => k > 1).map(([id]) => id);
      if (twice.length > 0) {
        throw new HttpError(409, ConsoleCodes.AMBIGUOUS_ID, `ids ${twice.join(', ')} name more than one dead letter of '${name}' (letters from several processes): select them by 'refs' instead`);
      }
    }
    const filter = sel.all ? undefined : (l: DeadLetter): boolean => sel.ids.has(l.id) || sel.refs.has(refOf(l));
    return this.redis(name, () => (action === 'redrive' ? store.redrive(filter) : store.purge(filter)));
  }

  /** A Redis mailbox's store call: Redis unreachable is a 503, not a 500. */
  private async redis<T>(name: string, f: () => T | Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw new HttpError(503, ConsoleCodes.UNAVAILABLE, `mailbox '${name}': its dead letters cannot be read now: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  private only(method: string, allowed: string[]): void {
    if (!allowed.includes(method)) throw new MethodError(method, allowed);
  }

  private asset(file: string, vendor: boolean): Buffer {
    let b = this.assets.get(file);
    if (b === undefined) {
      try {
        b = readFileSync(vendor ? require.resolve(file) : new URL(file, ASSETS_DIR));
      } catch {
        throw new HttpError(404, ConsoleCodes.NOT_FOUND, `the console's file ${file} is not installed`);
      }
      this.assets.set(file, b);
    }
    return b;
  }

  private find(name: string): Runtime {
    for (const rt of this.runtimes()) if (rt.state !== 'closed' && rt.mailboxes.includes(name)) return rt;
    throw new HttpError(404, ConsoleCodes.UNKNOWN_MAILBOX, `no mailbox named '${name}'`);
  }

  private store(name: string): AnyDeadLetters {
    return this.find(name).deadLetters(name) as unknown as AnyDeadLetters;
  }

  mailboxes(): { admin: boolean; mailboxes: object[] } {
    const out: object[] = [];
    for (const rt of this.runtimes()) {
      if (rt.state === 'closed') continue;
      for (const name of rt.mailboxes) {
        const s = rt.stats(name);
        out.push({ name, kind: kindOf(s), ...s });
      }
    }
    return { admin: this.token.configured, mailboxes: out };
  }

  private async deadLetterPage(name: string, query: URLSearchParams): Promise<object> {
    const offset = intParam(query, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(query, 'limit', DEFAULT_PAGE, 1, MAX_PAGE);
    const reason = query.get('reason');
    if (reason !== null && reason !== '' && !(DEAD_LETTER_REASONS as readonly string[]).includes(reason)) {
      throw new HttpError(400, ConsoleCodes.BAD_QUERY, `'reason' must be one of ${DEAD_LETTER_REASONS.join(', ')}`);
    }
    const store = this.store(name);
    const want = reason === null || reason === '' ? undefined : (reason as DeadLetterReason);
    // The in-memory store decodes only the page; a Redis mailbox's is all of <stream>:dead, then paged.
    const page =
      store.page !== undefined
        ? store.page(offset, limit, want)
        : pageOf(await this.redis(name, () => store.list()), (l) => l.reason, (l) => l, offset, limit, want);
    const letters = page.letters.map((l) => ({
      id: l.id,
      ref: refOf(l),
      payload: l.payload,
      key: l.key ?? null,
      attempts: l.attempts,
      reason: l.reason,
      firstError: l.firstError ?? null,
      lastError: l.lastError ?? null,
      headers: l.headers ?? {},
      enqueuedAt: l.enqueuedAt,
      deadAt: l.deadAt,
    }));
    return { mailbox: name, total: page.total, offset, limit, reasons: page.byReason, letters };
  }
}

class MethodError extends HttpError {
  readonly allow: string;
  constructor(method: string, allowed: string[]) {
    super(405, ConsoleCodes.METHOD, `${method} is not allowed here (allowed: ${allowed.join(', ')})`);
    this.allow = allowed.join(', ');
  }
}

/** A letter's handle, unique in its mailbox: its id, or for a Redis mailbox its entry in `<stream>:dead`. */
function refOf(l: DeadLetter): string {
  const entry = (l as { deadEntryId?: unknown }).deadEntryId;
  return typeof entry === 'string' ? entry : String(l.id);
}

function intParam(q: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const v = q.get(name);
  if (v === null || v === '') return dflt;
  if (!/^\d+$/.test(v)) throw new HttpError(400, ConsoleCodes.BAD_QUERY, `'${name}' must be an integer from ${min} to ${max}`);
  const n = Number(v);
  if (n < min || n > max) throw new HttpError(400, ConsoleCodes.BAD_QUERY, `'${name}' must be an integer from ${min} to ${max}`);
  return n;
}

/** A mailbox name from a path segment. */
function nameOf(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, ConsoleCodes.BAD_QUERY, 'the mailbox name in the path is not valid percent-encoding');
  }
}
