/**
 * The command that writes one message to a stream (main thread; adds.ts): a
 * plain XADD of its fields (fields.ts), or SEND_LUA (delayed.ts) for a
 * keyed or delayed send, which XADDs it unless it waits in the delayed set.
 */
import { createHash } from 'node:crypto';
import { CALL_FIELD, CORR_FIELD, HEADERS_FIELD, KEY_FIELD, PAYLOAD_FIELD, REPLY_FIELD } from './fields.js';
import { SEND_LUA, sendFlags, type DelayedKeys } from './delayed.js';

const SEND_SHA = createHash('sha1').update(SEND_LUA).digest('hex');

const EMPTY = Buffer.alloc(0);

/** XADD to `stream`: `d`, then `k`, `c`, `r` and `a`, `h`, each only when the message has it. */
export function xaddCommand(stream: string, bytes: Buffer, key: string | null, call: boolean, reply: string | null, corr: string | null, headers: Buffer | null): (string | Buffer)[] {
  const f: (string | Buffer)[] = ['XADD', stream, '*', PAYLOAD_FIELD, bytes];
  if (key !== null) f.push(KEY_FIELD, key);
  if (call) f.push(CALL_FIELD, '1');
  if (reply !== null) f.push(REPLY_FIELD, reply, CORR_FIELD, corr!);
  if (headers !== null) f.push(HEADERS_FIELD, headers);
  return f;
}

/** SEND_LUA (loaded in the same transaction) for a message to `stream` due at `due` (ms on Redis's clock; '0': now). */
export function sendScriptCommand(d: DelayedKeys, stream: string, due: string, bytes: Buffer, key: string | null, call: boolean, reply: string | null, corr: string | null, headers: Buffer | null): (string | Buffer)[] {
  return ['EVALSHA', SEND_SHA, '4', d.set, d.holds, d.seq, stream, due, sendFlags(key, call), key ?? '', bytes, d.wake, reply ?? '', corr ?? '', d.held, headers ?? EMPTY];
}
