/**
 * A consumer loop's own figures: acks (counted in its slot's ACKED word,
 * which the dispatcher folds), nacks (posted: the dispatcher decides between
 * retry and dead letter), and the handler time the autoscaler reads. Worker thread.
 */
import { toErrorInfo } from '../../runtime/shared/errors.js';
import type { WorkerEvent, WorkerStats } from '../../runtime/shared/protocol.js';
import type { SlotView } from '../../runtime/shared/slot.js';
import { isUnrecoverable } from '../unrecoverable.js';
import { retryAfterOf } from '../retry-after.js';
import { now32, pauseUntil } from '../../runtime/shared/limit.js';

/** What a loop's parts post to the dispatcher (its events port). */
export type Post = (ev: WorkerEvent) => void;

export class LoopTally {
  private acked: number;
  /** ACKED as this loop found it: the acks of the loops before it in this slot. */
  private readonly ackedBefore: number;
  private nacked = 0;
  /** EWMA of handler time per message (ms), also in the slot for the autoscaler. */
  handlerMs = 0;

  constructor(
    private readonly slot: SlotView,
    private readonly post: Post,
    private readonly incarnation: number,
  ) {
    // The slot's word counts across the loops that ran in it (the dispatcher folds it): this loop's own start from here.
    this.acked = slot.acked();
    this.ackedBefore = this.acked;
  }

  /** An ack went through: count it in the slot. */
  countAck(): void {
    this.slot.setAcked(++this.acked);
  }

  /** A failed attempt: the dispatcher decides between retry and dead letter (the record stays claimed until it has). */
  nack(unit: number, err: unknown): void {
    this.nacked++;
    // "Not now" from the downstream: the whole mailbox pauses here and now (no trip to the dispatcher), the message goes back uncharged.
    const after = retryAfterOf(err);
    if (after >= 0) {
      const t = now32(performance.timeOrigin + performance.now());
      pauseUntil(this.slot.i32, (t + Math.ceil(after * 1000)) | 0, t);
    }
    this.post({ type: 'nack', consumer: this.slot.c, incarnation: this.incarnation, unit, error: toErrorInfo(err), unrecoverable: isUnrecoverable(err) });
  }

  /** A batch ran at `perMsg` ms a message (one-at-a-time mode): EWMA 0.8 / 0.2. */
  observeBatch(perMsg: number): void {
    this.handlerMs = this.handlerMs === 0 ? perMsg : this.handlerMs * 0.8 + perMsg * 0.2;
    this.slot.setHandlerMs(this.handlerMs);
  }

  /** One handler's time (concurrent mode): EWMA 0.9 / 0.1. */
  observeHandler(ms: number): void {
    this.handlerMs = this.handlerMs === 0 ? ms : this.handlerMs * 0.9 + ms * 0.1;
    this.slot.setHandlerMs(this.handlerMs);
  }

  stats(threadId: number, batchSize: number): WorkerStats {
    return {
      threadId,
      consumer: this.slot.c,
      incarnation: this.incarnation,
      acked: (this.acked - this.ackedBefore) | 0,
      nacked: this.nacked,
      batchSize,
      handlerMs: this.handlerMs,
    };
  }
}
