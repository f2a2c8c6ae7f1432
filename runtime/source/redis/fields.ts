/** The fields of a ringpool stream entry (every writer and reader of the stream agrees on them). */

/** The entry field that holds the encoded payload. */
export const PAYLOAD_FIELD = 'd';
/** The entry field that holds a keyed message's key (partition streams). */
export const KEY_FIELD = 'k';
/** The entry field that marks an actor method call (`tell`): its payload is `[method, ...args]`. */
export const CALL_FIELD = 'c';
/** An ask's entry: the stream its reply goes to (the asking process's reply stream, asks.ts). */
export const REPLY_FIELD = 'r';
/** An ask's entry, and its reply: the asker's correlation id. */
export const CORR_FIELD = 'a';
/** A reply entry that carries the ask's final error (JSON) instead of `d`. */
export const ERROR_FIELD = 'e';
/**
 * The message's headers as encoded (runtime/shared/headers.ts encodeHeaders:
 * the JSON of the object, UTF-8, at most 4096 bytes): only on an entry sent
 * with headers (none: no field, no bytes).
 */
export const HEADERS_FIELD = 'h';
