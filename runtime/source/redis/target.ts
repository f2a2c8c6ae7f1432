/**
 * Where a Redis mailbox (or a redisProducer) connects, as users have it
 * (issue #30): a URL, node-redis client options beside it (TLS with a CA,
 * username and password, timeouts), an existing node-redis client (its
 * options are reused: each connection ringpool needs is a duplicate of it,
 * the user's own is never used or closed), or a Redis Cluster.
 *
 * Cluster: every key of a mailbox lives in one hash slot (the stream name's
 * hash tag, keys.ts), so each connection goes to that slot's master, found
 * with CLUSTER SLOTS from the nodes given, and is an ordinary client there:
 * transactions, scripts, WATCH and blocking reads work as on one Redis.
 * Plain data and checks here; the client is made in connection.ts.
 */
import { invalidOption } from '../../shared/errors.js';
import { hasHashTag } from './keys.js';

export interface RedisTarget {
  /** For messages: the URL, the cluster's first node, or 'an existing client'. */
  label: string;
  url: string | null;
  /** A Redis Cluster's nodes (any of them answers CLUSTER SLOTS). */
  nodes: string[] | null;
  /** An existing node-redis client (standalone): duplicated for each connection. */
  client: { duplicate(o?: object): unknown; options?: { socket?: object } } | null;
  /** node-redis createClient options given beside a URL or the nodes (socket.tls, socket.ca, username, password, ...). */
  clientOptions: Record<string, unknown>;
}

/** A URL the Redis client can parse, redis:// or rediss:// with a host. */
export function isRedisUrl(url: unknown): url is string {
  if (typeof url !== 'string' || !/^rediss?:\/\/./.test(url) || !URL.canParse(url)) return false;
  return new URL(url).hostname !== '';
}

/** `{ url | cluster | client, clientOptions }` checked (RINGPOOL_INVALID_OPTION naming `path.<option>`). */
export function resolveTarget(path: string, o: Record<string, unknown>, stream: string, partitioned: boolean): RedisTarget {
  const given = ['url', 'cluster', 'client'].filter((k) => o[k] !== undefined);
  if (given.length !== 1) throw invalidOption(`${path}.url`, 'exactly one of url (a redis:// or rediss:// URL), cluster ({ nodes: [urls] }) or client (a node-redis client)', given.length === 0 ? undefined : given.join(' and '));
  const co = o.clientOptions;
  if (co !== undefined && (co === null || typeof co !== 'object' || Array.isArray(co))) throw invalidOption(`${path}.clientOptions`, 'an object of node-redis client options (socket, username, password, ...)', co);
  const clientOptions = { ...(co as Record<string, unknown> | undefined) };
  for (const k of ['url', 'name']) if (k in clientOptions) throw invalidOption(`${path}.clientOptions.${k}`, `absent (give ${k === 'url' ? 'url beside clientOptions' : 'nothing: ringpool names its connections'})`, clientOptions[k]);
  if (o.url !== undefined) {
    if (!isRedisUrl(o.url)) throw invalidOption(`${path}.url`, 'a redis:// or rediss:// URL', o.url);
    return { label: o.url, url: o.url, nodes: null, client: null, clientOptions };
  }
  if (o.client !== undefined) {
    const c = o.client as RedisTarget['client'];
    if (c === null || typeof c !== 'object' || typeof c.duplicate !== 'function' || 'masters' in c) {
      throw invalidOption(`${path}.client`, 'a node-redis client (createClient(); for a cluster give cluster: { nodes })', c);
    }
    if (co !== undefined) throw invalidOption(`${path}.clientOptions`, 'absent beside client (its own options are used)', co);
    return { label: 'an existing client', url: null, nodes: null, client: c, clientOptions: {} };
  }
  const cl = o.cluster as { nodes?: unknown } | null;
  const nodes = cl !== null && typeof cl === 'object' ? cl.nodes : undefined;
  if (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every(isRedisUrl) || Object.keys(cl!).some((k) => k !== 'nodes')) {
    throw invalidOption(`${path}.cluster`, '{ nodes: [redis:// URLs of the cluster, one or more] }', cl);
  }
  // Every key of the mailbox in one slot: a partitioned one's are all tagged {<stream>}; a plain one's start with the name, which needs a tag of its own.
  if (!partitioned && !hasHashTag(stream)) {
    throw invalidOption(`${path}.stream`, `a name with a hash tag on Redis Cluster (e.g. '{${stream}}'), so that the stream and its keys (<stream>:dead, ...) share a hash slot; or set partitions`, stream);
  }
  return { label: `cluster ${nodes[0]}`, url: null, nodes: [...nodes] as string[], client: null, clientOptions };
}

// ---------------------------------------------------------------- hash slots (CRC16/XMODEM, as Redis Cluster)

const CRC = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** The hash slot of `key` (its hash tag's, when it has one), 0 to 16383. */
export function keySlot(key: string): number {
  let k = Buffer.from(key, 'utf8');
  const open = k.indexOf(0x7b);
  if (open >= 0) {
    const close = k.indexOf(0x7d, open + 1);
    if (close > open + 1) k = k.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of k) crc = ((crc << 8) & 0xffff) ^ CRC[((crc >> 8) ^ b) & 0xff]!;
  return crc & 16383;
}

/** CLUSTER SLOTS' reply: the master (`host`, `port`) serving `slot`, or null. */
export function masterOf(reply: unknown, slot: number): { host: string; port: number } | null {
  if (!Array.isArray(reply)) return null;
  for (const r of reply as unknown[][]) {
    if (Number(r[0]) <= slot && slot <= Number(r[1])) {
      const m = r[2] as unknown[];
      return { host: String(m[0]), port: Number(m[1]) };
    }
  }
  return null;
}
