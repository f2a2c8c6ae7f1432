/**
 * A mailbox fed by a Redis Streams consumer group (main thread): the
 * MessageSource behind `source: { redis: {...} }`. Several processes, on
 * several hosts, run the same handlers against one stream; Redis holds the
 * backlog, each process's ring holds only what it took.
 *
 * - read (reader.ts): this consumer's own pending list first (ID 0), then
 *   new entries (`>`), only while the process holds fewer than its limit;
 * - run: each entry goes into the ring as one message, with Redis's
 *   delivery counter as its attempt;
 * - finish (acks.ts): XACK after the handler succeeded; a dead letter goes
 *   to `<stream>:dead` with its XACK in one script; a failed attempt retries
 *   here with backoff while the entry stays pending;
 * - take over (claims.ts): entries idle for claimIdleMs, from consumers that
 *   died; ours (waiting for ring room too) are touched so that nobody takes
 *   them from us;
 * - trim (trim.ts): once a second, what every group of the stream is done with;
 * - send: XADD through this process's connection, pipelined, waiting here
 *   (bounded) while Redis is away or loading (adds.ts).
 *
 * With `partitions` (partitioned.ts), keyed sends go to P partition streams,
 * each read by one live process at a time under a fenced lease.
 *
 * One consumer name is one live process: a lease key, refreshed every
 * second, refuses a second one. Faults (a lost connection, the group gone,
 * a trimmed entry) are each an 'error' event and a counter, never a hot loop.
 */
import { randomUUID } from 'node:crypto';
import type { DeadLetter, DeadLetterReason, DeadLetterSink } from '../../dead-letters.js';
import type { HeldMessage } from '../../held.js';
import { Outcome, type OutcomeBatch } from '../../outcome.js';
import { ErrorCodes, RingpoolError } from '../../shared/errors.js';
import { FLAG_CALL } from '../../shared/layout.js';
import type { BatchOptions, SendOptions } from '../../shared/producer.js';
import type { StreamItem } from '../../shared/protocol.js';
import type { MailboxCall, MessageSource, SourceIntake } from '../source.js';
import type { SourceContext } from '../index.js';
import { Acks } from './acks.js';
import { Adds } from './adds.js';
import { delayedKeys } from './delayed.js';
import { Mover } from './mover.js';
import { GATE_EVERY_MS, GroupGate } from './group-gate.js';
import { Outages, sourceIo, trimmedError } from './outages.js';
import { Asks, Replier } from './asks.js';
import { slotPrefix } from './keys.js';
import { StreamSends } from './sends.js';
import { Claims } from './claims.js';
import { Connection, message, within, type Entries } from './connection.js';
import { redisRefusal } from './refusals.js';
import { RedisDeadLetters, deadFields, streamSink } from './dead.js';
import { consumerTaken, GroupFigures, leaveGroup, poll, takeLease } from './lease.js';
import type { ResolvedRedisSource } from './options.js';
import { Offer } from './offer.js';
import { Reader } from './reader.js';
import { Trim, TRIM_EVERY_MS } from './trim.js';
import type { FenceRef } from '../../shared/partition.js';
import { HeldEntries, qualify } from './held.js';
import { Partitioned } from './partitioned.js';
import { KeyOrder } from './key-order.js';
import { agreeOnPartitions } from './partitions.js';
import { streamStats, type StreamStats } from './stats.js';

export type { StreamStats } from './stats.js';

const HEARTBEAT_MS = 1_000;
/** stop() waits this long past blockMs for the reader to return, then drops its connection. */
const STOP_GRACE_MS = 1_000;
/** close() writes what is left for at most this long (Redis may be down), then disconnects. */
const CLOSE_MS = 5_000;

/** What the source needs from its mailbox (runtime/source/index.ts's SourceContext). */
export type SourceHost = Omit<SourceContext, 'mailbox'>;

/** runtime/source/index.ts builds a Redis mailbox's source with this (loaded only then). */
export function createRedisSource(ctx: SourceContext, options: unknown): RedisSource {
  return new RedisSource(ctx.mailbox, options as ResolvedRedisSource, ctx);
}

