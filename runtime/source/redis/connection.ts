/**
 * Redis connections for a Redis Streams mailbox (main thread): node-redis 6
 * (`@redis/client`, an optional peer), loaded only when a mailbox has a Redis source, with reconnection on a
 * capped exponential backoff, and the up/down state
 * (`/healthz` answers 503 while a source is down). Also the two reply shapes
 * the source reads: stream entries and errors.
 */
import { ErrorCodes, RingpoolError, peerMissing } from '../../shared/errors.js';
import { keySlot, masterOf, type RedisTarget } from './target.js';

type Redis = typeof import('@redis/client');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Client = any;

let loaded: Promise<Redis> | null = null;
/**
 * node-redis's client, an optional peer dependency: loaded only when a Redis
 * mailbox or producer is used. Not installed: RINGPOOL_PEER_MISSING naming it.
 */
export function loadRedis(): Promise<Redis> {
  loaded ??= import('@redis/client').catch((err: unknown) => {
    loaded = null;
    throw peerMissing('@redis/client', 'a Redis mailbox or producer', err);
  });
  return loaded;
}

/** Backoff between reconnection attempts: 50 ms doubling to 2 s, with jitter so many consumers do not reconnect in step. */
export function backoffMs(retries: number): number {
  return Math.min(50 * 2 ** Math.min(retries, 6), 2_000) + Math.floor(Math.random() * 50);
}

export class Connection {
  client: Client = null;
  /** Replies with blob strings as Buffers (payloads are bytes under every codec). */
  bytes: { typeMapping: Record<number, unknown> } = { typeMapping: {} };
  up = false;
  /** The last connection error, while down. */
  lastError: Error | null = null;
  private everUp = false;
  private closing = false;

  constructor(
    private readonly target: RedisTarget,
    /** A key of the mailbox: on a cluster, the connection goes to the master of its slot. */
    private readonly slotKey: string,
    private readonly name: string,
    /** The connection went down (once per outage) or came back up. */
    private readonly onChange: (up: boolean, err: Error | null) => void,
  ) {}

