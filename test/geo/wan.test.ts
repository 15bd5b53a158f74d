/**
 * The WAN emulation the geo tests stand on: a WanLink delays each direction by its one-way latency,
 * never reorders bytes under jitter, holds everything during a stall and releases it in order,
 * blackholes while down, and draws the same jitter from the same seed; and docs/geo.md shows the
 * timing table the tests use.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { after, before, describe, it } from "node:test";
import { sleep } from "../integration/procs.js";
import { failoverBoundMs, TIMING_BY_RTT, timingFor } from "../lib/geo-cluster.js";
import { seededRandom, WanLink } from "../lib/wan.js";

/** An echo server on loopback. */
async function echoServer(): Promise<net.Server> {
  const s = net.createServer((c) => {
    c.on("error", () => {});
    c.pipe(c);
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  return s;
}

/** Connects through the link; collects what comes back with arrival times. */
async function connect(link: WanLink): Promise<{ sock: net.Socket; got: { at: number; data: Buffer }[] }> {
  const sock = net.connect(link.port, "127.0.0.1");
  sock.setNoDelay(true);
  const got: { at: number; data: Buffer }[] = [];
  sock.on("data", (data: Buffer) => got.push({ at: performance.now(), data }));
  sock.on("error", () => {});
  await new Promise<void>((r) => sock.once("connect", () => r()));
  return { sock, got };
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(5);
  }
}

describe("WanLink: userspace WAN emulation", () => {
  let echo: net.Server;
  let port: number;
  before(async () => {
    echo = await echoServer();
    port = (echo.address() as net.AddressInfo).port;
  });
  after(async () => {
    await new Promise((r) => echo.close(r));
  });

  it("a round trip through one link costs 2 × the one-way latency", async () => {
    const link = await WanLink.start("127.0.0.1", port, { oneWayMs: 40 });
    try {
      const { sock, got } = await connect(link);
      const rtts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const sent = performance.now();
        sock.write(`ping${i}`);
        await until(() => got.length > i);
        rtts.push(got[i]!.at - sent);
      }
      sock.destroy();
      for (const rtt of rtts) assert.ok(rtt >= 79 && rtt < 110, `rtt ${rtt}`);
    } finally {
      await link.close();
    }
  });

  it("jitter delays but never reorders bytes", async () => {
    const link = await WanLink.start("127.0.0.1", port, { oneWayMs: 20, jitterPct: 90, seed: 3 });
    try {
      const { sock, got } = await connect(link);
      let expected = "";
      for (let i = 0; i < 300; i++) {
        const s = `<${i}>`;
        expected += s;
        sock.write(s);
        if (i % 10 === 0) await sleep(1);
      }
      await until(() => Buffer.concat(got.map((g) => g.data)).length === expected.length);
      assert.equal(Buffer.concat(got.map((g) => g.data)).toString(), expected);
      sock.destroy();
    } finally {
      await link.close();
    }
  });

  it("a stall holds every byte, then releases them in order", async () => {
    const link = await WanLink.start("127.0.0.1", port, { oneWayMs: 5 });
    try {
      const { sock, got } = await connect(link);
      const stalledAt = performance.now();
      link.stall(300);
      sock.write("a");
      await sleep(100);
      sock.write("b");
      await until(() => Buffer.concat(got.map((g) => g.data)).toString() === "ab");
      assert.ok(got[0]!.at - stalledAt >= 295, `released after ${got[0]!.at - stalledAt} ms`);
      sock.destroy();
    } finally {
      await link.close();
    }
  });

  it("down resets connections and blackholes new ones; heal lets new ones through", async () => {
    const link = await WanLink.start("127.0.0.1", port, { oneWayMs: 1 });
    try {
      const a = await connect(link);
      const closed = new Promise((r) => a.sock.once("close", r));
      link.down();
      await closed;
      const b = await connect(link);
      b.sock.write("lost");
      await sleep(100);
      assert.equal(b.got.length, 0);
      const bClosed = new Promise((r) => b.sock.once("close", r));
      link.heal();
      await bClosed;
      const c = await connect(link);
      c.sock.write("ok");
      await until(() => c.got.length > 0);
      assert.equal(c.got[0]!.data.toString(), "ok");
      c.sock.destroy();
    } finally {
      await link.close();
    }
  });

  it("the same seed gives the same jitter", () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 5 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 5 }, () => b()),
    );
    assert.notDeepEqual(xs, Array.from({ length: 5 }, seededRandom(43)));
  });

  it("timing by RTT: the table's row at or above the largest RTT, ten heartbeats beyond it", () => {
    assert.deepEqual(timingFor(0.5), { heartbeatMs: 100, electionTimeoutMs: 500 });
    assert.deepEqual(timingFor(70), { heartbeatMs: 100, electionTimeoutMs: 1000 });
    assert.deepEqual(timingFor(220), { heartbeatMs: 300, electionTimeoutMs: 3000 });
    assert.deepEqual(timingFor(400), { heartbeatMs: 500, electionTimeoutMs: 5000 });
    for (const r of TIMING_BY_RTT) assert.ok(r.electionTimeoutMs >= 2 * r.heartbeatMs);
  });
});

describe("docs/geo.md", () => {
  it("shows the timing table the geo tests and bench use, with the failover bound of one round", () => {
    const doc = readFileSync(new URL("../../../docs/geo.md", import.meta.url), "utf8");
    const rows = doc
      .split("\n")
      .filter((l) => /^\| (< )?\d+ ms/.test(l))
      .map((l) => l.split("|").map((c) => c.trim()));
    assert.equal(rows.length, TIMING_BY_RTT.length);
    for (const [i, r] of TIMING_BY_RTT.entries()) {
      const [, rtt, heartbeat, election, bound] = rows[i]!;
      assert.match(rtt!, new RegExp(`${r.rttMs} ms`));
      assert.equal(Number(heartbeat), r.heartbeatMs, rtt);
      assert.equal(Number(election), r.electionTimeoutMs, rtt);
      const oneRoundS = failoverBoundMs(r, r.rttMs, 0) / 1000;
      assert.equal(bound, `${oneRoundS.toFixed(1)} s`, `failover bound for ${rtt}`);
    }
  });
});
