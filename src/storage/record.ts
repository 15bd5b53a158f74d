/**
 * The on-disk record format of the write-ahead log, and the payloads it carries. Owns bytes only:
 * framing, checksums, and telling a torn tail from corruption. Must never touch files.
 *
 * Frame: [u32 payload length][u32 CRC32C of payload][u32 CRC32C of the previous 8 bytes] payload.
 * The header has its own checksum so a length is trusted before it is used: a record that runs
 * past the end of the file is then a torn write, never a length field that rotted.
 * Little-endian; indexes and terms are 48-bit (ample: 2^48 entries).
 */
import { crc32c } from "./crc32c.js";

export const FRAME_HEADER = 12;
/** No record is larger than this; a header claiming more is corruption. */
export const MAX_PAYLOAD = 256 << 20;

export const KIND_SEGMENT = 1;
export const KIND_ENTRY = 2;
export const KIND_HARDSTATE = 3;
export const KIND_RESET = 4;
export const KIND_COMPACT = 5;
/**
 * A shared WAL (several Raft groups in one log): [KIND_GROUP][u32 group] then one of the records
 * above, for that group. Group 0's records carry no tag, so a one-group data directory reads the
 * same either way.
 */
export const KIND_GROUP = 6;
export const GROUP_TAG = 5;
/** Highest group id a tag may carry (partition counts are far below this). */
export const MAX_GROUP = 0xffff;

const MAGIC = new TextEncoder().encode("BALLOTWAL");
export const WAL_VERSION = 1;

export type FrameResult =
  | { readonly kind: "ok"; readonly payload: Uint8Array; readonly next: number }
  | { readonly kind: "end" }
  /** The tail after `offset` is a write the crash cut short (or never made durable): safe to drop. */
  | { readonly kind: "torn"; readonly reason: string }
  /** Damage that no crash explains: refuse to go on. */
  | { readonly kind: "corrupt"; readonly reason: string };

/** Frames `payload` into `out` at `at`; returns the offset after it. */
export function writeFrame(out: Uint8Array, at: number, payload: Uint8Array): number {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  dv.setUint32(at, payload.byteLength, true);
  dv.setUint32(at + 4, crc32c(payload), true);
  dv.setUint32(at + 8, crc32c(out, 0, at, at + 8), true);
  out.set(payload, at + FRAME_HEADER);
  return at + FRAME_HEADER + payload.byteLength;
}