export class RedisSource implements MessageSource {
  /** It needs only what finishes the records it offered (outcome.ts). */
  readonly ringEntries = false;
  /** Other processes encode and decode the stream's messages: no codec state is shared between threads. */
  readonly remote = true;
  /** The fleet policy's settings (the mailbox's fleet.ts): no more consumers than partitions. */
  readonly fleet: { targetLagSeconds: number; scaleDownWindowMs: number; max: number };
  readonly cmd: Connection;
  readonly readConn: Connection;
  readonly held: HeldEntries;
  readonly adds: Adds;
  readonly acks: Acks;
  /** A partitioned mailbox's keyed entries, each key's writes in its order (key-order.ts). */
  readonly order: KeyOrder | null;
  readonly claims: Claims;
  readonly dead: RedisDeadLetters;
  readonly trim: Trim;
  /** This process's asks, their replies read from its reply stream (asks.ts). */
  readonly asks: Asks;
  /** Replies of the asks this process runs, and the XACKs that wait for them (asks.ts). */
  readonly replier: Replier;
  /** Moves due delayed messages into the stream (mover.ts). */
  readonly mover: Mover;
  /** What `partitions` adds (null without). */
  readonly part: Partitioned | null;
  private readonly reader: Reader;
  private readonly sends: StreamSends;
  private readonly offer: Offer;
  private intake: SourceIntake | null = null;
  private readonly token = randomUUID();
  private timers: NodeJS.Timeout[] = [];
  private connectedOnce: Promise<void>;
  private connectedResolve!: () => void;
  private connectedReject!: (err: unknown) => void;
  running = false;
  private closed = false;
  /** The group's lag, pending, consumers and entries ever added, polled once a second. */
  readonly group = new GroupFigures();
  /** Entries read after stop() began and left pending in the stream, not run here (close()'s report counts them). */
  leftPending = 0;
  trimmedCount = 0;
  resets = 0;
  /** Faults reported once per outage, outages counted (outages.ts). */
  readonly outages: Outages;
  /** The group's rate limit and pause (rateLimit scope 'group'), or null. */
  readonly groupGate: GroupGate | null;

  constructor(
    readonly mailbox: string,
    readonly o: ResolvedRedisSource,
    private readonly host: SourceHost,
  ) {
    this.fleet = { ...o.fleet, max: o.partitions > 0 ? o.partitions : Number.MAX_SAFE_INTEGER };
    this.connectedOnce = new Promise((resolve, reject) => {
      this.connectedResolve = resolve;
      this.connectedReject = reject;
    });
    this.connectedOnce.catch(() => undefined);
    this.outages = new Outages(() => [this.cmd, this.readConn], (err, doing) => sourceIo(mailbox, o.url, o.stream, err, doing), (err) => host.emitError(err), () => this.closed);
    const onChange = (up: boolean, err: Error | null): void => this.outages.changed(up, err);
    this.cmd = new Connection(o.target, o.stream, `ringpool:${o.consumer}`, onChange);
    this.readConn = new Connection(o.target, o.stream, `ringpool:${o.consumer}:read`, onChange);
    // Bounded so that the ring stays small and the group's work spreads over its processes: two reads' worth, one more for takeovers.
    this.held = new HeldEntries(2 * o.readCount, 3 * o.readCount, o.partitions);
    const client = () => this.connectedOnce.then(() => this.cmd.client);
    this.adds = new Adds({ stream: o.stream, what: `mailbox '${mailbox}'`, client, onError: (err) => host.emitError(err), maxBytes: o.sendBufferBytes, onFull: () => host.countFull(), delayed: delayedKeys(o.stream) });
    this.part = o.partitions > 0 ? new Partitioned(this, this.token, onChange) : null;
    this.order = o.partitions > 0 ? new KeyOrder() : null;
    this.acks = new Acks(o, this.cmd, (err) => this.fault(err, 'writing acknowledgements'), this.part?.keys ?? null, undefined, this.order);
    this.claims = new Claims(o, this.cmd, this.held, { take: (e, a) => this.take(e, a), trimmed: (ids) => this.trimmed(ids) });
    this.dead = new RedisDeadLetters(mailbox, o, host.codec, client, () => this.cmd.bytes);
    this.trim = new Trim(o, this.cmd);
    this.asks = new Asks(`${slotPrefix(o.stream)}:replies:${this.token}`, () => this.cmd.client, host.codec, `ringpool:${o.consumer}:replies`, (err, doing) => this.fault(err, doing));
    this.replier = new Replier(() => this.cmd.client, host.codec, (sid) => this.acks.ack(sid), (err, doing) => this.fault(err, doing), (sid) => this.order?.drop(sid));
    this.mover = new Mover(delayedKeys(o.stream), () => this.cmd.client, (err, doing) => this.fault(err, doing), Date.now, (key) => this.adds.holds.learn(key));
    this.reader = new Reader(this);
    this.sends = new StreamSends(mailbox, o, host, this.adds, (k) => this.part!.streamOf(k));
    this.offer = new Offer(this, host, () => this.intake!);
    this.groupGate = GroupGate.of(host.gate, o.stream, () => this.cmd.client);
  }

