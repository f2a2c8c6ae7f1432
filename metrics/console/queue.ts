/**
 * The console's queue routes, under `/api/mailboxes/<name>/`: the queue
 * itself (`messages?state=ready|in-flight|delayed`, `messages/<id>`) and the
 * operator's actions on a mailbox (`threads`, `autoscale`, `rate-limit`, `messages/<id>/promote`;
 * pause, resume and the dead letters' are in api.ts). Each action is checked
 * and answered with what the mailbox looks like after it.
 */
import type { Runtime } from '../../runtime/runtime.js';
import type { MessageState } from '../../runtime/mailbox/inspect.js';
import { ConsoleCodes, HttpError } from './http.js';

const STATES: readonly MessageState[] = ['ready', 'in-flight', 'delayed'];
const MAX_MESSAGES = 500;
const DEFAULT_MESSAGES = 50;

/** `GET .../messages?state=&limit=`: the first messages in that state, and how many there are. */
export function messagesPage(rt: Runtime, name: string, query: URLSearchParams): object {
  const state = query.get('state') ?? 'ready';
  if (!(STATES as readonly string[]).includes(state)) throw new HttpError(400, ConsoleCodes.BAD_QUERY, `'state' must be one of ${STATES.join(', ')}`);
  const raw = query.get('limit');
  let limit = DEFAULT_MESSAGES;
  if (raw !== null && raw !== '') {
    if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_MESSAGES) throw new HttpError(400, ConsoleCodes.BAD_QUERY, `'limit' must be an integer from 1 to ${MAX_MESSAGES}`);
    limit = Number(raw);
  }
  return rt.inspect(name, { state: state as MessageState, limit });
}

/** `GET .../messages/<id>`: one message with its payload, or 404. */
export function oneMessage(rt: Runtime, name: string, id: number): object {
  const m = rt.message(name, id);
  if (m === null) throw new HttpError(404, ConsoleCodes.NOT_FOUND, `mailbox '${name}' holds no message ${id} here (done, dead-lettered, or held by another process)`);
  return { mailbox: name, ...m };
}

/** `POST .../messages/<id>/promote`: a delayed or retrying message runs now. */
export function promote(rt: Runtime, name: string, id: number): { mailbox: string; id: number; promoted: true } {
  if (!rt.promote(name, id)) throw new HttpError(404, ConsoleCodes.NOT_FOUND, `mailbox '${name}' holds no delayed message ${id} here`);
  return { mailbox: name, id, promoted: true };
}

/** `POST .../threads` `{ threads }`: rt.resize (the autoscaler leaves the size alone until turned on again). */
export function resize(rt: Runtime, name: string, body: Record<string, unknown>): { mailbox: string; threads: number; autoscale: boolean } {
  only(body, ['threads']);
  const threads = body.threads;
  if (typeof threads !== 'number' || !Number.isInteger(threads)) throw new HttpError(400, ConsoleCodes.BAD_BODY, "'threads' must be an integer");
  try {
    rt.resize(name, threads);
  } catch (err) {
    throw new HttpError(400, ConsoleCodes.BAD_BODY, (err as Error).message);
  }
  return { mailbox: name, threads, autoscale: rt.stats(name).autoscale };
}

/** `POST .../autoscale` `{ on }`: rt.autoscale. */
export function autoscale(rt: Runtime, name: string, body: Record<string, unknown>): { mailbox: string; autoscale: boolean } {
  only(body, ['on']);
  if (typeof body.on !== 'boolean') throw new HttpError(400, ConsoleCodes.BAD_BODY, "'on' must be true or false");
  rt.autoscale(name, body.on);
  return { mailbox: name, autoscale: rt.stats(name).autoscale };
}

/** `POST .../rate-limit` `{ max, perMs }` or `{ off: true }`: rt.setRateLimit. */
export function rateLimit(rt: Runtime, name: string, body: Record<string, unknown>): { mailbox: string; rateLimit: object | null } {
  only(body, ['max', 'perMs', 'off']);
  if (body.off !== undefined && (body.off !== true || body.max !== undefined || body.perMs !== undefined)) throw new HttpError(400, ConsoleCodes.BAD_BODY, "send { max, perMs } or { off: true }");
  try {
    rt.setRateLimit(name, body.off === true ? null : { max: body.max as number, perMs: body.perMs as number });
  } catch (err) {
    throw new HttpError(400, ConsoleCodes.BAD_BODY, (err as Error).message);
  }
  return { mailbox: name, rateLimit: rt.stats(name).rateLimit };
}

/** A message id from a path segment. */
export function idOf(segment: string): number {
  if (!/^\d{1,15}$/.test(segment)) throw new HttpError(400, ConsoleCodes.BAD_QUERY, 'the message id in the path must be an integer');
  return Number(segment);
}

function only(body: Record<string, unknown>, keys: string[]): void {
  for (const k of Object.keys(body)) {
    if (!keys.includes(k)) throw new HttpError(400, ConsoleCodes.BAD_BODY, `unknown key '${k.length > 40 ? `${k.slice(0, 37)}...` : k}' in the body (known: ${keys.join(', ')}); nothing was changed`);
  }
}
