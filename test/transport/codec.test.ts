/**
 * The peer codec's configuration extension: a snapshot's configuration with member URLs and
 * learners to promote survives the wire, a plain one is encoded as before, and a malformed
 * extension is refused as a protocol error.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Configuration, Message } from "../../src/raft/types.js";
import { CodecError, decodeMessage, encodeMessage } from "../../src/transport/codec.js";

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