  /** rt.pause / rt.resume with a group limit: the whole group. */
  pause(ms: number | undefined): void {
    this.groupGate?.pause(ms);
  }
  resume(): void {
    this.groupGate?.resume();
  }

  // ------------------------------------------------------------ lifecycle

  async start(intake: SourceIntake, timeoutMs = 10_000): Promise<void> {
    this.intake = intake;
    try {
      await Promise.all([this.cmd.open(timeoutMs), this.readConn.open(timeoutMs), this.part?.conn.open(timeoutMs)]);
      if (this.part !== null) await agreeOnPartitions(this.cmd.client, this.part.keys.meta, this.o.partitions, this.o.stream, `mailbox '${this.mailbox}'`);
      await this.ensureGroup();
      await takeLease(this.cmd, this.o, this.mailbox, this.token);
      await this.cmd.client.sendCommand(['XGROUP', 'CREATECONSUMER', this.o.stream, this.o.group, this.o.consumer]);
      await this.mover.start(`ringpool:${this.o.consumer}:wake`);
    } catch (err) {
      this.connectedReject(err);
      await Promise.all([this.cmd.close(true), this.readConn.close(true), this.part?.conn.close(true), this.mover.stop()]);
      throw err;
    }
    this.connectedResolve();
    this.outages.started();
    this.running = true;
    this.reader.start();
    if (this.part !== null) {
      // Renewals go on while stopping (what is held still finishes under its lease); takes only while reading.
      this.every(this.o.ownerRenewMs, () => this.part!.parts.pass(), true);
      await this.part.parts.pass().catch((err: unknown) => this.fault(err, 'taking partitions'));
      this.part.reader.start();
    }
    this.every(HEARTBEAT_MS, () => this.heartbeat(), true);
    if (this.groupGate !== null) this.every(GATE_EVERY_MS, () => this.groupGate!.pass(), true);
    this.every(this.claims.takeoverEveryMs, () => this.claims.takeover());
    this.every(this.claims.touchEveryMs, () => this.claims.touch(), true);
    if (this.trim.on) this.every(TRIM_EVERY_MS, () => this.trim.pass(this.part === null ? [] : this.part.parts.owned().map((p) => this.part!.keys.stream(p))));
  }

