/**
 * The binary form of peer messages: one message per frame, every field checked on the way in so a
 * peer that speaks garbage is refused, never believed. Owns bytes only; must never open sockets.
 *
 * Layout (little-endian): u8 version, u8 type, u16 presence bits, from and to (u16 length + UTF-8),
 * f64 term, then each present field in a fixed order. Integers travel as f64 and must come back as
 * safe non-negative integers; byte payloads as u32 length + bytes. Optional groups added later
 * (F_CONFIGX, F_LEASE) are present only when their fields are used, so a peer that predates them
 * reads every message that does not use them exactly as before. F_GROUP (a u16 after everything
 * else) names the Raft group of a partitioned node's message; group 0 travels without it. A
 * heartbeat batch (see HEARTBEATS below) carries many groups' plain heartbeats in one message.
 */
import {
  type Configuration,
  checkConfig,
  type Entry,
  type Message,
  type MessageType,
  plainConfig,
  type SnapshotChunk,
  type SnapshotMetadata,
} from "../raft/types.js";

export const CODEC_VERSION = 1;
/** No frame (one message) may be larger than this. */
export const MAX_FRAME_BYTES = 64 << 20;
const MAX_ID_BYTES = 256;

const TYPES: readonly MessageType[] = [
  "preVote",
  "preVoteResp",
  "vote",
  "voteResp",
  "append",
  "appendResp",
  "heartbeat",
  "heartbeatResp",
  "snapshot",
  "snapshotResp",
  "timeoutNow",
  "readIndex",
  "readIndexResp",
];
const TYPE_CODE = new Map(TYPES.map((t, i) => [t, i]));

const F_LOGTERM = 1 << 0;
const F_INDEX = 1 << 1;
const F_ENTRIES = 1 << 2;
const F_COMMIT = 1 << 3;
const F_REJECT = 1 << 4;
const F_REJECTHINT = 1 << 5;
const F_SENTTICK = 1 << 6;
const F_READSEQ = 1 << 7;
const F_REQUESTID = 1 << 8;
const F_SNAPSHOT = 1 << 9;
const F_OFFSET = 1 << 10;
const F_FORCE = 1 << 11;
/** The snapshot's configuration also has member URLs or learners to promote (a JSON blob after the data). */
const F_CONFIGX = 1 << 12;
/**
 * Follower read-lease fields (sent only by a leader running with follower read leases, and in the
 * answers to it): a u8 of sub-flags, then each field it names, in this order. One presence bit for
 * the group keeps the two bits left free for later.
 */
const F_LEASE = 1 << 13;
/** The message belongs to Raft group (partition) 1..65535 of its nodes; absent: group 0. */
const F_GROUP = 1 << 14;
const KNOWN_FLAGS = (1 << 15) - 1;
/** Highest group a message may name. */
export const MAX_GROUP = 0xffff;
const L_TICKS = 1 << 0;
const L_CLOCK = 1 << 1;
const L_NONCE = 1 << 2;
const L_COMMIT = 1 << 3;
const KNOWN_LEASE_FLAGS = (1 << 4) - 1;

/** A peer sent bytes that are not a valid message. */
export class CodecError extends Error {
  readonly code = "BALLOT_ERR_PEER_PROTOCOL";
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

class Writer {
  buf: Uint8Array;
  dv: DataView;
  at = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.dv = new DataView(this.buf.buffer);
  }
  ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.at + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.at));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.at++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.dv.setUint16(this.at, v, true);
    this.at += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.at, v, true);
    this.at += 4;
  }
  num(v: number): void {
    this.ensure(8);
    this.dv.setFloat64(this.at, v, true);
    this.at += 8;
  }
  str(s: string): void {
    // Ids are short ASCII (checkMemberId): written in place, as every message carries two.
    if (s.length <= MAX_ID_BYTES) {
      this.ensure(2 + s.length);
      let ascii = true;
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          ascii = false;
          break;
        }
        this.buf[this.at + 2 + i] = c;
      }
      if (ascii) {
        this.u16(s.length);
        this.at += s.length;
        return;
      }
    }
    const b = enc.encode(s);
    if (b.length > MAX_ID_BYTES) throw new RangeError(`id longer than ${MAX_ID_BYTES} bytes`);
    this.u16(b.length);
    this.bytes(b);
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }
  blob(b: Uint8Array): void {
    this.u32(b.length);
    this.bytes(b);
  }
}

