/**
 * ask() on a Redis mailbox, across processes (main thread; issue #30).
 *
 * The asking process (Asks): its ask entry carries a reply address, the
 * process's own reply stream `{S}:replies:<token>` (field `r`), and a
 * correlation id (field `a`). It reads that stream on a connection of its
 * own (XREAD BLOCK, made on the first ask: a mailbox that never asks pays
 * nothing), settles the ask by its id, and trims what it read. The stream
 * expires REPLY_TTL_MS after the process stops refreshing it (it died).
 *
 * The process that runs it (Replier): an entry with `r` goes into the ring
 * as an ask (FLAG_ASK), its ask opened in this process's reply table; the
 * handler's result (or its final error: dead-lettered) goes to `r` with the
 * id, by REPLY_LUA, only while that stream exists (an asker that died leaves
 * nothing that grows). The entry's XACK waits for Redis to have the reply,
 * as a local ask's ack waits for its reply: a crash in between runs it
 * again, never loses the reply. A reply for an ask that gave up is read and
 * dropped.
 */
import { createHash } from 'node:crypto';
import type { OpenAsk } from '../../replies.js';
import type { PayloadCodec } from '../../shared/codec.js';
import { ErrorCodes, RingpoolError, fromErrorInfo, toErrorInfo, type ErrorInfo } from '../../shared/errors.js';
import { backoffMs, message, type Client } from './connection.js';
import { CORR_FIELD, ERROR_FIELD, PAYLOAD_FIELD } from './fields.js';

/** A reply stream lives this long after its process last refreshed it. */
export const REPLY_TTL_MS = 30_000;
const REFRESH_MS = 5_000;
/** A reply stream holds at most about this many replies not yet read. */
const REPLY_MAXLEN = 10_000;

/** KEYS: the reply stream; ARGV: correlation id, field (d or e), value. Added only while the stream exists (its asker lives). */
const REPLY_LUA = `if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', '${REPLY_MAXLEN}', '*', '${CORR_FIELD}', ARGV[1], ARGV[2], ARGV[3])`;
const REPLY_SHA = createHash('sha1').update(REPLY_LUA).digest('hex');

/** EVALSHA, or EVAL when Redis does not have the script (restarted, flushed). */
export async function evalScript(c: Client, sha: string, text: string, args: (string | Buffer)[]): Promise<unknown> {
  try {
    return await c.sendCommand(['EVALSHA', sha, ...args]);
  } catch (err) {
    if (!message(err).startsWith('NOSCRIPT')) throw err;
    return c.sendCommand(['EVAL', text, ...args]);
  }
}

interface Open extends OpenAsk {
  timer: NodeJS.Timeout | undefined;
}

/** The asking side: this process's reply stream and its open asks. */
export class Asks {
  private readonly open = new Map<string, Open>();
  private seq = 0;
  private conn: Client = null;
  private ready: Promise<void> | null = null;
  private refresh: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastId = '0-0';
  /** Replies read for asks no longer open (timed out, or a second run's). */
  dropped = 0;
  /** Replies read and settled. */
  settled = 0;

  constructor(
    /** The reply stream of this process. */
    readonly key: string,
    private readonly client: () => Client,
    private readonly codec: PayloadCodec,
    private readonly name: string,
    private readonly fault: (err: unknown, doing: string) => void,
  ) {}

  get size(): number {
    return this.open.size;
  }

