/**
 * The dead letters of a Redis Streams mailbox (main thread): entries of
 * `<stream>:dead`, shared by every process of the group. A dead letter is
 * written together with the XACK of its entry (one script, acks.ts), so it
 * is never acknowledged without its letter. `rt.deadLetters(mailbox)` gives
 * this store for a Redis mailbox: the same list/redrive/purge as the
 * in-memory one, but asynchronous (they are Redis commands). A letter keeps
 * its message's headers (field `h`, as in the stream), and a redrive too.
 */
import { NO_HEADERS, decodeHeaderBytes, headerBytesProblem } from '../../shared/headers.js';
import type { DeadLetter, DeadLetterReason, DeadLetterSink } from '../../dead-letters.js';
import type { HeldMessage } from '../../held.js';
import { DEAD_LETTER_REASONS } from '../../outcome.js';
import type { PayloadCodec } from '../../shared/codec.js';
import type { ErrorInfo } from '../../shared/errors.js';
import { CALL_FIELD, HEADERS_FIELD, KEY_FIELD, PAYLOAD_FIELD } from './fields.js';
import type { Client } from './connection.js';
import { partitionKeys } from './keys.js';
import { unqualify } from './held.js';
import { FLAG_CALL } from '../../shared/layout.js';
import { partitionOf } from '../../shared/partition.js';
import type { ResolvedRedisSource } from './options.js';
import type { StreamDeadLetter, StreamDeadLetters } from '../stream.js';

export type { StreamDeadLetter, StreamDeadLetters } from '../stream.js';

/** What one dead letter carries: the fields of its `<stream>:dead` entry. */
export interface DeadFields {
  payload: Uint8Array;
  streamId: string;
  /** Its qualified id (held.ts), and its partition (-1: the mailbox's own stream), epoch and key. */
  q: string;
  partition: number;
  epoch: number;
  key: string | null;
  /** An actor method call (`tell`): redriven as one. */
  call: boolean;
  /** Its headers as encoded (shared/headers.ts), or null. */
  headers: Uint8Array | null;
  localId: number;
  attempts: number;
  reason: DeadLetterReason;
  firstError: ErrorInfo | undefined;
  lastError: ErrorInfo | undefined;
  enqueuedAt: number;
  deadAt: number;
}

/** A held message of the stream (qualified id `q`, held.ts) as it is dead-lettered. */
export function deadFields(held: HeldMessage, q: string, reason: DeadLetterReason, deadAt: number): DeadFields {
  const { sid, p, epoch } = unqualify(q);
  return {
    payload: held.payload,
    streamId: sid,
    q,
    partition: p,
    epoch,
    key: held.key ?? null,
    call: (held.kept & FLAG_CALL) !== 0,
    headers: held.headers,
    localId: held.id,
    attempts: held.attempt,
    reason,
    firstError: held.firstError,
    lastError: held.lastError,
    enqueuedAt: held.sentAt,
    deadAt,
  };
}

/** The fields of a dead letter's entry (`d` holds the payload bytes, `h` the headers', as in the stream). */
export function deadEntryFields(o: ResolvedRedisSource, f: DeadFields): (string | Buffer)[] {
  return [
    PAYLOAD_FIELD, Buffer.from(f.payload.buffer, f.payload.byteOffset, f.payload.byteLength),
    'entry', f.streamId,
    'local', String(f.localId),
    'attempts', String(f.attempts),
    'reason', f.reason,
    'first', f.firstError === undefined ? '' : JSON.stringify(f.firstError),
    'last', f.lastError === undefined ? '' : JSON.stringify(f.lastError),
    'sent', String(f.enqueuedAt),
    'dead', String(f.deadAt),
    'consumer', o.consumer,
    ...(f.key === null ? [] : [KEY_FIELD, f.key]),
    ...(f.call ? [CALL_FIELD, '1'] : []),
    ...(f.headers === null ? [] : [HEADERS_FIELD, Buffer.from(f.headers.buffer, f.headers.byteOffset, f.headers.byteLength)]),
  ];
}

export class RedisDeadLetters implements StreamDeadLetters {
  size = 0;

  constructor(
    private readonly mailbox: string,
    private readonly o: ResolvedRedisSource,
    private readonly codec: PayloadCodec,
    private readonly client: () => Promise<Client>,
    private readonly bytes: () => { typeMapping: Record<number, unknown> },
  ) {}

  async list(): Promise<StreamDeadLetter[]> {
    const c = await this.client();
    const reply = (await c.sendCommand(['XRANGE', this.o.deadStream, '-', '+'], this.bytes())) as unknown[][];
    this.size = reply.length;
    return reply.map((e) => this.letter(String(e[0]), e[1]));
  }

  async redrive(filter?: (letter: StreamDeadLetter) => boolean): Promise<number> {
    const out = (await this.list()).filter((l) => (filter === undefined || filter(l)) && (l as Carried).payloadBytes !== null);
    if (out.length === 0) return 0;
    const m = (await this.client()).multi();
    const parts = this.o.partitions > 0 ? partitionKeys(this.o.stream, this.o.group) : null;
    for (const l of out) {
      const c = l as Carried;
      const headers = c.headerBytes === null ? [] : [HEADERS_FIELD, c.headerBytes];
      // A keyed letter of a partitioned mailbox goes back to its key's partition, with its key.
      if (parts !== null && l.key !== undefined) {
        const call = c.call ? [CALL_FIELD, '1'] : [];
        m.addCommand(['XADD', parts.stream(partitionOf(l.key, this.o.partitions)), '*', PAYLOAD_FIELD, c.payloadBytes!, KEY_FIELD, l.key, ...call, ...headers]);
      }
      else m.addCommand(['XADD', this.o.stream, '*', PAYLOAD_FIELD, c.payloadBytes!, ...headers]);
      m.addCommand(['XDEL', this.o.deadStream, l.deadEntryId]);
    }
    await m.exec();
    this.size -= out.length;
    return out.length;
  }