class Reader {
  private readonly dv: DataView;
  at = 0;
  constructor(private readonly buf: Uint8Array) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  need(n: number): void {
    if (this.at + n > this.buf.length) throw new CodecError("message ends early");
  }
  u8(): number {
    this.need(1);
    return this.buf[this.at++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.dv.getUint16(this.at, true);
    this.at += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.at, true);
    this.at += 4;
    return v;
  }
  int(what: string): number {
    this.need(8);
    const v = this.dv.getFloat64(this.at, true);
    this.at += 8;
    if (!Number.isSafeInteger(v) || v < 0) throw new CodecError(`${what} is not a non-negative integer`);
    return v;
  }
  str(what: string): string {
    const n = this.u16();
    if (n > MAX_ID_BYTES) throw new CodecError(`${what} is too long`);
    this.need(n);
    const from = this.at;
    this.at += n;
    try {
      return dec.decode(this.buf.subarray(from, this.at));
    } catch {
      throw new CodecError(`${what} is not UTF-8`);
    }
  }
  blob(): Uint8Array {
    const n = this.u32();
    this.need(n);
    // Copied: the frame buffer is reused by the stream reader.
    const from = this.at;
    this.at += n;
    return this.buf.slice(from, this.at);
  }
  done(): boolean {
    return this.at === this.buf.length;
  }
}

function writeConfig(w: Writer, c: Configuration): void {
  w.u16(c.voters.length);
  for (const v of c.voters) w.str(v);
  w.u16(c.learners.length);
  for (const l of c.learners) w.str(l);
}

function readConfig(r: Reader): Configuration {
  const voters: string[] = [];
  for (let n = r.u16(); n > 0; n--) voters.push(r.str("voter id"));
  const learners: string[] = [];
  for (let n = r.u16(); n > 0; n--) learners.push(r.str("learner id"));
  return { voters, learners };
}

/** Encodes a message into a new buffer. */
export function encodeMessage(m: Message, group = 0): Uint8Array {
  return encodeInto(m, 0, group);
}

/**
 * The message as one length-prefixed frame ([u32 length][message], see frames.ts), encoded in
 * place: framing after encoding would copy every entry a second time on the replication path.
 */
export function encodeFramedMessage(m: Message, group = 0): Uint8Array {
  const out = encodeInto(m, 4, group);
  new DataView(out.buffer, out.byteOffset, 4).setUint32(0, out.byteLength - 4, true);
  return out;
}

