/**
 * `consoleHandler(registry, { basePath, admin })`: the operator console as a
 * request handler for a server the application already runs (node:http,
 * Express, Fastify), behind that server's own authentication, as Bull
 * Board's adapters are. The page uses relative URLs, so it works under any
 * basePath; `serve({ console: true })` is the same console on its own port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { invalidOption, optionThrew } from '../../runtime/shared/errors.js';
import { exportedRuntimes, isRegistry, watchExports } from '../exported.js';
import { ConsoleRoutes } from './api.js';
import { ConsoleCodes, HttpError, sendError } from './http.js';

/** `consoleHandler(registry, options)`. */
export interface ConsoleHandlerOptions {
  /** Where the console is mounted, e.g. '/ops/queue' (no trailing slash); '' for the server's root. @default '' */
  basePath?: string;
  /** Admin calls (redrive, purge, pause, resize, ...): the Bearer token they must carry; without one the console is read-only. */
  admin?: {
    token?: string | undefined;
    /** Other origins the page is reached at (a proxy): their Origin is accepted for admin calls, besides the request's own Host. */
    origins?: readonly string[];
  };
}

/**
 * The console as a handler: `(req, res, next?)`. A request outside
 * `basePath` goes to `next()` (Express) or gets a 404. `close()` stops its
 * history timer and its live feeds.
 */
export interface ConsoleHandler {
  /** Answer a request under basePath; any other goes to `next()`, or gets a 404. */
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** Stop the history timer and the live feeds (the page's event streams end). */
  close(): void;
}

const BASE_PATH = /^(?:\/[A-Za-z0-9._~-]+)*$/;

/**
 * Mount the console in an existing server, e.g. with node:http
 * `createServer((req, res) => req.url?.startsWith('/ops/queue') ? handler(req, res) : app(req, res))`,
 * Express `app.use(handler)` (it reads `req.originalUrl`), or Fastify
 * `app.all('/ops/queue/*', (req, reply) => { reply.hijack(); handler(req.raw, reply.raw); })`.
 */
export function consoleHandler(registry: Registry, options: ConsoleHandlerOptions = {}): ConsoleHandler {
  let basePath: string;
  let token: string | undefined;
  let origins: string[];
  try {
    if (!isRegistry(registry)) throw invalidOption('registry', 'a prom-client Registry', registry);
    if (typeof options !== 'object' || options === null) throw invalidOption('consoleHandler', 'an object { basePath?, admin? }', options);
    for (const k of Object.keys(options)) if (k !== 'basePath' && k !== 'admin') throw invalidOption(k, 'one of basePath, admin (unknown option)', (options as Record<string, unknown>)[k]);
    basePath = options.basePath ?? '';
    if (typeof basePath !== 'string' || !BASE_PATH.test(basePath) || basePath.split('/').some((p) => p === '.' || p === '..')) {
      throw invalidOption('basePath', "'' or a path such as '/ops/queue' (segments of letters, digits, . _ ~ -; no trailing slash)", basePath);
    }
    const admin = options.admin ?? {};
    token = admin.token;
    if (token !== undefined && (typeof token !== 'string' || !/^\S+$/.test(token))) throw invalidOption('admin.token', 'a non-empty string without whitespace (or undefined for a read-only console)', '(not such a string)');
    origins = [...(admin.origins ?? [])];
    for (const [i, o] of origins.entries()) if (typeof o !== 'string' || !URL.canParse(o)) throw invalidOption(`admin.origins[${i}]`, "an origin such as 'https://ops.example.com'", o);
  } catch (err) {
    throw optionThrew('consoleHandler() options', err);
  }
  const routes = new ConsoleRoutes(() => exportedRuntimes(registry), { token, host: '0.0.0.0', port: 0, origins, mounted: true });
  const unwatch = watchExports(registry, (rt) => routes.events.watch(rt));
  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    // Express gives the mounted app a shortened req.url; originalUrl is the whole of it.
    const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
    const q = url.indexOf('?');
    const full = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q);
    if (full === basePath && basePath !== '') {
      // The page's relative URLs need the trailing slash.
      res.writeHead(308, { location: `${basePath}/${query}` }).end();
      return;
    }
    const path = full.startsWith(`${basePath}/`) ? full.slice(basePath.length) : null;
    if (path === null || !routes.handles(path)) {
      if (next !== undefined) next();
      else sendError(res, new HttpError(404, ConsoleCodes.NOT_FOUND, `not the console's: ${full}`));
      return;
    }
    void routes.handle(req, res, path, new URLSearchParams(query.slice(1)));
  }) as ConsoleHandler;
  handler.close = (): void => {
    unwatch();
    routes.events.close();
  };
  return handler;
}