  async purge(filter?: (letter: StreamDeadLetter) => boolean): Promise<number> {
    const out = (await this.list()).filter((l) => filter === undefined || filter(l));
    if (out.length === 0) return 0;
    const c = await this.client();
    let n = 0;
    for (let i = 0; i < out.length; i += 1024) n += Number(await c.sendCommand(['XDEL', this.o.deadStream, ...out.slice(i, i + 1024).map((l) => l.deadEntryId)]));
    this.size -= n;
    return n;
  }

  /** One entry of `<stream>:dead` as a letter; never throws (a malformed entry is a damaged letter). */
  private letter(deadEntryId: string, fields: unknown): Carried {
    const f = new Map<string, Buffer>();
    const raw = Array.isArray(fields) ? (fields as unknown[]) : [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const v = raw[i + 1];
      f.set(String(raw[i]), Buffer.isBuffer(v) ? v : Buffer.from(String(v)));
    }
    const problems: string[] = [];
    const text = (k: string): string => f.get(k)?.toString('utf8') ?? '';
    const num = (k: string): number => {
      const n = Number(text(k));
      if (text(k) === '' || !Number.isFinite(n)) problems.push(`'${k}' is not a number`);
      return Number.isFinite(n) ? n : -1;
    };
    const err = (k: string): ErrorInfo | undefined => {
      if (text(k) === '') return undefined;
      try {
        const v = JSON.parse(text(k)) as ErrorInfo;
        if (v !== null && typeof v === 'object' && typeof v.message === 'string') return v;
      } catch {
        // below
      }
      problems.push(`'${k}' is not an error as JSON`);
      return undefined;
    };
    const bytes = f.get(PAYLOAD_FIELD) ?? null;
    if (bytes === null) problems.push(`no field '${PAYLOAD_FIELD}' (the payload)`);
    let payload: unknown;
    try {
      payload = bytes === null ? undefined : this.codec.decode(bytes, bytes, 0, bytes.byteLength, false);
    } catch {
      payload = new Uint8Array(bytes!); // undecodable: give the bytes
    }
    // Its headers (written by ringpool, or by another writer): the letter is damaged when they cannot be read, and redriven without them.
    let headerBytes = f.get(HEADERS_FIELD) ?? null;
    const hp = headerBytes === null || headerBytes.byteLength === 0 ? null : headerBytesProblem(headerBytes);
    if (hp !== null) problems.push(`'${HEADERS_FIELD}': ${hp}`);
    if (hp !== null || headerBytes?.byteLength === 0) headerBytes = null;
    const r = text('reason');
    const known = (DEAD_LETTER_REASONS as readonly string[]).includes(r);
    if (!known) problems.push(`'reason' ${JSON.stringify(r.slice(0, 40))} is not one of ${DEAD_LETTER_REASONS.join(', ')}`);
    const letter: StreamDeadLetter = {
      id: Number.isSafeInteger(Number(text('local'))) && text('local') !== '' ? Number(text('local')) : -1,
      mailbox: this.mailbox,
      payload,
      key: f.has(KEY_FIELD) ? text(KEY_FIELD) : undefined,
      headers: headerBytes === null ? NO_HEADERS : decodeHeaderBytes(headerBytes),
      attempts: num('attempts'),
      firstError: err('first'),
      lastError: err('last'),
      enqueuedAt: num('sent'),
      deadAt: num('dead'),
      reason: known ? (r as DeadLetterReason) : 'poison',
      deadEntryId,
      streamId: text('entry'),
      consumer: text('consumer'),
    };
    if (problems.length > 0) {
      const all: Record<string, string> = {};
      for (const [k, v] of f) all[k] = v.toString('utf8');
      letter.damaged = { problems, fields: all };
      letter.lastError = { name: 'RingpoolError', message: `damaged entry ${deadEntryId} in '${this.o.deadStream}': ${problems.join('; ')}; its fields: ${JSON.stringify(all).slice(0, 2_000)}` };
    }
    // The payload's (and headers') bytes travel with the letter for redrive, out of sight of JSON.stringify and the console.
    Object.defineProperty(letter, 'call', { value: f.has(CALL_FIELD), enumerable: false });
    Object.defineProperty(letter, 'headerBytes', { value: headerBytes, enumerable: false });
    return Object.defineProperty(letter, 'payloadBytes', { value: bytes, enumerable: false }) as Carried;
  }
}

/** A letter and its payload's bytes (null: none, a damaged letter that cannot be redriven), and its headers' (null: none). */
type Carried = StreamDeadLetter & { payloadBytes: Buffer | null; call: boolean; headerBytes: Buffer | null };

/**
 * A Redis mailbox's dead letters: those of the stream's entries go to
 * `<stream>:dead` (`add` writes them, with their XACK, and returns the
 * letter), a message that is not from the stream (a handler's ctx.send()
 * into this ring: `add` returns null) to the local store.
 * `rt.deadLetters()` gives `<stream>:dead`.
 */
export function streamSink(local: DeadLetterSink, dead: RedisDeadLetters, add: (held: HeldMessage, reason: DeadLetterReason, deadAt: number) => DeadLetter | null): DeadLetterSink {
  return {
    add: (held, reason, deadAt) => add(held, reason, deadAt) ?? local.add(held, reason, deadAt),
    get size() {
      return local.size + dead.size; // <stream>:dead (polled), beside any local ones
    },
    get dropped() {
      return local.dropped;
    },
    view: dead,
  };
}