  /**
   * Open an ask and send it once the reply stream exists: `send(corr)` queues
   * its entry (it throws on bad input: the ask rejects, nothing sent).
   */
  ask(send: (corr: string) => Promise<unknown>, what: string, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> {
    if (this.stopped) return Promise.reject(new RingpoolError(ErrorCodes.CLOSED, `${what} is closed`, {}));
    const corr = (this.seq++).toString(36);
    return new Promise<unknown>((resolve, reject) => {
      const end = (): boolean => {
        const o = this.open.get(corr);
        if (o === undefined) return false;
        this.open.delete(corr);
        clearTimeout(o.timer);
        signal?.removeEventListener('abort', onAbort);
        return true;
      };
      const onAbort = (): void => {
        if (end()) reject(signal!.reason);
      };
      const o: Open = {
        resolve: (v) => end() && resolve(v),
        reject: (e) => end() && reject(e),
        timer: timeoutMs === undefined ? undefined : setTimeout(() => o.reject(new RingpoolError(ErrorCodes.TIMEOUT, `${what} got no reply within ${timeoutMs} ms`, { timeoutMs })), timeoutMs),
      };
      this.open.set(corr, o);
      signal?.addEventListener('abort', onAbort, { once: true });
      (this.ready ??= this.start()).then(() => send(corr)).catch((err: unknown) => o.reject(err));
    });
  }

  /** Reject every open ask (the mailbox closes), stop reading, delete the reply stream. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.refresh);
    for (const o of [...this.open.values()]) o.reject(new RingpoolError(ErrorCodes.CLOSED, `the mailbox closed before the reply came`, {}));
    const c = this.conn;
    this.conn = null;
    if (c !== null) {
      c.destroy();
      await this.client()?.del(this.key).catch(() => undefined);
    }
  }

  /** Make the reply stream (empty, expiring), keep it alive, read it. */
  private async start(): Promise<void> {
    await this.create();
    const c = this.client().duplicate({ name: this.name });
    c.on('error', () => undefined);
    await c.connect();
    this.conn = c;
    this.refresh = setInterval(() => {
      this.client()
        .sendCommand(['PEXPIRE', this.key, String(REPLY_TTL_MS)])
        .then((n: number) => (n === 0 && !this.stopped ? this.create() : undefined))
        .catch(() => undefined);
    }, REFRESH_MS);
    this.refresh.unref();
    void this.read(c);
  }

  /** An empty stream (a stream exists only with an entry or a group: add one and trim it), expiring. */
  private async create(): Promise<void> {
    await this.client().multi().addCommand(['XADD', this.key, '*', 'x', '']).addCommand(['XTRIM', this.key, 'MAXLEN', '0']).addCommand(['PEXPIRE', this.key, String(REPLY_TTL_MS)]).exec();
  }

  private async read(c: Client): Promise<void> {
    let retries = 0;
    const bytes = { typeMapping: { [0x24]: Buffer } }; // RESP blob strings as Buffers (payloads are bytes)
    while (!this.stopped && this.conn === c) {
      let reply: unknown;
      try {
        reply = await c.sendCommand(['XREAD', 'COUNT', '1024', 'BLOCK', '1000', 'STREAMS', this.key, this.lastId], bytes);
        retries = 0;
      } catch (err) {
        if (this.stopped || this.conn !== c) return;
        this.fault(err, 'reading ask replies');
        await new Promise((r) => setTimeout(r, backoffMs(retries++)));
        await this.create().catch(() => undefined);
        continue;
      }
      const list = replyEntries(reply);
      if (list.length === 0) continue;
      for (const [id, fields] of list) {
        this.lastId = id;
        this.settle(fields);
      }
      // What was read goes (the last entry stays: MINID keeps ids >= it).
      this.client()
        .sendCommand(['XTRIM', this.key, 'MINID', this.lastId])
        .catch(() => undefined);
    }
  }

  private settle(fields: Map<string, Buffer>): void {
    const corr = fields.get(CORR_FIELD)?.toString('latin1');
    const o = corr === undefined ? undefined : this.open.get(corr);
    if (o === undefined) {
      if (corr !== undefined) this.dropped++;
      return;
    }
    this.settled++;
    const d = fields.get(PAYLOAD_FIELD);
    if (d !== undefined) {
      try {
        o.resolve(this.codec.decode(d, d, 0, d.byteLength, false));
      } catch (err) {
        o.reject(err);
      }
      return;
    }
    o.reject(errorOf(fields.get(ERROR_FIELD)?.toString('utf8') ?? '{}'));
  }
}

/** The running side: where the asks this process runs reply, and the XACKs that wait for their replies. */
export class Replier {
  /** `lost`: Redis refused its reply: its entry is left pending (taken over and run again after claimIdleMs, which replies again). */
  private readonly asks = new Map<number, { to: string; corr: string; sent: boolean; lost: boolean; ackSid: string | null }>();
  /** Replies Redis took (to a live asker's stream). */
  sent = 0;

  constructor(
    private readonly client: () => Client,
    private readonly codec: PayloadCodec,
    private readonly ack: (sid: string) => void,
    private readonly fault: (err: unknown, doing: string) => void,
    /** An entry this process will not acknowledge after all (its reply was lost: it runs again elsewhere). */
    private readonly drop: (sid: string) => void = () => undefined,
  ) {}

  get size(): number {
    return this.asks.size;
  }