function encodeInto(m: Message, reserve: number, group: number): Uint8Array {
  if (!Number.isInteger(group) || group < 0 || group > MAX_GROUP) throw new RangeError(`bad group ${group}`);
  let size = 66 + reserve;
  for (const e of m.entries ?? []) size += 21 + e.data.byteLength;
  if (m.snapshot) size += 64 + m.snapshot.data.byteLength;
  const cfg = m.snapshot?.metadata.config;
  const configx =
    cfg &&
    ((cfg.urls && Object.keys(cfg.urls).length > 0) ||
      (cfg.promote && cfg.promote.length > 0) ||
      (cfg.removed && cfg.removed.length > 0))
      ? enc.encode(
          JSON.stringify({ urls: cfg.urls ?? {}, promote: cfg.promote ?? [], removed: cfg.removed ?? [] }),
        )
      : null;
  if (configx) size += configx.byteLength + 8;
  const w = new Writer(size);
  w.at = reserve;
  let flags = 0;
  if (m.logTerm !== undefined) flags |= F_LOGTERM;
  if (m.index !== undefined) flags |= F_INDEX;
  if (m.entries !== undefined) flags |= F_ENTRIES;
  if (m.commit !== undefined) flags |= F_COMMIT;
  if (m.reject) flags |= F_REJECT;
  if (m.rejectHint !== undefined) flags |= F_REJECTHINT;
  if (m.sentTick !== undefined) flags |= F_SENTTICK;
  if (m.readSeq !== undefined) flags |= F_READSEQ;
  if (m.requestId !== undefined) flags |= F_REQUESTID;
  if (m.snapshot !== undefined) flags |= F_SNAPSHOT;
  if (m.offset !== undefined) flags |= F_OFFSET;
  if (m.force) flags |= F_FORCE;
  if (configx) flags |= F_CONFIGX;
  let lease = 0;
  if (m.leaseTicks !== undefined) lease |= L_TICKS;
  if (m.leaseClock !== undefined) lease |= L_CLOCK;
  if (m.leaseNonce !== undefined) lease |= L_NONCE;
  if (m.leaseCommit !== undefined) lease |= L_COMMIT;
  if (lease !== 0) flags |= F_LEASE;
  if (group > 0) flags |= F_GROUP;
  w.u8(CODEC_VERSION);
  w.u8(TYPE_CODE.get(m.type)!);
  w.u16(flags);
  w.str(m.from);
  w.str(m.to);
  w.num(m.term);
  if (flags & F_LOGTERM) w.num(m.logTerm!);
  if (flags & F_INDEX) w.num(m.index!);
  if (flags & F_ENTRIES) {
    w.u32(m.entries!.length);
    for (const e of m.entries!) {
      w.u8(e.type === "config" ? 1 : 0);
      w.num(e.term);
      w.num(e.index);
      w.blob(e.data);
    }
  }
  if (flags & F_COMMIT) w.num(m.commit!);
  if (flags & F_REJECTHINT) w.num(m.rejectHint!);
  if (flags & F_SENTTICK) w.num(m.sentTick!);
  if (flags & F_READSEQ) w.num(m.readSeq!);
  if (flags & F_REQUESTID) w.num(m.requestId!);
  if (flags & F_SNAPSHOT) {
    const s = m.snapshot!;
    w.num(s.metadata.index);
    w.num(s.metadata.term);
    writeConfig(w, s.metadata.config);
    w.num(s.offset);
    w.num(s.totalBytes);
    w.u8(s.done ? 1 : 0);
    w.blob(s.data);
    if (configx) w.blob(configx);
  }
  if (flags & F_OFFSET) w.num(m.offset!);
  if (flags & F_LEASE) {
    w.u8(lease);
    if (lease & L_TICKS) w.num(m.leaseTicks!);
    if (lease & L_CLOCK) w.num(m.leaseClock!);
    if (lease & L_NONCE) w.num(m.leaseNonce!);
    if (lease & L_COMMIT) w.num(m.leaseCommit!);
  }
  if (flags & F_GROUP) w.u16(group);
  return w.buf.subarray(0, w.at);
}

/** Decodes and validates one message of group 0; throws CodecError for anything malformed. */
export function decodeMessage(buf: Uint8Array): Message {
  const { group, message } = decodeGroupMessage(buf);
  if (group !== 0) throw new CodecError(`a message of group ${group} where only group 0 exists`);
  return message;
}

