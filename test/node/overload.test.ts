/** Admission against its bounds, and the lag probe's windows, on scripted timestamps. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { OverloadedError, UnavailableError } from "../../src/node/errors.js";
import { type AdmissionLimits, admit, checkLimits, LagProbe } from "../../src/node/overload.js";

const LIMITS: AdmissionLimits = { maxInFlightProposals: 4, maxQueuedRequests: 8, maxEventLoopLagMs: 100 };
const idle = { inFlightProposals: 0, queuedRequests: 0, lagMs: 0, settleMs: 0 };

describe("admission", () => {
  it("admits below every bound", () => {
    const busy = { inFlightProposals: 3, queuedRequests: 7, lagMs: 100, settleMs: 30 };
    assert.equal(admit(busy, LIMITS, "proposal"), null);
    assert.equal(admit(busy, LIMITS, "request"), null);
  });

  it("refuses a proposal at the in-flight bound, and only a proposal", () => {
    const e = admit({ ...idle, inFlightProposals: 4 }, LIMITS, "proposal");
    assert.ok(e instanceof OverloadedError);
    assert.ok(e instanceof UnavailableError, "callers that retry UnavailableError retry this too");
    assert.equal(e.reason, "proposals");
    assert.equal(e.retryAfterMs, 50, "at least 50 ms");
    assert.equal(
      admit({ ...idle, inFlightProposals: 9, settleMs: 240.4 }, LIMITS, "proposal")?.retryAfterMs,
      240,
    );
    assert.equal(
      admit({ ...idle, inFlightProposals: 9, settleMs: 5000 }, LIMITS, "proposal")?.retryAfterMs,
      1000,
    );
    assert.equal(admit({ ...idle, inFlightProposals: 4 }, LIMITS, "request"), null);
  });

  it("refuses a request at the queued-requests bound, and only a request", () => {
    const e = admit({ ...idle, queuedRequests: 8 }, LIMITS, "request");
    assert.equal(e?.reason, "requests");
    assert.equal(admit({ ...idle, queuedRequests: 8 }, LIMITS, "proposal"), null);
  });

  it("refuses everything while the lag is over its bound, with a longer wait for a longer lag", () => {
    const a = admit({ ...idle, lagMs: 101 }, LIMITS, "request");
    const b = admit({ ...idle, lagMs: 400 }, LIMITS, "proposal");
    assert.equal(a?.reason, "event_loop_lag");
    assert.equal(b?.reason, "event_loop_lag");
    assert.ok(b!.retryAfterMs > a!.retryAfterMs);
    assert.ok(b!.retryAfterMs <= 1000);
    assert.equal(
      admit({ ...idle, lagMs: 10_000 }, { ...LIMITS, maxEventLoopLagMs: 0 }, "request"),
      null,
      "0 = off",
    );
  });

  it("rejects bounds that are not whole numbers in range", () => {
    assert.throws(() => checkLimits({ ...LIMITS, maxInFlightProposals: 0 }), /maxInFlightProposals/);
    assert.throws(() => checkLimits({ ...LIMITS, maxQueuedRequests: 1.5 }), /maxQueuedRequests/);
    assert.throws(() => checkLimits({ ...LIMITS, maxEventLoopLagMs: -1 }), /maxEventLoopLagMs/);
    checkLimits(LIMITS);
  });
});

describe("lag probe", () => {
  it("reports how late a periodic timer fired, over the recent windows, and the worst ever", () => {
    const p = new LagProbe(10, 250);
    let t = 0;
    p.sample(t);
    for (let i = 0; i < 10; i++) {
      t += 10;
      p.sample(t);
    }
    assert.equal(p.recentMs(t), 0, "on time");
    t += 130; // 120 ms late
    p.sample(t);
    assert.equal(p.recentMs(t), 120);
    for (let i = 0; i < 5; i++) {
      t += 10;
      p.sample(t);
    } // a window boundary passed
    assert.equal(p.recentMs(t), 120, "still within the previous window");
    for (let i = 0; i < 30; i++) {
      t += 10;
      p.sample(t);
    }
    assert.equal(p.recentMs(t), 0, "two windows later it is forgotten");
    assert.equal(p.maxMs, 120, "but the maximum is kept");
  });

  it("calls lag sustained only when two windows in a row were late: one stall is not overload", () => {
    const p = new LagProbe(10, 250);
    let t = 0;
    p.sample(t);
    const step = (gap: number, n: number) => {
      for (let i = 0; i < n; i++) {
        t += gap;
        p.sample(t);
      }
    };
    step(10, 30);
    t += 310; // one 300 ms stall (a GC pause)
    p.sample(t);
    assert.equal(p.recentMs(t), 300);
    assert.equal(p.sustainedMs(t), 0, "the window before it was on time");
    step(10, 30);
    assert.equal(p.sustainedMs(t), 0, "and the loop is back on time");
    // Now late by 150 ms on every tick, for a second.
    step(160, 7);
    assert.ok(p.sustainedMs(t) >= 150, `sustained ${p.sustainedMs(t)}`);
    step(10, 60);
    assert.equal(p.sustainedMs(t), 0, "forgotten once on time again");
  });

  it("counts a timer that is late right now, before its callback runs", () => {
    const p = new LagProbe(10, 250);
    p.sample(0);
    p.sample(10);
    assert.equal(p.recentMs(210), 190);
  });
});
