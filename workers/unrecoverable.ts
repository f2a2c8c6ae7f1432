/**
 * Throw this from a handler to skip the remaining attempts: the message goes
 * to the dead-letter store at once with reason `unrecoverable`. Recognised by
 * `name` too, so a copy of the class from another bundle works.
 */
export class UnrecoverableError extends Error {
  override name = 'UnrecoverableError';
  readonly unrecoverable = true;
}

export function isUnrecoverable(err: unknown): boolean {
  return (
    err instanceof UnrecoverableError ||
    (typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'UnrecoverableError')
  );
}