  /** Message `localId` (in the ring, FLAG_ASK) is an ask from `to` with id `corr`: what opens its ask here. */
  expect(localId: number, to: string, corr: string): OpenAsk {
    this.asks.set(localId, { to, corr, sent: false, lost: false, ackSid: null });
    return {
      resolve: (value) => {
        let bytes: Buffer;
        try {
          this.codec.prepare(value);
          bytes = Buffer.from(this.codec.preparedBytes());
        } catch (err) {
          this.send(localId, ERROR_FIELD, Buffer.from(JSON.stringify(errorJson(err))));
          return;
        }
        this.send(localId, PAYLOAD_FIELD, bytes);
      },
      reject: (err) => {
        // Closing with it unprocessed: another process runs it again, and replies.
        if ((err as { code?: string })?.code === ErrorCodes.CLOSED) this.asks.delete(localId);
        else this.send(localId, ERROR_FIELD, Buffer.from(JSON.stringify(errorJson(err))));
      },
    };
  }

  /** Its handler succeeded: XACK now, or once its reply is in Redis. */
  acked(localId: number, sid: string): void {
    const a = this.asks.get(localId);
    if (a === undefined) return this.ack(sid);
    if (a.lost) {
      this.asks.delete(localId); // not acknowledged: it runs again and replies again
      this.drop(sid);
    } else if (a.sent) {
      this.asks.delete(localId);
      this.ack(sid);
    } else a.ackSid = sid;
  }

  /** It will not reply from here (its partition moved, the entry was dropped). */
  forget(localId: number): void {
    this.asks.delete(localId);
  }

  private send(localId: number, field: string, value: Buffer): void {
    const a = this.asks.get(localId);
    if (a === undefined) return;
    evalScript(this.client(), REPLY_SHA, REPLY_LUA, ['1', a.to, a.corr, field, value]).then(
      (added: unknown) => {
        a.sent = true;
        if (added !== null && added !== undefined) this.sent++;
        if (a.ackSid !== null || field === ERROR_FIELD) {
          this.asks.delete(localId);
          if (a.ackSid !== null) this.ack(a.ackSid);
        }
      },
      (err: unknown) => {
        // The reply is lost: the entry is not acknowledged (it runs again after claimIdleMs and replies again, or the asker times out).
        if (a.ackSid !== null || field === ERROR_FIELD) this.asks.delete(localId);
        else a.lost = true;
        this.fault(err, 'sending an ask reply');
      },
    );
  }
}

/** A reply's error: the handler's final error as JSON (code, message, its cause). */
function errorJson(err: unknown): { code?: string; message: string; details?: unknown; cause?: ErrorInfo } {
  const e = err as RingpoolError;
  const out: { code?: string; message: string; details?: unknown; cause?: ErrorInfo } = { message: String(e?.message ?? err) };
  if (typeof e?.code === 'string') out.code = e.code;
  if (e instanceof RingpoolError) out.details = e.details;
  if (e instanceof Error && e.cause !== undefined) out.cause = toErrorInfo(e.cause);
  return out;
}

function errorOf(json: string): Error {
  let o: ReturnType<typeof errorJson>;
  try {
    o = JSON.parse(json) as ReturnType<typeof errorJson>;
  } catch {
    o = { message: json };
  }
  const cause = o.cause === undefined ? undefined : fromErrorInfo(o.cause);
  if (o.code !== undefined && o.code.startsWith('RINGPOOL_')) return new RingpoolError(o.code as never, o.message, (o.details ?? {}) as never, { cause });
  const err = new Error(o.message, { cause });
  if (o.code !== undefined) (err as Error & { code?: string }).code = o.code;
  return err;
}

/** XREAD's entries of one stream: [id, fields by name]. RESP3 gives a map of stream to entries, RESP2 [[name, entries]]. */
function replyEntries(reply: unknown): [string, Map<string, Buffer>][] {
  if (reply === null || reply === undefined) return [];
  let list: unknown;
  if (Array.isArray(reply)) list = (reply[0] as unknown[] | undefined)?.[1];
  else if (reply instanceof Map) list = reply.values().next().value;
  else list = Object.values(reply as Record<string, unknown>)[0];
  if (!Array.isArray(list)) return [];
  return (list as unknown[][]).map((e) => {
    const f = new Map<string, Buffer>();
    const fields = e[1] as unknown[];
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(String(fields[i]), fields[i + 1] as Buffer);
    return [String(e[0]), f];
  });
}
