/**
 * One peer stream for every Raft group of a node: a message reaches its own group's view and no
 * other; a peer that names a group the node does not have is garbage (its stream is cut, nothing
 * is delivered); a one-group node never takes a tagged message for its own.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { after, describe, it } from "node:test";
import type { Message } from "../../src/raft/types.js";
import { encodeFramedMessage, encodeHeartbeatBatch } from "../../src/transport/codec.js";
import { GroupTransports } from "../../src/transport/groups.js";
import { HttpTransport, RAFT_PATH, UPGRADE_PROTOCOL } from "../../src/transport/http.js";

const quiet = { info: () => {}, warn: () => {} };
const servers: http.Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

async function node(groups: number, self = "b", opts: { heartbeatBatches?: boolean } = {}) {
  const server = http.createServer();
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const t = new HttpTransport({ self, clusterId: "c1", peers: new Map(), logger: quiet, groups, ...opts });
  t.attach(server);
  const port = (server.address() as AddressInfo).port;
  return { t, port };
}

/** Opens a peer stream from 'a' to the node and writes `frames` on it; resolves once it is closed or 300 ms pass. */
function stream(port: number, frames: Uint8Array[]): Promise<{ closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => {
      s.write(
        `GET ${RAFT_PATH} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${UPGRADE_PROTOCOL}\r\n` +
          "X-Ballot-From: a\r\nX-Ballot-To: b\r\nX-Ballot-Cluster: c1\r\n\r\n",
      );
      for (const f of frames) s.write(f);
    });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ closed: false });
    }, 300);
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ closed: true });
    });
    s.on("error", () => {});
    s.on("data", () => {});
  });
}

const beat = (term: number): Message => ({ type: "heartbeat", from: "a", to: "b", term, commit: 0 });

/** Node 'a' with a stream to `b`; resolves once it is connected. */
async function dialler(groups: number, bPort: number) {
  const a = await node(groups, "a");
  a.t.setPeers(new Map([["b", `http://127.0.0.1:${bPort}`]]));
  a.t.start(() => {});
  for (let i = 0; i < 100 && !a.t.status()[0]?.connected; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(a.t.status()[0]?.connected, "a's stream to b is up");
  return a.t;
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
}

describe("group transports over one peer stream", () => {
  it("delivers each group's messages to its own view only", async () => {
    const { t, port } = await node(4);
    const mux = new GroupTransports(t, 4);
    const got: [number, number][] = [];
    for (let g = 0; g < 4; g++) mux.view(g).start((m, group) => got.push([group, m.term]));
    const r = await stream(port, [
      encodeFramedMessage(beat(10), 0),
      encodeFramedMessage(beat(13), 3),
      encodeFramedMessage(beat(11), 1),
    ]);
    assert.equal(r.closed, false);
    assert.deepEqual(got, [
      [0, 10],
      [3, 13],
      [1, 11],
    ]);
    await t.close();
  });

  it("cuts a peer that names a group the node does not have, delivering nothing of it", async () => {
    const { t, port } = await node(2);
    const got: number[] = [];
    t.start((_m, group) => got.push(group));
    const r = await stream(port, [encodeFramedMessage(beat(1), 5), encodeFramedMessage(beat(2), 0)]);
    assert.equal(r.closed, true);
    assert.deepEqual(got, []);
    assert.equal(t.rejected, 1);
    // A one-group node: any tagged message is garbage.
    const one = await node(1);
    const seen: number[] = [];
    one.t.start((_m, group) => seen.push(group));
    const r1 = await stream(one.port, [encodeFramedMessage(beat(1), 1)]);
    assert.equal(r1.closed, true);
    assert.deepEqual(seen, []);
    await t.close();
    await one.t.close();
  });

  it("a turn's heartbeats of every group leave as one batch; a group's other messages never overtake its heartbeat", async () => {
    const b = await node(16);
    const got: string[] = [];
    b.t.start((m, group) => got.push(`${group}:${m.type}:${m.term}`));
    const a = await dialler(16, b.port);
    // One turn: every group heartbeats (as the shared clock's tick makes them), group 3 then appends.
    for (let g = 0; g < 16; g++) a.send([{ ...beat(g + 1), sentTick: 7, readSeq: g }], g);
    a.send([{ ...beat(4), type: "append", index: 0, logTerm: 0, entries: [] }], 3);
    a.send([{ type: "heartbeatResp", from: "a", to: "b", term: 9, sentTick: 7 }], 15);
    await until(() => got.length === 18);
    assert.equal(got.length, 18);
    assert.ok(got.indexOf("3:heartbeat:4") < got.indexOf("3:append:4"), "group 3's heartbeat first");
    for (let g = 0; g < 16; g++) assert.ok(got.includes(`${g}:heartbeat:${g + 1}`), `group ${g}'s heartbeat`);
    assert.ok(got.includes("15:heartbeatResp:9"));
    // Group 3's heartbeat went ahead of its append (one batch of 4: groups 0-3), the rest together.
    assert.equal(a.heartbeatBatchesSent, 2);
    await a.close();
    await b.t.close();
  });

  it("a peer that does not say it reads batches (an older version) gets one frame per heartbeat", async () => {
    const b = await node(16, "b", { heartbeatBatches: false });
    const got: number[] = [];
    b.t.start((_m, group) => got.push(group));
    const a = await dialler(16, b.port);
    for (let g = 0; g < 16; g++) a.send([beat(g + 1)], g);
    await until(() => got.length === 16);
    assert.deepEqual(
      got.sort((x, y) => x - y),
      Array.from({ length: 16 }, (_, g) => g),
    );
    assert.equal(a.heartbeatBatchesSent, 0);
    assert.equal(b.t.rejected, 0);
    // And such a node cuts a peer that sends one anyway, delivering nothing of it.
    const r = await stream(b.port, [encodeHeartbeatBatch("a", "b", [{ group: 1, message: beat(1) }])]);
    assert.equal(r.closed, true);
    assert.equal(got.length, 16);
    await a.close();
    await b.t.close();
  });

  it("cuts a peer whose batch names a group the node lacks or another sender, delivering none of the batch", async () => {
    const b = await node(4);
    const got: number[] = [];
    b.t.start((_m, group) => got.push(group));
    const badGroup = encodeHeartbeatBatch("a", "b", [
      { group: 1, message: beat(1) },
      { group: 9, message: beat(1) },
    ]);
    assert.equal((await stream(b.port, [badGroup])).closed, true);
    const other = { ...beat(1), from: "x" };
    const forged = encodeHeartbeatBatch("x", "b", [{ group: 1, message: other }]);
    assert.equal((await stream(b.port, [forged])).closed, true);
    assert.deepEqual(got, []);
    assert.equal(b.t.rejected, 2);
    await b.t.close();
  });

  it("only group 0's view sets the peers; a view's close leaves the shared streams alone", async () => {
    const { t } = await node(3);
    const mux = new GroupTransports(t, 3);
    mux.view(2).setPeers(new Map([["x", "http://127.0.0.1:1"]]));
    assert.deepEqual(t.status(), []);
    mux.view(0).setPeers(new Map([["a", "http://127.0.0.1:1"]]));
    assert.deepEqual(
      t.status().map((s) => s.id),
      ["a"],
    );
    await mux.view(0).close();
    assert.deepEqual(
      mux
        .view(1)
        .status()
        .map((s) => s.id),
      ["a"],
    );
    assert.throws(() => mux.view(3), RangeError);
    await t.close();
  });
});
