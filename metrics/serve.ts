/**
 * `serve(registry, options)`: one node:http server for a registry's
 * runtimes: `GET /metrics` (Prometheus), `GET /livez` and `GET /readyz`
 * (health.ts; `/healthz` as before), and with
 * `console: true` the operator console and its API (console/api.ts).
 */
import { createServer, type Server } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Runtime } from '../runtime/runtime.js';
import { ErrorCodes, RingpoolError, invalidOption, optionThrew } from '../runtime/shared/errors.js';
import { ConsoleRoutes } from './console/api.js';
import { answerClientError } from './console/http.js';
import { exportedRuntimes, isRegistry, watchExports } from './exported.js';
import { health } from './health.js';

/** What `serve()` answers: where it listens, and how to stop it. */
export interface MetricsServer {
  readonly port: number;
  readonly url: string;
  /** Stop listening. */
  close(): Promise<void>;
}

/** `serve(registry, options)`. */
export interface ServeOptions {
  /** 0 picks a free port. @default 9464 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Serve the operator console at `GET /` and its API under `/api/`. @default false */
  console?: boolean;
  /** The console's admin calls (redrive, purge). Without a token the console is read-only. */
  admin?: ConsoleOptions;
}

/** `serve({ console })`: the operator console's options. */
export interface ConsoleOptions {
  /** The Bearer token admin calls must carry. Undefined: read-only (admin calls get 403). */
  token?: string | undefined;
  /**
   * Other origins the console is reached at (a proxy, a host name), e.g.
   * 'https://ops.example.com': their Host and Origin are accepted too.
   */
  origins?: readonly string[];
}

const SERVE_KEYS = ['port', 'host', 'console', 'admin'];
const ADMIN_KEYS = ['token', 'origins'];

interface ResolvedServe {
  port: number;
  host: string;
  console: boolean;
  token: string | undefined;
  origins: string[];
}

/**
 * serve()'s options, each read once and checked as createRuntime's are: a
 * message naming the option and the bad value, RINGPOOL_INVALID_OPTION (also
 * for an unknown key, and a getter or Proxy trap that throws).
 */
function serveOptions(options: unknown): ResolvedServe {
  if (options === undefined) return { port: 9464, host: '127.0.0.1', console: false, token: undefined, origins: [] };
  try {
    if (!isPlainObject(options)) throw invalidOption('serve', 'an object { port, host, console, admin }', options);
    for (const k of Object.keys(options)) if (!SERVE_KEYS.includes(k)) throw invalidOption(k, `one of ${SERVE_KEYS.join(', ')} (unknown option)`, options[k]);
    const { port = 9464, host = '127.0.0.1', console: withConsole = false, admin = {} } = options;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw invalidOption('port', 'an integer from 0 to 65535', port);
    if (typeof host !== 'string' || !(isIP(host) !== 0 || HOST_NAME.test(host))) {
      throw invalidOption('host', "an IP address or a host name to listen on, e.g. '127.0.0.1', '::1', 'localhost', '0.0.0.0'", host);
    }
    if (typeof withConsole !== 'boolean') throw invalidOption('console', 'true or false', withConsole);
    if (!isPlainObject(admin)) throw invalidOption('admin', 'an object { token?, origins? }', admin);
    for (const k of Object.keys(admin)) if (!ADMIN_KEYS.includes(k)) throw invalidOption(`admin.${k}`, `one of ${ADMIN_KEYS.join(', ')} (unknown option)`, admin[k]);
    const { token, origins = [] } = admin;
    if (token !== undefined && (typeof token !== 'string' || !/^\S+$/.test(token))) {
      // No whitespace: a Bearer token is one word of the Authorization header.
      throw invalidOption('admin.token', 'a non-empty string without whitespace (or undefined for a read-only console)', typeof token === 'string' ? '(a string with whitespace, or empty)' : token);
    }
    if (!Array.isArray(origins)) throw invalidOption('admin.origins', "an array of origins such as 'https://ops.example.com'", origins);
    const list: string[] = [];
    for (let i = 0; i < origins.length; i++) {
      const o: unknown = origins[i];
      if (typeof o !== 'string' || !isHttpOrigin(o)) throw invalidOption(`admin.origins[${i}]`, "an http: or https: origin with a host, such as 'https://ops.example.com'", o);
      list.push(o);
    }
    return { port, host, console: withConsole, token, origins: list };
  } catch (err) {
    throw optionThrew('serve() options', err);
  }
}

