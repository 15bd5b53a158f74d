/**
 * A small server-sent-events parser (the WHATWG "event stream" format) for the client's watch and
 * observe streams: lines ending in LF, CRLF or CR (also when a CRLF is split between chunks),
 * `id`, `event`, `data` (multi-line), `retry` and comment lines. Owns framing only; must never
 * interpret event payloads, and never buffer without bound: a line or an event longer than its
 * limit is an error, so a broken or hostile server cannot make the client grow without limit.
 */

/** One dispatched event. */
export interface SseEvent {
  readonly kind: "event";
  /** The last event id seen on the stream (it persists across events, as the format says), or undefined. */
  readonly id: string | undefined;
  /** The event type; "message" when the server sent no `event:` field. */
  readonly event: string;
  /** The data lines joined with "\n". */
  readonly data: string;
}

/** A comment line (`: text`); servers send them as keepalives. */
export interface SseComment {
  readonly kind: "comment";
  readonly text: string;
}

export type SseItem = SseEvent | SseComment;

export interface SseLimits {
  /** Longest line accepted, in UTF-16 code units. Default 4 Mi (a 1 MiB value, escaped, fits). */
  readonly maxLineLength?: number;
  /** Largest event (its data lines together) accepted. Default 8 Mi. */
  readonly maxEventLength?: number;
}

/** Thrown when the stream breaks the format's limits; the connection should be dropped. */
export class SseLimitError extends Error {
  override readonly name = "SseLimitError";
}

const DEFAULT_MAX_LINE = 4 * 1024 * 1024;
const DEFAULT_MAX_EVENT = 8 * 1024 * 1024;

/**
 * Incremental parser: push() decoded text as it arrives, get back whatever it completed. Keeps
 * the state the format carries between events (the last event id, the reconnection time).
 */
export class SseParser {
  private buf = "";
  /** The previous chunk ended in CR: a LF at the start of the next one belongs to the same line end. */
  private skipLf = false;
  private started = false;
  private data: string[] = [];
  private dataLength = 0;
  private eventType = "";
  private lastId: string | undefined;
  /** The last `retry:` value (ms), if the server sent one. */
  retryMs: number | undefined;
  private readonly maxLine: number;
  private readonly maxEvent: number;

  constructor(limits: SseLimits = {}) {
    this.maxLine = limits.maxLineLength ?? DEFAULT_MAX_LINE;
    this.maxEvent = limits.maxEventLength ?? DEFAULT_MAX_EVENT;
  }

  /** The id of the last event seen (what a reconnect sends as Last-Event-ID). */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  /** Feeds decoded text; returns the items it completed, in order. */
  push(text: string): SseItem[] {
    if (!this.started && text.length > 0) {
      this.started = true;
      // A byte-order mark may open the stream and is not part of the first line.
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const out: SseItem[] = [];
    let i = 0;
    if (this.skipLf && text.length > 0) {
      this.skipLf = false;
      if (text.charCodeAt(0) === 10) i = 1;
    }
    while (i < text.length) {
      let j = i;
      while (j < text.length) {
        const c = text.charCodeAt(j);
        if (c === 10 || c === 13) break;
        j++;
      }
      if (j === text.length) {
        // No line end yet: keep the partial line, bounded.
        this.buf += text.slice(i);
        if (this.buf.length > this.maxLine) {
          throw new SseLimitError(`an event-stream line is longer than ${this.maxLine} characters`);
        }
        break;
      }
      const line = this.buf + text.slice(i, j);
      this.buf = "";
      if (line.length > this.maxLine) {
        throw new SseLimitError(`an event-stream line is longer than ${this.maxLine} characters`);
      }
      this.line(line, out);
      if (text.charCodeAt(j) === 13) {
        if (j + 1 < text.length) {
          i = text.charCodeAt(j + 1) === 10 ? j + 2 : j + 1;
        } else {
          this.skipLf = true;
          i = j + 1;
        }
      } else {
        i = j + 1;
      }
    }
    return out;
  }

  /**
   * The stream ended. A partial line and an event that was not closed by a blank line are
   * discarded, as the format requires: they may be cut off in the middle.
   */
  end(): void {
    this.buf = "";
    this.data = [];
    this.dataLength = 0;
    this.eventType = "";
    this.skipLf = false;
  }

  private line(line: string, out: SseItem[]): void {
    if (line.length === 0) {
      this.dispatch(out);
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) {
      out.push({ kind: "comment", text: line.slice(1).replace(/^ /, "") });
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case "data":
        this.dataLength += value.length + 1;
        if (this.dataLength > this.maxEvent) {
          throw new SseLimitError(`an event is larger than ${this.maxEvent} characters`);
        }
        this.data.push(value);
        break;
      case "event":
        this.eventType = value;
        break;
      case "id":
        // The format ignores ids containing NUL.
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        // Unknown fields are ignored, as the format requires.
        break;
    }
  }

  private dispatch(out: SseItem[]): void {
    const type = this.eventType;
    const data = this.data;
    this.eventType = "";
    this.data = [];
    this.dataLength = 0;
    // An event with no data lines is not dispatched (only its id is kept).
    if (data.length === 0) return;
    out.push({
      kind: "event",
      id: this.lastId,
      event: type === "" ? "message" : type,
      data: data.join("\n"),
    });
  }
}

/**
 * Reads a fetch body as server-sent events. Ends when the stream ends; throws when it errors
 * (including when the request's signal aborts) or breaks a limit.
 */
export async function* readSse(
  body: ReadableStream<Uint8Array>,
  limits: SseLimits = {},
): AsyncGenerator<SseItem, void, undefined> {
  const parser = new SseParser(limits);
  const decoder = new TextDecoder("utf-8");
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        const rest = decoder.decode();
        if (rest) yield* parser.push(rest);
        parser.end();
        return;
      }
      const items = parser.push(decoder.decode(value, { stream: true }));
      for (const item of items) yield item;
    }
  } finally {
    // Stop the transfer if the consumer left early; ignore errors of an already-failed stream.
    reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
