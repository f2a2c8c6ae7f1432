/**
 * A mailbox's latency histograms (main thread): the blocks its consumer
 * loops write (queue wait, processing, end to end; shared/histogram.ts) and
 * the producer's own for enqueue time, turned on when metrics are attached
 * and read at scrape time.
 */
import type { Producer } from '../shared/producer.js';
import { allocateMetricsBuffer, enableRecording, H_END_TO_END, H_PROCESSING, H_QUEUE_WAIT, LocalHistogram, readHistogram, type HistogramSnapshot } from '../shared/histogram.js';

export interface HistogramSnapshots {
  bounds: readonly number[];
  enqueue: HistogramSnapshot;
  queueWait: HistogramSnapshot;
  processing: HistogramSnapshot;
  endToEnd: HistogramSnapshot;
}

export class Histograms {
  /** Histogram blocks written by the consumer loops (see shared/histogram.ts). */
  readonly sab = allocateMetricsBuffer();
  private bounds: readonly number[] | null = null;

  /** Start recording (metrics attached): consumer loops pick the bounds up at their next batch; `producer` times its sends. */
  enable(bounds: readonly number[], producer: Producer): void {
    this.bounds = bounds;
    enableRecording(this.sab, bounds);
    producer.timing = new LocalHistogram(bounds);
  }

  /** Snapshots (cumulative buckets), or null while metrics are off. */
  snapshot(producer: Producer): HistogramSnapshots | null {
    const b = this.bounds;
    const timing = producer.timing;
    if (b === null || timing === null) return null;
    return {
      bounds: b,
      enqueue: timing.snapshot(),
      queueWait: readHistogram(this.sab, H_QUEUE_WAIT, b.length),
      processing: readHistogram(this.sab, H_PROCESSING, b.length),
      endToEnd: readHistogram(this.sab, H_END_TO_END, b.length),
    };
  }
}
