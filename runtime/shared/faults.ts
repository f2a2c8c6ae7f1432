/**
 * Test-only fault points, and trace points. Fault points are the places where
 * a thread that dies leaves a hole in shared memory for the dispatcher to
 * repair (holes.ts): tests arm a hook from a handler module (it imports this
 * file by path: it is not part of the public API) and exit the thread right
 * there. Trace points are the steps of one message, timestamped by
 * `npm run bench:trace`. Null otherwise: each point costs one load of this
 * module's binding. Thread-neutral.
 */
export type FaultPoint =
  /** A ring record reserved (a ctx.send, or a reply when `tag` is a reply ring's), not yet published. */
  | 'ring-reserved'
  /** A keyed record's claim moved to its owner, not yet on the owner's queue. */
  | 'handoff-claimed'
  /** A hand-off queue entry reserved, not yet written. */
  | 'handoff-reserved'
  /** A delayed send counted (and its key's seq taken), not yet handed to the dispatcher. */
  | 'delayed-counted'
  /** (trace) send(): the payload encoded. */
  | 'encoded'
  /** (trace) send(): the record published and the consumer woken (`tag`: 1 if a parked one was). */
  | 'published'
  /** (trace) A consumer loop back from its futex wait. */
  | 'woken'
  /** (trace) A consumer loop claimed `tag` records. */
  | 'claimed';

export let faultHook: ((point: FaultPoint, tag: number) => void) | null = null;

export function setFaultHook(hook: ((point: FaultPoint, tag: number) => void) | null): void {
  faultHook = hook;
}
