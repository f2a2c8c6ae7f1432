/**
 * The dead letters of a Redis Streams mailbox (main thread): entries of
 * `<stream>:dead`, shared by every process of the group. A dead letter is
 * written together with the XACK of its entry (one script, acks.ts), so it
 * is never acknowledged without its letter. `rt.deadLetters(mailbox)` gives
 * this store for a Redis mailbox: the same list/redrive/purge as the
 * in-memory one, but asynchronous (they are Redis commands).
 */
import type { DeadLetter, DeadLetterReason } from '../../dead-letters.js';
import type { PayloadCodec } from '../../shared/codec.js';
import type { ErrorInfo } from '../../shared/errors.js';
import { PAYLOAD_FIELD } from './adds.js';
import type { Client } from './connection.js';
import type { ResolvedRedisSource } from './options.js';

/** A dead letter of a Redis mailbox: the in-memory fields, plus where it lives. */
export interface StreamDeadLetter extends DeadLetter {
  /** The entry id in `<stream>:dead`. */
  deadEntryId: string;
  /** The entry id it had in the stream. */
  streamId: string;
  /** The consumer that dead-lettered it. */
  consumer: string;
}

/** `rt.deadLetters(mailbox)` for a Redis mailbox. */
export interface StreamDeadLetters {
  /** Dead letters, oldest first (XRANGE of `<stream>:dead`). */
  list(): Promise<StreamDeadLetter[]>;
  /** XADD them back to the stream (attempts start again) and delete them from `<stream>:dead`, in one MULTI. Returns how many. */
  redrive(filter?: (letter: StreamDeadLetter) => boolean): Promise<number>;
  /** Delete them. Returns how many. */
  purge(filter?: (letter: StreamDeadLetter) => boolean): Promise<number>;
  /** XLEN of `<stream>:dead` when last polled (once a second). */
  readonly size: number;
}

/** What one dead letter carries: the fields of its `<stream>:dead` entry. */
export interface DeadFields {
  payload: Uint8Array;
  streamId: string;
  localId: number;
  attempts: number;
  reason: DeadLetterReason;
  firstError: ErrorInfo | undefined;
  lastError: ErrorInfo | undefined;
  enqueuedAt: number;
  deadAt: number;
}

/** The fields of a dead letter's entry (`d` holds the payload bytes, as in the stream). */
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
    return reply.map((e) => this.letter(String(e[0]), e[1] as Buffer[]));
  }

  async redrive(filter?: (letter: StreamDeadLetter) => boolean): Promise<number> {
    const out = (await this.list()).filter((l) => filter === undefined || filter(l));
    if (out.length === 0) return 0;
    const m = (await this.client()).multi();
    for (const l of out) {
      m.addCommand(['XADD', this.o.stream, '*', PAYLOAD_FIELD, (l as StreamDeadLetter & { payloadBytes: Buffer }).payloadBytes]);
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

  private letter(deadEntryId: string, fields: Buffer[]): StreamDeadLetter & { payloadBytes: Buffer } {
    const f = new Map<string, Buffer>();
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(String(fields[i]), fields[i + 1]!);
    const text = (k: string): string => f.get(k)?.toString('utf8') ?? '';
    const err = (k: string): ErrorInfo | undefined => (text(k) === '' ? undefined : (JSON.parse(text(k)) as ErrorInfo));
    const bytes = f.get(PAYLOAD_FIELD) ?? Buffer.alloc(0);
    let payload: unknown;
    try {
      payload = this.codec.decode(bytes, bytes, 0, bytes.byteLength, false);
    } catch {
      payload = new Uint8Array(bytes); // undecodable: give the bytes
    }
    const letter = {
      id: Number(text('local')),
      mailbox: this.mailbox,
      payload,
      key: undefined,
      attempts: Number(text('attempts')),
      firstError: err('first'),
      lastError: err('last'),
      enqueuedAt: Number(text('sent')),
      deadAt: Number(text('dead')),
      reason: text('reason') as DeadLetterReason,
      deadEntryId,
      streamId: text('entry'),
      consumer: text('consumer'),
    };
    // The payload's bytes travel with the letter for redrive, out of sight of JSON.stringify and the console.
    return Object.defineProperty(letter, 'payloadBytes', { value: bytes, enumerable: false }) as StreamDeadLetter & { payloadBytes: Buffer };
  }
}