  /** Connect, waiting up to `timeoutMs` for the first answer; later drops reconnect on their own. */
  async open(timeoutMs: number): Promise<void> {
    const redis = await loadRedis();
    this.bytes = { typeMapping: { [redis.RESP_TYPES.BLOB_STRING]: Buffer } };
    const socket = { reconnectStrategy: (retries: number) => (this.closing ? false : backoffMs(retries)), connectTimeout: Math.min(timeoutMs, 10_000) };
    let c: Client;
    try {
      c = await makeClient(this.target, this.slotKey, this.name, socket);
    } catch (err) {
      throw new RingpoolError(ErrorCodes.SOURCE_IO, `cannot connect to Redis at ${this.target.label}: ${message(err)}`, { url: this.target.label }, { cause: err });
    }
    this.client = c;
    c.on('error', (err: Error) => {
      this.lastError = err;
      if (this.up) {
        this.up = false;
        this.onChange(false, err);
      }
    });
    c.on('ready', () => {
      const was = this.everUp;
      this.everUp = true;
      this.lastError = null;
      if (!this.up) {
        this.up = true;
        if (was) this.onChange(true, null);
      }
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        c.connect(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(this.lastError ?? new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      this.closing = true;
      c.destroy?.();
      throw new RingpoolError(ErrorCodes.SOURCE_IO, `cannot connect to Redis at ${this.target.label}: ${(err as Error)?.message ?? String(err)}`, { url: this.target.label }, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Send what is queued, then disconnect (or at once when `now`). */
  async close(now = false): Promise<void> {
    this.closing = true;
    const c = this.client;
    if (c === null) return;
    this.up = false;
    if (now || !c.isReady) {
      c.destroy();
      return;
    }
    await c.quit().catch(() => c.destroy());
  }
}

/**
 * A client (not yet connected) for `t`: a duplicate of the user's client, a
 * client of the URL with the user's options, or one of the cluster master
 * that serves `slotKey`'s hash slot (target.ts). `socket`: ringpool's
 * reconnection and timeout, over the user's socket options.
 */
export async function makeClient(t: RedisTarget, slotKey: string, name: string | undefined, socket: Record<string, unknown>): Promise<Client> {
  const redis = await loadRedis();
  const named = name === undefined ? {} : { name };
  if (t.client !== null) {
    const own = (t.client.options ?? (t.client as { _options?: { socket?: object } })._options)?.socket ?? {};
    return t.client.duplicate({ ...named, socket: { ...own, ...socket } });
  }
  // The user's connectTimeout, when given, wins over ringpool's default (the reconnection strategy is ringpool's).
  const mine = t.clientOptions.socket as Record<string, unknown> | undefined;
  const sock: Record<string, unknown> = { ...mine, ...socket, ...(mine?.connectTimeout === undefined ? {} : { connectTimeout: mine.connectTimeout }) };
  const url = t.url ?? (await clusterMaster(t, slotKey, sock));
  return redis.createClient({ ...t.clientOptions, url, ...named, socket: sock as never });
}

/** The URL of the master that serves `slotKey`'s slot, asked of the cluster's nodes in turn (CLUSTER SLOTS). */
async function clusterMaster(t: RedisTarget, slotKey: string, sock: Record<string, unknown>): Promise<string> {
  const redis = await loadRedis();
  const slot = keySlot(slotKey);
  let last: unknown = new Error('no node answered');
  for (const node of t.nodes!) {
    const c = redis.createClient({ ...t.clientOptions, url: node, socket: { ...sock, reconnectStrategy: false } });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const m = masterOf(await c.sendCommand(['CLUSTER', 'SLOTS']), slot);
      if (m === null) throw new Error(`no master serves hash slot ${slot} (of '${slotKey}')`);
      const u = new URL(node);
      if (m.host !== '') u.hostname = m.host;
      u.port = String(m.port);
      return u.toString();
    } catch (err) {
      last = err;
    } finally {
      c.destroy();
    }
  }
  throw last;
}

/** NOGROUP: the stream or the group is gone (Redis restarted without persistence, or someone deleted them). */
export function isNoGroup(err: unknown): boolean {
  return typeof (err as Error)?.message === 'string' && (err as Error).message.startsWith('NOGROUP');
}

export function message(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}

/** One stream's entries from an XREADGROUP / XAUTOCLAIM reply: ids, and each entry's fields (fields.ts; `d` null when trimmed or missing). */
export class Entries {
  ids: string[] = [];
  payloads: (Buffer | null)[] = [];
  /** Each entry's `k` field (a keyed message's key, partition streams), or null. */
  keys: (string | null)[] = [];
  /** Each entry has field `c` (an actor method call sent with `tell`). */
  calls: boolean[] = [];
  /** An ask's reply stream (field `r`), or null. */
  replyTo: (string | null)[] = [];
  /** An ask's correlation id (field `a`), or null. */
  corrs: (string | null)[] = [];
  /** Each entry's `h` field (its headers as encoded, unchecked: offer.ts checks them), or null. */
  headers: (Buffer | null)[] = [];
  /** The entry exists but has no `d` field (not written by ringpool). */
  foreign: boolean[] = [];
  /** Filled by Offer.take: reserved by this take (held, not yet in the ring or finished). */
  reserved: boolean[] = [];
  get n(): number {
    return this.ids.length;
  }

  /** XREADGROUP: RESP3 gives a map of stream name to entries, RESP2 an array of [name, entries]. */
  fromRead(reply: unknown): this {
    this.clear();
    if (reply === null || reply === undefined) return this;
    let list: unknown;
    if (Array.isArray(reply)) list = (reply[0] as unknown[] | undefined)?.[1];
    else if (reply instanceof Map) list = reply.values().next().value;
    else list = Object.values(reply as Record<string, unknown>)[0];
    this.add(list);
    return this;
  }

  /** A list of entries as such (the fenced read's reply, part-reader.ts). */
  fromList(list: unknown): this {
    this.clear();
    this.add(list);
    return this;
  }

  /** XAUTOCLAIM: [cursor, entries, deleted ids]; returns the cursor and puts the deleted ids in `deleted`. */
  fromClaim(reply: unknown, deleted: string[]): string {
    this.clear();
    const r = reply as unknown[];
    this.add(r[1]);
    for (const d of (r[2] as unknown[] | undefined) ?? []) deleted.push(String(d));
    return String(r[0]);
  }

  private add(list: unknown): void {
    if (!Array.isArray(list)) return;
    for (const e of list as unknown[][]) {
      this.ids.push(String(e[0]));
      const fields = e[1] as unknown[] | null;
      let d: Buffer | null = null;
      let k: string | null = null;
      let call = false;
      let r: string | null = null;
      let a: string | null = null;
      let h: Buffer | null = null;
      if (Array.isArray(fields)) {
        for (let i = 0; i + 1 < fields.length; i += 2) {
          const f = fields[i];
          const one = Buffer.isBuffer(f) ? (f.length === 1 ? f[0] : -1) : typeof f === 'string' && f.length === 1 ? f.charCodeAt(0) : -1;
          const v = fields[i + 1];
          if (one === 0x64 && d === null) d = Buffer.isBuffer(v) ? v : Buffer.from(String(v));
          else if (one === 0x6b && k === null) k = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
          else if (one === 0x63) call = true;
          else if (one === 0x72) r = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
          else if (one === 0x61) a = Buffer.isBuffer(v) ? v.toString('latin1') : String(v);
          else if (one === 0x68 && h === null) h = Buffer.isBuffer(v) ? v : Buffer.from(String(v));
        }
      }
      this.replyTo.push(r);
      this.corrs.push(a);
      this.keys.push(k);
      this.calls.push(call);
      this.payloads.push(d);
      this.headers.push(h);
      this.foreign.push(d === null && Array.isArray(fields));
    }
  }

  private clear(): void {
    this.ids.length = 0;
    this.keys.length = 0;
    this.calls.length = 0;
    this.replyTo.length = 0;
    this.corrs.length = 0;
    this.payloads.length = 0;
    this.headers.length = 0;
    this.foreign.length = 0;
  }
}

/** The ms part of an entry id (`<ms>-<seq>`): when Redis took the entry. */
export function entryTime(id: string): number {
  const dash = id.indexOf('-');
  return Number(dash < 0 ? id : id.slice(0, dash));
}

/** Wait for `p` until `deadline` (epoch ms); past it, run `giveUp` and wait for `p` no more. */
export async function within(p: Promise<unknown>, deadline: number, giveUp: () => unknown): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => {
    timer = setTimeout(() => r('late'), Math.max(0, deadline - Date.now()));
  });
  const r = await Promise.race([p.then(() => 'done' as const), late]);
  clearTimeout(timer);
  if (r === 'late') await giveUp();
}

/** One group's row of an XINFO GROUPS reply, as an object (RESP3 gives maps or objects, RESP2 flat arrays of name, value), or null. */
export function groupRow(reply: unknown, group: string): Record<string, unknown> | null {
  if (!Array.isArray(reply)) return null;
  for (const g of reply as unknown[]) {
    let row: Record<string, unknown>;
    if (g instanceof Map) row = Object.fromEntries(g);
    else if (Array.isArray(g)) {
      row = {};
      for (let i = 0; i + 1 < g.length; i += 2) row[String(g[i])] = g[i + 1];
    } else row = g as Record<string, unknown>;
    if (String(row?.name) === group) return row;
  }
  return null;
}
