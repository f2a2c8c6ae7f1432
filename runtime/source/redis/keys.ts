/**
 * The Redis keys of a partitioned mailbox (issue #29). Every one carries the
 * hash tag `{<stream>}`, so that under Redis Cluster all of them (and the
 * unkeyed stream `<stream>` itself, whose slot is that of the same text) live
 * in one hash slot: the scripts that touch several of them stay legal there.
 *
 *   {S}:p:<i>                        partition i's stream
 *   {S}:partitions                   P, set by the first process or producer (SET NX)
 *   {S}:dead                         dead letters (all partitions, and unkeyed)
 *   {S}:members:<group>              live processes: a sorted set, score = lease end (ms, Redis TIME)
 *   {S}:owner:<group>:<i>            partition i's lease: '<token> <epoch>', PX ownerLeaseMs
 *   {S}:epoch:<group>:<i>            partition i's fencing epoch (INCR on each acquisition)
 *   {S}:released:<group>             a hash: partition -> the epoch last given back cleanly (else: a takeover)
 *   {S}:consumer:<group>:<consumer>  the consumer name's lease (lease.ts)
 */
import { invalidOption } from '../../shared/errors.js';

export interface PartitionKeys {
  tag: string;
  meta: string;
  dead: string;
  members: string;
  released: string;
  stream(i: number): string;
  owner(i: number): string;
  epoch(i: number): string;
  consumer(name: string): string;
}

export function partitionKeys(stream: string, group: string, partitions = 0): PartitionKeys {
  const tag = `{${stream}}`;
  // The partitions' stream names, made once (a keyed send names one).
  const streams = Array.from({ length: partitions }, (_, i) => `${tag}:p:${i}`);
  return {
    tag,
    meta: `${tag}:partitions`,
    dead: `${tag}:dead`,
    members: `${tag}:members:${group}`,
    released: `${tag}:released:${group}`,
    stream: (i) => streams[i] ?? `${tag}:p:${i}`,
    owner: (i) => `${tag}:owner:${group}:${i}`,
    epoch: (i) => `${tag}:epoch:${group}:${i}`,
    consumer: (name) => `${tag}:consumer:${group}:${name}`,
  };
}

/** What a stream's own keys start with to share its hash slot: `{S}`, or S itself when it has a tag of its own. */
export function slotPrefix(stream: string): string {
  return hasHashTag(stream) ? stream : `{${stream}}`;
}

/** Redis Cluster hashes this name by a tag of its own: its first `{`, then the first `}` after it, with something between. */
export function hasHashTag(name: string): boolean {
  const i = name.indexOf('{');
  return i >= 0 && name.indexOf('}', i + 1) > i + 1;
}

/** A stream name that can be a hash tag: no braces (Redis Cluster would hash another part of the name). */
export function checkTaggable(path: string, stream: string): void {
  if (/[{}]/.test(stream)) throw invalidOption(`${path}.stream`, 'a name without { or } when partitions is set (it becomes the hash tag {<stream>})', stream);
}