/** Decodes and validates one message and the group it belongs to; throws CodecError for anything malformed. */
export function decodeGroupMessage(buf: Uint8Array): { group: number; message: Message } {
  const r = new Reader(buf);
  const version = r.u8();
  if (version !== CODEC_VERSION) throw new CodecError(`unsupported message version ${version}`);
  const type = TYPES[r.u8()];
  if (!type) throw new CodecError("unknown message type");
  const flags = r.u16();
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new CodecError("unknown message fields");
  const m: {
    -readonly [K in keyof Message]: Message[K];
  } = { type, from: r.str("from"), to: r.str("to"), term: r.int("term") };
  if (flags & F_LOGTERM) m.logTerm = r.int("logTerm");
  if (flags & F_INDEX) m.index = r.int("index");
  if (flags & F_ENTRIES) {
    const n = r.u32();
    if (n > buf.length) throw new CodecError("entry count exceeds the message");
    const entries: Entry[] = [];
    for (let i = 0; i < n; i++) {
      const t = r.u8();
      if (t > 1) throw new CodecError("unknown entry type");
      const term = r.int("entry term");
      const index = r.int("entry index");
      entries.push({ type: t === 1 ? "config" : "normal", term, index, data: r.blob() });
    }
    m.entries = entries;
  }
  if (flags & F_COMMIT) m.commit = r.int("commit");
  if (flags & F_REJECT) m.reject = true;
  if (flags & F_REJECTHINT) m.rejectHint = r.int("rejectHint");
  if (flags & F_SENTTICK) m.sentTick = r.int("sentTick");
  if (flags & F_READSEQ) m.readSeq = r.int("readSeq");
  if (flags & F_REQUESTID) m.requestId = r.int("requestId");
  if (flags & F_SNAPSHOT) {
    const index = r.int("snapshot index");
    const term = r.int("snapshot term");
    let config = readConfig(r);
    const offset = r.int("snapshot offset");
    const totalBytes = r.int("snapshot size");
    const done = r.u8();
    if (done > 1) throw new CodecError("bad snapshot flag");
    const data = r.blob();
    if (flags & F_CONFIGX) {
      try {
        const x = JSON.parse(dec.decode(r.blob())) as {
          urls?: unknown;
          promote?: unknown;
          removed?: unknown;
        };
        config = plainConfig(
          checkConfig(
            { ...config, urls: x.urls, promote: x.promote, removed: x.removed },
            "snapshot configuration",
          ),
        );
      } catch (e) {
        throw new CodecError((e as Error).message);
      }
    }
    const metadata: SnapshotMetadata = { index, term, config };
    if (offset + data.byteLength > totalBytes) throw new CodecError("snapshot chunk beyond its total size");
    const chunk: SnapshotChunk = { metadata, offset, totalBytes, data, done: done === 1 };
    m.snapshot = chunk;
  }
  if (flags & F_CONFIGX && !(flags & F_SNAPSHOT))
    throw new CodecError("configuration extension without a snapshot");
  if (flags & F_OFFSET) m.offset = r.int("offset");
  if (flags & F_FORCE) m.force = true;
  if (flags & F_LEASE) {
    const lease = r.u8();
    if (lease === 0 || (lease & ~KNOWN_LEASE_FLAGS) !== 0) throw new CodecError("unknown lease fields");
    if (lease & L_TICKS) m.leaseTicks = r.int("leaseTicks");
    if (lease & L_CLOCK) m.leaseClock = r.int("leaseClock");
    if (lease & L_NONCE) m.leaseNonce = r.int("leaseNonce");
    if (lease & L_COMMIT) m.leaseCommit = r.int("leaseCommit");
  }
  let group = 0;
  if (flags & F_GROUP) {
    group = r.u16();
    if (group === 0) throw new CodecError("group 0 is never named");
  }
  if (!r.done()) throw new CodecError("trailing bytes after the message");
  return { group, message: m };
}

// ---------------------------------------------------------------- coalesced heartbeats

/**
 * The type code of a heartbeat batch: every plain heartbeat (or answer) a node has for one peer in
 * one turn, of any number of groups, in one message (CockroachDB's coalesced heartbeats). Sent
 * only to a peer that said it reads them (X-Ballot-Batches on its answer to our stream): a peer
 * that predates them refuses the code as an unknown message type.
 *
 * Layout after the common head (u8 version, u8 this code, u16 flags = 0, from, to): u32 count,
 * then per message: u8 kind (0 heartbeat, 1 heartbeatResp), u16 group, u8 fields (commit,
 * sentTick, readSeq, force), f64 term, then each present field as f64.
 */
const HEARTBEATS = 200;
const H_COMMIT = 1 << 0;
const H_SENTTICK = 1 << 1;
const H_READSEQ = 1 << 2;
const H_FORCE = 1 << 3;
const KNOWN_H_FIELDS = (1 << 4) - 1;
/** The smallest a batched heartbeat can be: kind, group, fields, term. */
const MIN_BATCHED = 1 + 2 + 1 + 8;

/**
 * Whether `m` can travel in a heartbeat batch: a heartbeat or its answer carrying nothing but the
 * fields the batch has (follower read-lease fields, for one, travel alone).
 */