  /** Stop reading (the mailbox closes): what is held still finishes, and its outcomes still reach Redis until close(). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false; // no more reads or takeovers; held entries are still touched and the lease kept, until close()
    this.held.wake();
    const deadline = Date.now() + this.o.blockMs + STOP_GRACE_MS;
    await within(this.reader.stop(this.cmd, this.o.consumer), deadline, () => this.readConn.close(true));
    if (this.part !== null) await within(this.part.reader.stop(), deadline, () => this.part!.conn.close(true));
    await within(this.claims.idle().catch(() => undefined), deadline, () => undefined);
    // Due messages are the other processes' to move now.
    await within(this.mover.stop(), deadline, () => undefined);
    await within(this.asks.stop(), deadline, () => undefined);
    this.adds.holds.stop();
  }

  /** After the feed's last batch: write what is left (CLOSE_MS at most), let go of the consumer name, disconnect. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.stop();
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.cmd.client === null) return;
    const deadline = Date.now() + CLOSE_MS;
    await within(this.adds.flushed(), deadline, () => this.adds.abandon(`not sent: Redis did not take it before mailbox '${this.mailbox}' closed`));
    await this.acks.flushed(Math.max(0, deadline - Date.now()));
    this.acks.stopped = true;
    const streams = [this.o.stream, ...[...(this.part?.parts.touched ?? [])].map((p) => this.part!.keys.stream(p))];
    const leave = (): Promise<void> => leaveGroup(this.cmd, this.o, streams, this.token);
    // Redis away: the leases expire on their own.
    if (this.cmd.up && this.part !== null) await within(this.part.parts.releaseAll().catch(() => undefined), deadline, () => undefined);
    if (this.cmd.up) await within(leave().catch(() => undefined), deadline, () => undefined);
    await Promise.all([this.cmd.close(!this.cmd.up || Date.now() >= deadline), this.readConn.close(true), this.part?.conn.close(true)]);
  }

  /** A background pass every `ms`; `always`: also while stopping (until close()), else only while reading. */
  private every(ms: number, fn: () => Promise<void>, always = false): void {
    const t = setInterval(() => {
      if ((this.running || always) && !this.closed) fn().catch((err: unknown) => this.fault(err, 'in a background pass'));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  // ------------------------------------------------------------ the group and the consumer name

  async ensureGroup(): Promise<void> {
    try {
      await this.cmd.client.sendCommand(['XGROUP', 'CREATE', this.o.stream, this.o.group, '0', 'MKSTREAM']);
    } catch (err) {
      if (!message(err).startsWith('BUSYGROUP')) throw err;
    }
  }

  /** NOGROUP: recreate the group (from the stream's start), say so, and let the caller back off. */
  async groupGone(cause: unknown): Promise<void> {
    this.resets++;
    this.host.emitError(
      new RingpoolError(
        ErrorCodes.SOURCE_RESET,
        `stream '${this.o.stream}' or its group '${this.o.group}' is gone (Redis restarted without persistence, or they were deleted): recreating the group; entries acknowledged before are not known to it`,
        { mailbox: this.mailbox, stream: this.o.stream, group: this.o.group },
        { cause },
      ),
    );
    await this.ensureGroup();
    await this.cmd.client.sendCommand(['XGROUP', 'CREATECONSUMER', this.o.stream, this.o.group, this.o.consumer]);
  }

  /** Once a second: keep the consumer name, and poll the group's lag and pending and the dead letters' count. */
  private async heartbeat(): Promise<void> {
    const h = await poll(this.cmd, this.o, this.token);
    if (h.lostLease) this.host.emitError(consumerTaken(this.mailbox, this.o.consumer));
    this.group.apply(h);
    if (h.dead !== null) this.dead.size = h.dead;
    if (this.part !== null) await this.part.pollLag();
  }

  // ------------------------------------------------------------ faults

  /** A command went through: the next fault is a new outage (outages.ts). */
  healthy(): void {
    this.outages.healthy();
  }

  /** Report a fault, once per outage (outages.ts). */
  fault(err: unknown, doing: string): void {
    this.outages.fault(err, doing);
  }

  /** Entries trimmed from the stream before they ran: nothing to run; acknowledged, counted, reported. */
  trimmed(ids: readonly string[], part = -1, epoch = 0): void {
    this.trimmedCount += ids.length;
    for (const id of ids) this.acks.ack(qualify(id, part, epoch));
    this.host.emitError(trimmedError(this.mailbox, this.o.stream, ids));
  }

  // ------------------------------------------------------------ entries into the ring (offer.ts)

  take(e: Entries, counts: ((ids: readonly string[]) => Promise<number[]>) | null, part = -1, epoch = 0): Promise<void> {
    return this.offer.take(e, counts, part, epoch);
  }

  /** Partition `p` is this process's at `epoch`, its lease not lapsed here. */
  holds(p: number, epoch: number): boolean {
    return this.part?.parts.holds(p, epoch) ?? false;
  }

  emitError(err: Error): void {
    this.host.emitError(err);
  }

  /** The fence table its consumers read (partitioned mailboxes). */
  get fence(): FenceRef | null {
    return this.part?.fenceRef ?? null;
  }

  /** A failed or skipped record of a partition this process lost: dropped here (failures.ts asks); an ask of it is answered by its new owner. */
  fenced(localId: number): boolean {
    const dropped = this.part?.fenced(localId) ?? false;
    if (dropped && this.replier.size > 0) {
      this.replier.forget(localId);
      this.host.dropAsk(localId);
    }
    return dropped;
  }

  // ------------------------------------------------------------ outcomes back to Redis

  outcomes(batch: OutcomeBatch): void {
    const held = this.held;
    for (let i = 0; i < batch.n; i++) {
      const k = batch.kind[i];
      if (k === Outcome.ACKED) {
        const sid = held.release(batch.id[i]!);
        // An ask's XACK waits for its reply to be in Redis (asks.ts).
        if (sid !== undefined) this.replier.size === 0 ? this.acks.ack(sid) : this.replier.acked(batch.id[i]!, sid);
      } else if (k === Outcome.RETRY) {
        const sid = held.sid(batch.id[i]!);
        if (sid !== undefined) this.acks.retry(sid, batch.attempt[i]! - 1);
      }
      // DEAD_LETTERED: written from deadLetter() below, when it happens.
    }
  }

  /**
   * The mailbox dead-letters a message (failures.ts): one of ours goes to
   * `<stream>:dead` with its XACK, and not into the local store. Returns
   * its letter, or null for a message that is not from the stream (a
   * handler's ctx.send into this ring), which the local store keeps.
   */
  deadLetter(held: HeldMessage, reason: DeadLetterReason, deadAt: number): DeadLetter | null {
    const q = this.held.release(held.id);
    if (q === undefined) return null;
    const f = deadFields(held, q, reason, deadAt);
    this.acks.deadLetter(f);
    return this.offer.letter(f);
  }

  // ------------------------------------------------------------ sends (sends.ts)

  send(payload: unknown, opts: SendOptions | undefined, closed: boolean, flags = 0): number {
    return this.sends.send(payload, opts, closed || this.closed, flags);
  }

  sendAsync(payload: unknown, opts: SendOptions | undefined, closed: boolean, signal?: AbortSignal, timeoutMs?: number): Promise<string> {
    return this.sends.sendAsync(payload, opts, closed || this.closed, signal, timeoutMs);
  }

  sendBatch(payloads: readonly unknown[], opts: BatchOptions | undefined, closed: boolean): number[] {
    return this.sends.sendBatch(payloads, opts, closed || this.closed);
  }

  sendBatchAsync(payloads: readonly unknown[], opts: BatchOptions | undefined, closed: boolean, signal?: AbortSignal, timeoutMs?: number): Promise<string[]> {
    return this.sends.sendBatchAsync(payloads, opts, closed || this.closed, signal, timeoutMs);
  }

  /** ask(): the entry carries this process's reply stream and an id; the reply comes back there (asks.ts). */
  ask(payload: unknown, key: string | undefined, flags: number, closed: boolean, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<unknown> {
    let send: (corr: string) => Promise<unknown>;
    try {
      send = this.sends.prepareAsk(payload, key, (flags & FLAG_CALL) !== 0, closed || this.closed, this.asks.key);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.asks.ask(send, `ask to mailbox '${this.mailbox}'`, signal, timeoutMs);
  }

  /** A handler's chained sends to this mailbox (chained.ts): one transaction, resolved once Redis has them. */
  sendEncoded(items: readonly StreamItem[]): Promise<unknown> {
    return this.sends.sendEncoded(items, this.closed);
  }

  /** Its partitions (0: none): a keyed chained send needs them. */
  get partitions(): number {
    return this.o.partitions;
  }

  stats(): StreamStats {
    return streamStats(this);
  }

  /** The calls a Redis mailbox cannot keep yet, each with why (refusals.ts). */
  refuses(call: MailboxCall): RingpoolError | null {
    return redisRefusal(this.mailbox, this.o.stream, this.part !== null, call);
  }

  /** The mailbox's dead letters: the stream's go to `<stream>:dead` (deadLetter() above), the rest to the local store (dead.ts). */
  deadLetters(local: DeadLetterSink): DeadLetterSink {
    return streamSink(local, this.dead, (held, reason, deadAt) => this.deadLetter(held, reason, deadAt));
  }
}
