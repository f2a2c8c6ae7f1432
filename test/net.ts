/** Loopback helpers for tests and the suite's set-up (no vitest import: globalSetup loads this too). */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';

/** An HTTP answer read whole: its body as text, and as JSON when it parses. */
export interface HttpReply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

/** Read a response to its end (the console's JSON answers, its page, its errors). */
export function readReply(res: IncomingMessage): Promise<HttpReply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
    });
  });
}

/** A loopback port nothing listens on (bound, then closed). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}
