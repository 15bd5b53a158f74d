/**
 * The peer codec's extensions: a snapshot's configuration with member URLs and learners to
 * promote, and the follower read-lease fields, survive the wire; a message without them is
 * encoded as before; a malformed extension is refused as a protocol error.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Configuration, Message } from "../../src/raft/types.js";
import {
  batchable,
  CodecError,
  decodeGroupMessage,
  decodeHeartbeatBatch,
  decodeMessage,
  encodeFramedMessage,
  encodeHeartbeatBatch,
  encodeMessage,
  isHeartbeatBatch,
} from "../../src/transport/codec.js";
import { FrameReader, frame } from "../../src/transport/frames.js";

function snapshotMessage(config: Configuration): Message {
  return {
    type: "snapshot",
    from: "a",
    to: "b",
    term: 3,
    snapshot: {
      metadata: { index: 10, term: 2, config },
      offset: 0,
      totalBytes: 3,
      data: new Uint8Array([1, 2, 3]),
      done: true,
    },
  };
}

describe("peer codec: configurations in snapshots", () => {
  it("carries member URLs and learners to promote", () => {
    const config = {
      voters: ["a", "b"],
      learners: ["l"],
      urls: { a: "http://a:1", l: "https://l:2" },
      promote: ["l"],
    };
    const back = decodeMessage(encodeMessage(snapshotMessage(config)));
    assert.deepEqual(back.snapshot!.metadata.config, config);
    assert.deepEqual([...back.snapshot!.data], [1, 2, 3]);
  });

  it("encodes a configuration without them exactly as before (older peers still read it)", () => {
    const bytes = encodeMessage(snapshotMessage({ voters: ["a"], learners: [] }));
    const flags = bytes[2]! | (bytes[3]! << 8);
    assert.equal(flags & (1 << 12), 0);
    assert.deepEqual(decodeMessage(bytes).snapshot!.metadata.config, { voters: ["a"], learners: [] });
  });

  it("refuses a malformed extension", () => {
    const good = encodeMessage(snapshotMessage({ voters: ["a"], learners: [], urls: { a: "http://a" } }));
    // The extension is the last blob: its JSON text ends the message. Break the JSON.
    const bad = new Uint8Array(good);
    bad[bad.length - 1] = 0x20; // '}' → ' '
    assert.throws(() => decodeMessage(bad), CodecError);
    // URLs that are not strings.
    const text = new TextDecoder().decode(good);
    const at = text.lastIndexOf('"http://a"');
    const wrong = new Uint8Array(good);
    wrong.set(new TextEncoder().encode("12345678.0"), at);
    assert.throws(() => decodeMessage(wrong), CodecError);
  });
});

describe("peer codec: follower read-lease fields", () => {
  const heartbeat: Message = { type: "heartbeat", from: "a", to: "b", term: 4, commit: 9, sentTick: 120 };

  it("carries a grant, an offer and a clock reading", () => {
    const grant: Message = {
      ...heartbeat,
      leaseTicks: 7,
      leaseClock: 118,
      leaseNonce: 2 ** 53 - 1,
      leaseCommit: 9,
    };
    assert.deepEqual(decodeMessage(encodeMessage(grant)), grant);
    const offer: Message = { ...heartbeat, leaseTicks: 0 };
    assert.deepEqual(decodeMessage(encodeMessage(offer)), offer);
    const reading: Message = {
      type: "appendResp",
      from: "b",
      to: "a",
      term: 4,
      index: 12,
      reject: true,
      rejectHint: 3,
      logTerm: 2,
      sentTick: 120,
      leaseClock: 0,
      leaseNonce: 77,
    };
    assert.deepEqual(decodeMessage(encodeMessage(reading)), reading);
    const append: Message = {
      type: "append",
      from: "a",
      to: "b",
      term: 4,
      index: 1,
      logTerm: 1,
      entries: [{ index: 2, term: 4, type: "normal", data: new Uint8Array([5]) }],
      commit: 1,
      sentTick: 3,
      leaseTicks: 5,
      leaseClock: 1,
      leaseNonce: 6,
      leaseCommit: 1,
    };
    assert.deepEqual(decodeMessage(encodeMessage(append)), append);
  });

  it("encodes a message without them exactly as before (older peers still read it)", () => {
    const bytes = encodeMessage(heartbeat);
    const flags = bytes[2]! | (bytes[3]! << 8);
    assert.equal(flags & ~((1 << 13) - 1), 0, "no flag a peer from before follower read leases would refuse");
    assert.equal(bytes.length, encodeMessage({ ...heartbeat }).length);
    const withLease = encodeMessage({ ...heartbeat, leaseTicks: 0 });
    assert.equal(withLease.length, bytes.length + 1 + 8, "one sub-flag byte and one number");
    assert.deepEqual(
      withLease.subarray(4, bytes.length),
      bytes.subarray(4),
      "the other fields are unchanged",
    );
  });

  it("carries a partition's group: absent for group 0 (byte for byte as before), a u16 otherwise", () => {
    assert.deepEqual(encodeMessage(heartbeat, 0), encodeMessage(heartbeat));
    const tagged = encodeMessage(heartbeat, 513);
    assert.equal(tagged.length, encodeMessage(heartbeat).length + 2);
    assert.deepEqual(decodeGroupMessage(tagged), { group: 513, message: heartbeat });
    assert.deepEqual(decodeGroupMessage(encodeMessage(heartbeat)), { group: 0, message: heartbeat });
    // A one-group decoder never takes another group's message for its own.
    assert.throws(() => decodeMessage(tagged), /group 513 where only group 0 exists/);
    // Group 0 is never named explicitly; a cut-off group field is refused.
    const zero = new Uint8Array(tagged);
    zero[zero.length - 2] = 0;
    zero[zero.length - 1] = 0;
    assert.throws(() => decodeGroupMessage(zero), CodecError);
    assert.throws(() => decodeGroupMessage(tagged.subarray(0, tagged.length - 1)), CodecError);
    for (const bad of [-1, 65536, 1.5]) assert.throws(() => encodeMessage(heartbeat, bad), RangeError);
  });

  it("refuses unknown or empty lease sub-fields, and values that are not non-negative integers", () => {
    const good = encodeMessage({ ...heartbeat, leaseTicks: 3 });
    const at = good.length - 9; // the sub-flag byte, then leaseTicks
    const unknown = new Uint8Array(good);
    unknown[at] = 1 | (1 << 6);
    assert.throws(() => decodeMessage(unknown), CodecError);
    const empty = new Uint8Array(good.subarray(0, at + 1));
    empty[at] = 0;
    assert.throws(() => decodeMessage(empty), CodecError);
    assert.throws(() => decodeMessage(encodeMessage({ ...heartbeat, leaseTicks: -1 })), CodecError);
    assert.throws(() => decodeMessage(encodeMessage({ ...heartbeat, leaseClock: 1.5 })), CodecError);
    assert.throws(() => decodeMessage(good.subarray(0, good.length - 1)), CodecError);
  });
});

describe("peer codec: framing in place", () => {
  const entries = Array.from({ length: 40 }, (_, i) => ({
    term: 2,
    index: 10 + i,
    type: "normal" as const,
    data: new TextEncoder().encode(`{"op":"put","key":"k${i}","value":"${"v".repeat(i * 7)}"}`),
  }));
  const messages: Message[] = [
    { type: "heartbeat", from: "n1", to: "n2", term: 4, commit: 9 },
    { type: "append", from: "n1", to: "node-ü", term: 4, logTerm: 2, index: 9, commit: 9, entries },
    snapshotMessage({ voters: ["a"], learners: [], urls: { a: "http://a" } }),
  ];

  it("writes the same bytes as framing an encoded message (ASCII and non-ASCII ids, entries, snapshots)", () => {
    for (const m of messages) {
      const framed = encodeFramedMessage(m);
      const plain = encodeMessage(m);
      assert.deepEqual(framed, frame(plain));
      const [back] = new FrameReader().push(framed);
      assert.deepEqual(decodeMessage(back!), decodeMessage(plain));
    }
  });

  it("still refuses an id longer than the limit", () => {
    assert.throws(() => encodeFramedMessage({ type: "heartbeat", from: "x".repeat(300), to: "b", term: 1 }));
    assert.throws(() => encodeFramedMessage({ type: "heartbeat", from: "é".repeat(200), to: "b", term: 1 }));
  });
});

describe("heartbeat batches", () => {
  const batch: { group: number; message: Message }[] = [
    {
      group: 0,
      message: { type: "heartbeat", from: "a", to: "b", term: 3, commit: 7, sentTick: 120, readSeq: 4 },
    },
    { group: 65535, message: { type: "heartbeat", from: "a", to: "b", term: 9, commit: 0, force: true } },
    { group: 12, message: { type: "heartbeatResp", from: "a", to: "b", term: 2, sentTick: 5 } },
  ];

  it("carry every heartbeat and answer of any group, field for field, in one frame", () => {
    const f = encodeHeartbeatBatch("a", "b", batch);
    const frames = new FrameReader().push(f);
    assert.equal(frames.length, 1);
    assert.ok(isHeartbeatBatch(frames[0]!));
    assert.ok(!isHeartbeatBatch(encodeMessage(batch[0]!.message)));
    assert.deepEqual(decodeHeartbeatBatch(frames[0]!), batch);
    // Fewer bytes than one frame per heartbeat.
    const single = batch.reduce((n, b) => n + encodeFramedMessage(b.message, b.group).byteLength, 0);
    assert.ok(f.byteLength < single, `${f.byteLength} < ${single}`);
  });

  it("take plain heartbeats only: lease fields, appends and the like travel alone", () => {
    assert.ok(batchable(batch[0]!.message));
    assert.ok(!batchable({ ...batch[0]!.message, leaseTicks: 0 }));
    assert.ok(!batchable({ type: "append", from: "a", to: "b", term: 1 }));
    assert.ok(!batchable({ type: "heartbeatResp", from: "a", to: "b", term: 1, leaseClock: 3 }));
    assert.throws(() =>
      encodeHeartbeatBatch("a", "b", [{ group: 1, message: { type: "vote", from: "a", to: "b", term: 1 } }]),
    );
    assert.throws(() => encodeHeartbeatBatch("a", "c", batch), "every message must be between the two nodes");
  });

  it("refuse a batch cut short at any byte, trailing bytes, unknown kinds and fields, and a count it cannot hold", () => {
    const f = new FrameReader().push(encodeHeartbeatBatch("a", "b", batch))[0]!;
    for (let cut = 0; cut < f.byteLength; cut++) {
      assert.throws(() => decodeHeartbeatBatch(f.subarray(0, cut)), CodecError, `cut at ${cut}`);
    }
    assert.throws(() => decodeHeartbeatBatch(new Uint8Array([...f, 0])), CodecError);
    const at = (mutate: (b: Uint8Array, dv: DataView) => void) => {
      const b = f.slice();
      mutate(b, new DataView(b.buffer));
      return () => decodeHeartbeatBatch(b);
    };
    const head = 4 + 3 + 3; // version, type and flags; then "a" and "b" (u16 length + 1 byte each)
    assert.throws(
      at((b) => (b[2] = 1)),
      CodecError,
      "reserved flags",
    );
    assert.throws(
      at((_b, dv) => dv.setUint32(head, 1e6, true)),
      CodecError,
      "a count beyond the frame",
    );
    assert.throws(
      at((_b, dv) => dv.setUint32(head, 0, true)),
      CodecError,
      "an empty batch",
    );
    assert.throws(
      at((b) => (b[head + 4] = 2)),
      CodecError,
      "kind",
    );
    assert.throws(
      at((b) => (b[head + 4 + 3] = 0x10)),
      CodecError,
      "fields",
    );
    assert.throws(
      at((_b, dv) => dv.setFloat64(head + 4 + 4, -1, true)),
      CodecError,
      "a negative term",
    );
  });
});