function zeroFrom(buf: Uint8Array, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * A crash can leave a file's tail as zeros (blocks allocated, data never written): they start on a
 * sector boundary and run to the end of the file. True when such a run starts inside the record
 * at [start, end). Only a record whose own bytes end in zeros across a sector boundary and that also
 * rotted could be mistaken for this — and only as the very last record of the log.
 */
function zeroTailWithin(buf: Uint8Array, start: number, end: number): boolean {
  let z = buf.length;
  while (z > start && buf[z - 1] === 0) z--;
  if (z === buf.length) return false;
  return z === start || Math.ceil(z / 512) * 512 < end;
}

/** Decodes the frame at `offset` of a whole segment's bytes. */
export function readFrame(buf: Uint8Array, offset: number): FrameResult {
  if (offset === buf.length) return { kind: "end" };
  if (buf.length - offset < FRAME_HEADER) {
    return zeroFrom(buf, offset)
      ? { kind: "torn", reason: "zero-filled tail" }
      : { kind: "torn", reason: "record header cut short by the end of the file" };
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const len = dv.getUint32(offset, true);
  const payloadCrc = dv.getUint32(offset + 4, true);
  const headerCrc = dv.getUint32(offset + 8, true);
  if (crc32c(buf, 0, offset, offset + 8) !== headerCrc) {
    if (zeroTailWithin(buf, offset, offset + FRAME_HEADER))
      return { kind: "torn", reason: "zero-filled tail" };
    return { kind: "corrupt", reason: "record header checksum mismatch" };
  }
  if (len > MAX_PAYLOAD) return { kind: "corrupt", reason: `record length ${len} exceeds the maximum` };
  const end = offset + FRAME_HEADER + len;
  if (end > buf.length) return { kind: "torn", reason: "record cut short by the end of the file" };
  if (crc32c(buf, 0, offset + FRAME_HEADER, end) !== payloadCrc) {
    if (zeroTailWithin(buf, offset, end))
      return { kind: "torn", reason: "record ends in a zero-filled tail" };
    return { kind: "corrupt", reason: "record checksum mismatch" };
  }
  return { kind: "ok", payload: buf.subarray(offset + FRAME_HEADER, end), next: end };
}

// ---------------------------------------------------------------- payloads

function put48(dv: DataView, at: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v >= 2 ** 48)
    throw new RangeError(`value ${v} does not fit in 48 bits`);
  dv.setUint32(at, v % 2 ** 32, true);
  dv.setUint16(at + 4, Math.floor(v / 2 ** 32), true);
}

function get48(dv: DataView, at: number): number {
  return dv.getUint32(at, true) + dv.getUint16(at + 4, true) * 2 ** 32;
}

export interface SegmentHeader {
  readonly seq: number;
  readonly firstIndex: number;
}

export function encodeSegmentHeader(h: SegmentHeader): Uint8Array {
  const out = new Uint8Array(1 + MAGIC.length + 1 + 12);
  const dv = new DataView(out.buffer);
  out[0] = KIND_SEGMENT;
  out.set(MAGIC, 1);
  out[1 + MAGIC.length] = WAL_VERSION;
  put48(dv, 2 + MAGIC.length, h.seq);
  put48(dv, 8 + MAGIC.length, h.firstIndex);
  return out;
}

export function decodeSegmentHeader(p: Uint8Array): SegmentHeader {
  if (p.length !== 1 + MAGIC.length + 1 + 12 || p[0] !== KIND_SEGMENT)
    throw new Error("not a segment header");
  for (let i = 0; i < MAGIC.length; i++) if (p[1 + i] !== MAGIC[i]) throw new Error("bad segment magic");
  const version = p[1 + MAGIC.length];
  if (version !== WAL_VERSION) throw new Error(`unsupported WAL version ${version}`);
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return { seq: get48(dv, 2 + MAGIC.length), firstIndex: get48(dv, 8 + MAGIC.length) };
}

export const ENTRY_HEAD = 1 + 1 + 6 + 6;

/** Size of the framed record of an entry with `dataLen` bytes of data (tagged when `group` > 0). */
export function entryFrameSize(dataLen: number, group = 0): number {
  return FRAME_HEADER + (group > 0 ? GROUP_TAG : 0) + ENTRY_HEAD + dataLen;
}

function putTag(out: Uint8Array, dv: DataView, at: number, group: number): void {
  if (!Number.isInteger(group) || group < 1 || group > MAX_GROUP) throw new RangeError(`bad group ${group}`);
  out[at] = KIND_GROUP;
  dv.setUint32(at + 1, group, true);
}

/** Tags a record payload with its group (group 0: unchanged). */
export function tagged(group: number, payload: Uint8Array): Uint8Array {
  if (group === 0) return payload;
  const out = new Uint8Array(GROUP_TAG + payload.byteLength);
  putTag(out, new DataView(out.buffer), 0, group);
  out.set(payload, GROUP_TAG);
  return out;
}

/** A record payload's group and the record itself, without the tag. */
export function untag(p: Uint8Array): { group: number; record: Uint8Array } {
  if (p[0] !== KIND_GROUP) return { group: 0, record: p };
  if (p.length < GROUP_TAG + 1) throw new Error("group tag without a record");
  const group = new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(1, true);
  if (group < 1 || group > MAX_GROUP) throw new Error(`group tag ${group} out of range`);
  if (p[GROUP_TAG] === KIND_GROUP || p[GROUP_TAG] === KIND_SEGMENT)
    throw new Error("group tag around a record that cannot be tagged");
  return { group, record: p.subarray(GROUP_TAG) };
}

/** Writes an entry record (frame and payload) straight into `out` at `at`: no intermediate copy on the hot path. */
export function writeEntryFrame(
  out: Uint8Array,
  at: number,
  type: "normal" | "config",
  term: number,
  index: number,
  data: Uint8Array,
  dv: DataView = new DataView(out.buffer, out.byteOffset, out.byteLength),
  group = 0,
): number {
  const tag = group > 0 ? GROUP_TAG : 0;
  const len = tag + ENTRY_HEAD + data.byteLength;
  const start = at + FRAME_HEADER;
  if (tag > 0) putTag(out, dv, start, group);
  const p = start + tag;
  out[p] = KIND_ENTRY;
  out[p + 1] = type === "config" ? 1 : 0;
  put48(dv, p + 2, term);
  put48(dv, p + 8, index);
  out.set(data, p + ENTRY_HEAD);
  dv.setUint32(at, len, true);
  dv.setUint32(at + 4, crc32c(out, 0, start, start + len), true);
  dv.setUint32(at + 8, crc32c(out, 0, at, at + 8), true);
  return start + len;
}

export interface EntryRecord {
  readonly type: "normal" | "config";
  readonly term: number;
  readonly index: number;
  readonly data: Uint8Array;
}

export function decodeEntry(p: Uint8Array): EntryRecord {
  if (p.length < ENTRY_HEAD || p[0] !== KIND_ENTRY) throw new Error("not an entry record");
  if (p[1] !== 0 && p[1] !== 1) throw new Error(`unknown entry type ${p[1]}`);
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return {
    type: p[1] === 1 ? "config" : "normal",
    term: get48(dv, 2),
    index: get48(dv, 8),
    data: p.subarray(ENTRY_HEAD),
  };
}

export interface HardStateRecord {
  readonly term: number;
  readonly vote: string | null;
  readonly commit: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export function encodeHardState(h: HardStateRecord): Uint8Array {
  const vote = h.vote === null ? null : enc.encode(h.vote);
  if (vote && vote.length > 0xfffe) throw new RangeError("member id too long");
  const out = new Uint8Array(1 + 12 + 2 + (vote?.length ?? 0));
  const dv = new DataView(out.buffer);
  out[0] = KIND_HARDSTATE;
  put48(dv, 1, h.term);
  put48(dv, 7, h.commit);
  dv.setUint16(13, vote === null ? 0xffff : vote.length, true);
  if (vote) out.set(vote, 15);
  return out;
}

export function decodeHardState(p: Uint8Array): HardStateRecord {
  if (p.length < 15 || p[0] !== KIND_HARDSTATE) throw new Error("not a hard state record");
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const n = dv.getUint16(13, true);
  const vote = n === 0xffff ? null : dec.decode(p.subarray(15, 15 + n));
  if (p.length !== 15 + (n === 0xffff ? 0 : n)) throw new Error("hard state record has trailing bytes");
  return { term: get48(dv, 1), commit: get48(dv, 7), vote };
}

export interface ResetRecord {
  readonly index: number;
  readonly term: number;
}

/** Written when a snapshot from the leader is installed: everything logged before it is void. */
export function encodeReset(r: ResetRecord): Uint8Array {
  const out = new Uint8Array(13);
  const dv = new DataView(out.buffer);
  out[0] = KIND_RESET;
  put48(dv, 1, r.index);
  put48(dv, 7, r.term);
  return out;
}

export function decodeReset(p: Uint8Array): ResetRecord {
  if (p.length !== 13 || p[0] !== KIND_RESET) throw new Error("not a reset record");
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return { index: get48(dv, 1), term: get48(dv, 7) };
}

/** Written by compaction: entries up to `index` are covered by the snapshot and gone (whole segments go later). */
export function encodeCompact(index: number): Uint8Array {
  const out = new Uint8Array(7);
  out[0] = KIND_COMPACT;
  put48(new DataView(out.buffer), 1, index);
  return out;
}

export function decodeCompact(p: Uint8Array): number {
  if (p.length !== 7 || p[0] !== KIND_COMPACT) throw new Error("not a compact record");
  return get48(new DataView(p.buffer, p.byteOffset, p.byteLength), 1);
}

/** Frames several payloads into one buffer (one write). */
export function framePayloads(payloads: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of payloads) size += FRAME_HEADER + p.byteLength;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of payloads) at = writeFrame(out, at, p);
  return out;
}