export function batchable(m: Message): boolean {
  return (
    (m.type === "heartbeat" || m.type === "heartbeatResp") &&
    m.logTerm === undefined &&
    m.index === undefined &&
    m.entries === undefined &&
    !m.reject &&
    m.rejectHint === undefined &&
    m.requestId === undefined &&
    m.snapshot === undefined &&
    m.offset === undefined &&
    m.leaseTicks === undefined &&
    m.leaseClock === undefined &&
    m.leaseNonce === undefined &&
    m.leaseCommit === undefined
  );
}

/** One length-prefixed frame holding `batch` (all from `from` to `to`, each batchable()). */
export function encodeHeartbeatBatch(
  from: string,
  to: string,
  batch: readonly { group: number; message: Message }[],
): Uint8Array {
  const w = new Writer(4 + 16 + 2 * MAX_ID_BYTES + batch.length * (MIN_BATCHED + 24));
  w.at = 4;
  w.u8(CODEC_VERSION);
  w.u8(HEARTBEATS);
  w.u16(0);
  w.str(from);
  w.str(to);
  w.u32(batch.length);
  for (const { group, message: m } of batch) {
    if (!batchable(m) || m.from !== from || m.to !== to) throw new RangeError(`not batchable: ${m.type}`);
    if (!Number.isInteger(group) || group < 0 || group > MAX_GROUP)
      throw new RangeError(`bad group ${group}`);
    let fields = 0;
    if (m.commit !== undefined) fields |= H_COMMIT;
    if (m.sentTick !== undefined) fields |= H_SENTTICK;
    if (m.readSeq !== undefined) fields |= H_READSEQ;
    if (m.force) fields |= H_FORCE;
    w.u8(m.type === "heartbeat" ? 0 : 1);
    w.u16(group);
    w.u8(fields);
    w.num(m.term);
    if (fields & H_COMMIT) w.num(m.commit!);
    if (fields & H_SENTTICK) w.num(m.sentTick!);
    if (fields & H_READSEQ) w.num(m.readSeq!);
  }
  const out = w.buf.subarray(0, w.at);
  new DataView(out.buffer, out.byteOffset, 4).setUint32(0, out.byteLength - 4, true);
  return out;
}

/** Whether a frame's payload is a heartbeat batch (decode it with decodeHeartbeatBatch). */
export function isHeartbeatBatch(payload: Uint8Array): boolean {
  return payload.byteLength >= 2 && payload[0] === CODEC_VERSION && payload[1] === HEARTBEATS;
}

/** Decodes and validates a whole heartbeat batch; throws CodecError for anything malformed. */
export function decodeHeartbeatBatch(buf: Uint8Array): { group: number; message: Message }[] {
  const r = new Reader(buf);
  if (r.u8() !== CODEC_VERSION || r.u8() !== HEARTBEATS) throw new CodecError("not a heartbeat batch");
  if (r.u16() !== 0) throw new CodecError("unknown heartbeat batch fields");
  const from = r.str("from");
  const to = r.str("to");
  const n = r.u32();
  if (n === 0 || n * MIN_BATCHED > buf.byteLength - r.at) throw new CodecError("bad heartbeat batch count");
  const out: { group: number; message: Message }[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.u8();
    if (kind > 1) throw new CodecError("unknown batched message kind");
    const group = r.u16();
    const fields = r.u8();
    if ((fields & ~KNOWN_H_FIELDS) !== 0) throw new CodecError("unknown batched heartbeat fields");
    const m: { -readonly [K in keyof Message]: Message[K] } = {
      type: kind === 0 ? "heartbeat" : "heartbeatResp",
      from,
      to,
      term: r.int("term"),
    };
    if (fields & H_COMMIT) m.commit = r.int("commit");
    if (fields & H_SENTTICK) m.sentTick = r.int("sentTick");
    if (fields & H_READSEQ) m.readSeq = r.int("readSeq");
    if (fields & H_FORCE) m.force = true;
    out.push({ group, message: m });
  }
  if (!r.done()) throw new CodecError("trailing bytes after the heartbeat batch");
  return out;
}
