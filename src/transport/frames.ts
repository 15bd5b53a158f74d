/**
 * Length-prefixed framing of encoded messages on a byte stream: [u32 length][message]. Owns
 * reassembly of frames from arbitrary chunks; must never interpret a message.
 */
import { CodecError, MAX_FRAME_BYTES } from "./codec.js";

export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.byteLength);
  new DataView(out.buffer).setUint32(0, payload.byteLength, true);
  out.set(payload, 4);
  return out;
}

/** Collects chunks and yields whole frames; throws CodecError for a frame over the size limit. */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private size = 0;

  push(chunk: Uint8Array): Uint8Array[] {
    this.chunks.push(chunk);
    this.size += chunk.byteLength;
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.size < 4) break;
      const head = this.peek(4);
      const len = new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true);
      if (len > MAX_FRAME_BYTES) throw new CodecError(`frame of ${len} bytes exceeds the limit`);
      if (this.size < 4 + len) break;
      const whole = this.take(4 + len);
      out.push(whole.subarray(4));
    }
    return out;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.byteLength >= n) return first.subarray(0, n);
    return this.concat(n);
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    let out: Uint8Array;
    if (first.byteLength >= n) {
      out = first.subarray(0, n);
      if (first.byteLength === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = this.concat(n);
      let left = n;
      while (left > 0) {
        const c = this.chunks[0]!;
        if (c.byteLength <= left) {
          left -= c.byteLength;
          this.chunks.shift();
        } else {
          this.chunks[0] = c.subarray(left);
          left = 0;
        }
      }
    }
    this.size -= n;
    return out;
  }

  private concat(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      const take = Math.min(c.byteLength, n - at);
      out.set(c.subarray(0, take), at);
      at += take;
      if (at === n) break;
    }
    return out;
  }
}