/** A host name of letters, digits, '-' and '.' labels (no spaces, no scheme, no port). */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function isHttpOrigin(o: string): boolean {
  if (!URL.canParse(o)) return false;
  const u = new URL(o);
  return (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The host and port cannot be listened on (in use, not this machine's, not allowed): named, with the system's error as `cause`. */
function listenError(host: string, port: number, err: NodeJS.ErrnoException): RingpoolError {
  const option = err.code === 'EADDRINUSE' || err.code === 'EACCES' ? 'port' : 'host';
  return new RingpoolError(ErrorCodes.INVALID_OPTION, `serve(): cannot listen on ${host}:${port}: ${err.code ?? ''} ${err.message}`.trim(), { option, value: option === 'port' ? port : host, errno: err.code }, { cause: err });
}

/**
 * Serve `registry` over node:http: `GET /metrics` (Prometheus text format) and
 * the probes (health.ts; JSON, 200 or 503): `GET /livez` (liveness: fails
 * only when a runtime is broken), `GET /readyz` (readiness: also fails while
 * starting or recovering a journal, draining, or a Redis mailbox cannot reach
 * Redis) and `GET /healthz` (as before: fails when stopped or a running
 * Redis mailbox cannot reach Redis); with
 * `console: true`, the operator console (`GET /`, `/api/...`). Closes itself
 * when the last runtime exported on the registry closes.
 */
export async function serve(registry: Registry, options: ServeOptions = {}): Promise<MetricsServer> {
  let isReg: boolean;
  try {
    isReg = isRegistry(registry);
  } catch (err) {
    throw optionThrew('registry', err);
  }
  if (!isReg) throw invalidOption('registry', 'a prom-client Registry', registry);
  const { host, port, console: withConsole, token, origins } = serveOptions(options);
  const consoleRoutes = withConsole ? new ConsoleRoutes(() => exportedRuntimes(registry), { token, host, port, origins }) : null;
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (consoleRoutes !== null && consoleRoutes.handles(path)) {
      void consoleRoutes.handle(req, res, path, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)));
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      );
    } else if (path === '/livez' || path === '/readyz' || path === '/healthz') {
      const h = health(exportedRuntimes(registry), path === '/livez' ? 'live' : path === '/readyz' ? 'ready' : 'legacy');
      res.writeHead(h.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(h));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: try /metrics, /livez or /readyz${consoleRoutes === null ? '' : ', or / for the console'}\n`);
    }
  });
  server.on('clientError', answerClientError);
  await new Promise<void>((resolve, reject) => {
    const refused = (err: NodeJS.ErrnoException): void => reject(listenError(host, port, err));
    server.once('error', refused);
    server.listen(port, host, () => {
      server.off('error', refused);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  consoleRoutes?.listening(actual);
  let closed: Promise<void> | null = null;
  const open = new Map<Runtime, () => void>();
  const close = (): Promise<void> => {
    if (closed === null) {
      consoleRoutes?.events.close();
      for (const [rt, onClose] of open) rt.off('close', onClose);
      open.clear();
      closed = new Promise((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    }
    return closed;
  };
  // Close with the last runtime on this registry: those exported now, and those exported later.
  const watch = (rt: Runtime): void => {
    if (closed !== null || open.has(rt) || rt.state === 'closed') return;
    const onClose = (): void => {
      open.delete(rt);
      if (open.size === 0) void close();
    };
    open.set(rt, onClose);
    rt.once('close', onClose);
  };
  const unwatch = watchExports(registry, (rt) => {
    watch(rt);
    if (closed === null) consoleRoutes?.events.watch(rt);
  });
  void server.once('close', unwatch);
  server.unref();
  return { port: actual, url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`, close };
}
