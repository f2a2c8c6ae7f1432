/**
 * A consumer loop's codecs, one per mailbox it decodes or sends to, made on
 * first use (a loop on a thread shared by a thousand mailboxes makes the few
 * it uses, not a thousand). Built-in codecs are made on the spot; custom ones
 * are modules, imported beforehand (loadCustomCodecs) into a table that the
 * loops of one thread share. A msgpack codec with a shared structure table
 * appends to it under this loop's send guard, so it is the loop's own.
 */
import { builtinCodec, loadCodec, type PayloadCodec } from '../../runtime/shared/codec.js';
import { MsgpackCodec } from '../../runtime/shared/msgpack.js';
import type { RingRef } from '../../runtime/shared/protocol.js';

/** What the loop's parts read a mailbox's codec from. */
export interface CodecLookup {
  get(mailbox: string): PayloadCodec | undefined;
}

/** Tables already filled for a rings table (a pool thread's lanes share both: the first loop walks the mailboxes, not each). */
const filled = new WeakMap<Map<string, PayloadCodec>, object>();

/** Import every custom codec module of `rings` not in `into` yet (a thread's table, shared by its loops). */
export async function loadCustomCodecs(rings: Readonly<Record<string, RingRef>>, into: Map<string, PayloadCodec>): Promise<void> {
  if (filled.get(into) === rings) return;
  for (const name of Object.keys(rings)) {
    const spec = rings[name]!.codec;
    if (spec.kind === 'custom' && !into.has(name)) into.set(name, await loadCodec(spec));
  }
  filled.set(into, rings);
}

export class LaneCodecs implements CodecLookup {
  private readonly made = new Map<string, PayloadCodec>();

  constructor(
    private readonly rings: Readonly<Record<string, RingRef>>,
    /** Custom codecs, loaded beforehand (loadCustomCodecs). */
    private readonly custom: ReadonlyMap<string, PayloadCodec>,
    /** The loop's send guard: a shared structure table is appended to under it (a lease kill never leaves it locked). */
    private readonly guard: { i32: Int32Array; index: number },
  ) {}

  get(mailbox: string): PayloadCodec | undefined {
    let c = this.made.get(mailbox);
    if (c !== undefined) return c;
    const ref = Object.hasOwn(this.rings, mailbox) ? this.rings[mailbox] : undefined;
    if (ref === undefined) return undefined;
    const spec = ref.codec;
    c = spec.kind === 'custom' ? this.custom.get(mailbox) : builtinCodec(spec);
    if (c === undefined) return undefined;
    if (c instanceof MsgpackCodec && c.table !== null) c.table.guard = this.guard;
    this.made.set(mailbox, c);
    return c;
  }
}
