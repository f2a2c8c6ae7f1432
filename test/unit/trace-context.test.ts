// The W3C trace context and baggage ringpool writes into a message's headers and reads back on the consumer thread
// (runtime/shared/tracing.ts): a round trip keeps trace id, span id, sampled flag, tracestate and baggage (with
// characters that need escaping, and metadata); a malformed or all-zero traceparent, or a bad baggage entry, is
// passed over, never thrown.
import { describe, expect, it } from 'vitest';
import * as api from '@opentelemetry/api';
import { extractBaggage, extractSpanContext, inject } from '../../dist/runtime/shared/tracing.js';

const sc = (flags: number): api.SpanContext => ({
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: flags,
  traceState: api.createTraceState('vendor=a1,other=b2'),
});

describe('trace context in headers', () => {
  it('round-trips span context, tracestate and baggage', () => {
    const bag = api.propagation.createBaggage({ tenant: { value: 'acme, inc;=ä' }, 'user id': { value: '7', metadata: api.baggageEntryMetadataFromString('p=1') } });
    const ctx = api.propagation.setBaggage(api.trace.setSpanContext(api.ROOT_CONTEXT, sc(1)), bag);
    const headers: Record<string, string> = { mine: 'kept' };
    inject(api, ctx, headers);
    expect(headers.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(headers.tracestate).toBe('vendor=a1,other=b2');
    expect(headers.mine).toBe('kept');
    const back = extractSpanContext(api, headers)!;
    expect(back).toMatchObject({ traceId: sc(1).traceId, spanId: sc(1).spanId, traceFlags: 1, isRemote: true });
    expect(back.traceState?.get('vendor')).toBe('a1');
    const b = api.propagation.getBaggage(extractBaggage(api, api.ROOT_CONTEXT, headers))!;
    expect(b.getEntry('tenant')?.value).toBe('acme, inc;=ä');
    expect(b.getEntry('user id')?.value).toBe('7');
    expect(b.getEntry('user id')?.metadata?.toString()).toBe('p=1');
  });

  it('an unsampled context stays unsampled; no context and no baggage write nothing', () => {
    const h: Record<string, string> = {};
    inject(api, api.trace.setSpanContext(api.ROOT_CONTEXT, { ...sc(0), traceState: undefined }), h);
    expect(h).toEqual({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' });
    expect(extractSpanContext(api, h)!.traceFlags).toBe(0);
    const none: Record<string, string> = {};
    inject(api, api.ROOT_CONTEXT, none);
    expect(none).toEqual({});
  });

  it('malformed input is passed over', () => {
    // A later version is read as 00 from its first four fields (W3C); ff is invalid, and 00 takes nothing after them.
    expect(extractSpanContext(api, { traceparent: 'cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes-next' })).toMatchObject({ spanId: 'b7ad6b7169203331', traceFlags: 1 });
    for (const tp of ['', 'garbage', 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more', '00-00000000000000000000000000000000-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01']) {
      expect(extractSpanContext(api, { traceparent: tp }), tp).toBeUndefined();
    }
    expect(extractSpanContext(api, {})).toBeUndefined();
    const b = api.propagation.getBaggage(extractBaggage(api, api.ROOT_CONTEXT, { baggage: 'good=1,=novalue,bad=%E0%A4%A,noequals' }))!;
    expect(b.getAllEntries().map(([k, e]) => [k, e.value])).toEqual([['good', '1']]);
  });
});
