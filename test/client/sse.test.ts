/**
 * The server-sent-events parser: any chunking of the same text gives the same events (also a CRLF
 * split between chunks and multi-byte UTF-8 split between reads), CR/LF/CRLF line ends, comments,
 * multi-line data, ids that persist, and the line and event limits.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readSse, type SseItem, SseLimitError, SseParser } from "../../src/client/sse.js";

const STREAM = [
  ": hello",
  "",
  "id: 1",
  "event: put",
  'data: {"a":1}',
  "",
  "data: line one",
  "data: line two",
  "data",
  "data:no space",
  "data:  two spaces",
  "",
  "id: 7",
  "",
  "event: delete",
  "unknown: field",
  "data: x",
  "",
  "retry: 1500",
  ":",
  "",
].join("\n");

function parseAll(chunks: string[]): SseItem[] {
  const p = new SseParser();
  const out: SseItem[] = [];
  for (const c of chunks) out.push(...p.push(c));
  p.end();
  return out;
}

describe("SseParser", () => {
  const expected: SseItem[] = [
    { kind: "comment", text: "hello" },
    { kind: "event", id: "1", event: "put", data: '{"a":1}' },
    { kind: "event", id: "1", event: "message", data: "line one\nline two\n\nno space\n two spaces" },
    { kind: "event", id: "7", event: "delete", data: "x" },
    { kind: "comment", text: "" },
  ];

  it("parses ids, event types, multi-line data and comments", () => {
    assert.deepEqual(parseAll([STREAM]), expected);
  });

  it("gives the same items for every split into two chunks and for one character at a time", () => {
    for (let i = 0; i <= STREAM.length; i++) {
      assert.deepEqual(parseAll([STREAM.slice(0, i), STREAM.slice(i)]), expected, `split at ${i}`);
    }
    assert.deepEqual(parseAll([...STREAM]), expected);
  });

  it("accepts CRLF and CR line ends, also with a CRLF split between chunks", () => {
    const crlf = STREAM.replace(/\n/g, "\r\n");
    const cr = STREAM.replace(/\n/g, "\r");
    assert.deepEqual(parseAll([crlf]), expected);
    assert.deepEqual(parseAll([cr]), expected);
    for (let i = 0; i <= crlf.length; i++) {
      assert.deepEqual(parseAll([crlf.slice(0, i), crlf.slice(i)]), expected, `CRLF split at ${i}`);
    }
    // "data: a\r" + "\ndata: b": the LF ends the same line, it is not a blank line that dispatches "a".
    assert.deepEqual(parseAll(["data: a\r", "\ndata: b\r\n\r\n"]), [
      { kind: "event", id: undefined, event: "message", data: "a\nb" },
    ]);
  });

  it("drops a byte-order mark, an unterminated event at the end, and events without data", () => {
    assert.deepEqual(parseAll(["\ufeffdata: a\n\n", "event: x\n\n", "data: cut"]), [
      { kind: "event", id: undefined, event: "message", data: "a" },
    ]);
  });

  it("ignores an id with NUL, keeps the last valid one", () => {
    assert.deepEqual(parseAll(["id: 5\ndata: a\n\nid: 6\0\ndata: b\n\n"]), [
      { kind: "event", id: "5", event: "message", data: "a" },
      { kind: "event", id: "5", event: "message", data: "b" },
    ]);
  });

  it("records retry", () => {
    const p = new SseParser();
    p.push("retry: 2500\n\n");
    assert.equal(p.retryMs, 2500);
  });

  it("refuses a line or an event over its limit, also when it arrives in pieces", () => {
    const p = new SseParser({ maxLineLength: 10 });
    assert.throws(() => p.push(`data: ${"x".repeat(20)}\n`), SseLimitError);
    const q = new SseParser({ maxLineLength: 10 });
    q.push("data: xxx");
    assert.throws(() => q.push("xxxxxxxxxx"), SseLimitError);
    const r = new SseParser({ maxEventLength: 10 });
    r.push("data: 12345\n");
    assert.throws(() => r.push("data: 67890\n"), SseLimitError);
    // Within the limit, lines are fine however many events there are.
    const s = new SseParser({ maxLineLength: 10, maxEventLength: 10 });
    for (let i = 0; i < 100; i++) assert.equal(s.push("data: 1\n\n").length, 1);
  });
});

describe("readSse", () => {
  it("decodes UTF-8 split between reads and yields the events of a ReadableStream", async () => {
    const bytes = new TextEncoder().encode('id: 1\ndata: {"v":"héllo €"}\n\n: ping\n\n');
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        // One byte at a time splits every multi-byte character.
        for (const b of bytes) c.enqueue(new Uint8Array([b]));
        c.close();
      },
    });
    const items: SseItem[] = [];
    for await (const it of readSse(stream)) items.push(it);
    assert.deepEqual(items, [
      { kind: "event", id: "1", event: "message", data: '{"v":"héllo €"}' },
      { kind: "comment", text: "ping" },
    ]);
  });

  it("cancels the stream when the consumer stops early", async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("data: 1\n\ndata: 2\n\n"));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const it of readSse(stream)) {
      assert.equal(it.kind, "event");
      break;
    }
    assert.equal(cancelled, true);
  });
});
