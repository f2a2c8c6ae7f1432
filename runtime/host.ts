/**
 * What a mailbox sees of its runtime (MailboxHost, runtime/mailbox/types.ts):
 * the other mailboxes and their rings (ring tags, holes, chained sends), its
 * threads (the shared pool or its own), whether the runtime runs, and the
 * runtime's events. Kept apart from the Runtime class, which is what users
 * call.
 */
import type { BreakerEvent } from './mailbox/breaker.js';
import type { HandlerTimeoutEvent, Mailbox, MailboxHost, ScaleEvent, WorkerCrashEvent } from './mailbox/index.js';
import type { ResolvedMailbox } from './mailbox-options.js';
import type { ResolvedRuntime } from './options.js';
import { threadsOf, type SharedPool } from './pool/shared.js';
import type { LaneHost } from './pool/threads.js';
import type { RingRef } from './shared/protocol.js';
import type { Ring } from './shared/ring.js';
import type { DeadLetter } from './dead-letters.js';
import type { RuntimeEvents } from './api.js';

export interface HostDeps {
  boxes: ReadonlyMap<string, Mailbox>;
  refs: Record<string, RingRef>;
  pool: () => SharedPool | null;
  options: ResolvedRuntime;
  running: () => boolean;
  emit: <E extends keyof RuntimeEvents>(event: E, ...args: RuntimeEvents[E]) => void;
  emitError: (err: Error) => void;
}

export class RuntimeHost implements MailboxHost {
  constructor(private readonly d: HostDeps) {}

  ringRefs(): Record<string, RingRef> {
    return this.d.refs;
  }
  threadsOf(name: string, ring: Ring, o: ResolvedMailbox): () => LaneHost {
    return threadsOf(this.d.pool(), this.d.options, name, ring, o, this.d.emitError);
  }
  mailbox(name: string): Mailbox | undefined {
    return this.d.boxes.get(name);
  }
  mailboxAt(index: number): Mailbox | undefined {
    // The order worker threads see (Object.keys of the ring refs they get).
    const name = Object.keys(this.d.refs)[index];
    return name === undefined ? undefined : this.d.boxes.get(name);
  }
  guardsHeld(): boolean {
    for (const b of this.d.boxes.values()) if (b.guardHeld()) return true;
    return false;
  }
  releaseStructures(threadId: number): void {
    for (const b of this.d.boxes.values()) b.structures?.releaseIfHeldBy(threadId);
  }
  running(): boolean {
    return this.d.running();
  }
  emitDeadLetter(letter: DeadLetter): void {
    this.d.emit('dead-letter', { mailbox: letter.mailbox, letter });
  }
  emitWorkerCrash(ev: WorkerCrashEvent): void {
    this.d.emit('worker-crash', ev);
  }
  emitHandlerTimeout(ev: HandlerTimeoutEvent): void {
    this.d.emit('handler-timeout', ev);
  }
  emitBreaker(ev: BreakerEvent): void {
    this.d.emit('breaker', ev);
  }
  emitScale(ev: ScaleEvent): void {
    this.d.emit('scale', ev);
  }
  emitError(err: Error): void {
    this.d.emitError(err);
  }
}
