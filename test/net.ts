/** Loopback helpers for tests and the suite's set-up (no vitest import: globalSetup loads this too). */
import { createServer, type AddressInfo } from 'node:net';

/** A loopback port nothing listens on (bound, then closed). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}
