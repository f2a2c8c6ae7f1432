// The circuit breaker's decision (runtime/mailbox/breaker.ts) with a fake clock: it opens when failureRatio of at
// least minCalls attempts in the window failed (not before, and not on failures older than the window), stays open
// for cooldownMs, lets one probe through (half-open), closes on its success and opens again on its failure; failures
// while it is not closed are not to be charged.
import { describe, expect, it } from 'vitest';
import { Breaker, resolveBreaker } from '../../dist/runtime/mailbox/breaker.js';

function make(o = { failureRatio: 0.5, minCalls: 10, windowMs: 1_000, cooldownMs: 500 }) {
  let t = 1_000_000;
  const events: string[] = [];
  const b = new Breaker(o, () => t, (s) => events.push(s));
  return { b, events, at: (ms: number) => (t += ms) };
}

describe('the circuit breaker', () => {
  it('opens at the ratio once minCalls ended in the window; not before', () => {
    const { b, events } = make();
    b.success(5);
    for (let i = 0; i < 4; i++) expect(b.failure()).toBe(false); // 4 of 9
    expect(b.state).toBe('closed');
    expect(b.failure()).toBe(true); // 5 of 10: opens, this one not charged
    expect(b.state).toBe('open');
    expect(events).toEqual(['open']);
    expect(b.failure()).toBe(true); // open: not charged
    expect(b.opens).toBe(1);
  });

  it('forgets what is older than the window', () => {
    const { b, at } = make();
    for (let i = 0; i < 9; i++) b.failure(); // 9 failures, 9 calls: under minCalls
    at(1_100); // past the window
    expect(b.failure()).toBe(false); // 1 of 1 in the window: under minCalls
    expect(b.state).toBe('closed');
  });

  it('half-open after the cooldown: the probe succeeding closes it, failing opens it again', () => {
    const { b, events, at } = make();
    for (let i = 0; i < 10; i++) b.failure();
    expect(b.state).toBe('open');
    at(499);
    b.tick();
    expect(b.state).toBe('open');
    at(1);
    b.tick();
    expect(b.state).toBe('half-open');
    expect(b.failure()).toBe(true); // the probe failed: open again, not charged
    expect(b.state).toBe('open');
    at(500);
    b.tick();
    b.success(1);
    expect(b.state).toBe('closed');
    expect(events).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
    // A fresh window after closing.
    for (let i = 0; i < 9; i++) expect(b.failure()).toBe(false);
  });

  it('options: defaults, and bad ones refused naming the option', () => {
    expect(resolveBreaker('b', {})).toEqual({ failureRatio: 0.5, minCalls: 20, windowMs: 10_000, cooldownMs: 5_000 });
    expect(resolveBreaker('b', undefined)).toBeNull();
    expect(() => resolveBreaker('b', { failureRatio: 0 })).toThrow(/b\.failureRatio/);
    expect(() => resolveBreaker('b', { minCalls: 0.5 })).toThrow(/b\.minCalls/);
    expect(() => resolveBreaker('b', { nope: 1 })).toThrow(/b\.nope/);
  });
});
