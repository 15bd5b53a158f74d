/**
 * Coalescing of one Ready's messages: a leader steps every proposal and every commit on its own,
 * and each produces an append to every follower, so a batch of 60 writes would carry 60 appends
 * of one entry (and 60 more carrying commit indexes) to each follower, and as many answers back.
 * Here consecutive appends to one peer that continue each other become one append, and an answer
 * superseded by a later one to the same peer is dropped. Owns that rewriting only; it must never
 * reorder two messages to one peer, merge across message types, or make a message the sender
 * could not have sent itself.
 *
 * Why it is safe: merging appends m1, m2 (m2 starting where m1 ends) gives the append the leader
 * would have sent at m2's moment had the follower's next index still been m1's (same log, m2's
 * commit, tick and lease fields, all computed at that later moment); m1 itself is as if lost,
 * which Raft tolerates. A dropped acknowledgement is a lost message, and the later one
 * acknowledges at least as much.
 */
import type { Entry, Message } from "./types.js";

function entryBytes(entries: readonly Entry[] | undefined): number {
  let n = 0;
  for (const e of entries ?? []) n += e.data.byteLength;
  return n;
}

/** Whether `next` continues `prev` (both appends to one peer): its entries start where prev's end. */
function continues(prev: Message, next: Message): boolean {
  if (prev.term !== next.term) return false;
  const entries = prev.entries ?? [];
  const lastIndex = (prev.index ?? 0) + entries.length;
  const lastTerm = entries.length > 0 ? entries[entries.length - 1]!.term : (prev.logTerm ?? 0);
  return next.index === lastIndex && next.logTerm === lastTerm;
}

function mergeAppends(prev: Message, next: Message): Message {
  const a = prev.entries ?? [];
  const b = next.entries ?? [];
  const merged: Message = {
    ...next,
    index: prev.index,
    logTerm: prev.logTerm,
    entries: a.length === 0 ? b : b.length === 0 ? a : [...a, ...b],
  };
  // `force` marks an append that carries only the commit index and wants no answer: one that now
  // carries entries must be answered, whichever of the two asked for none.
  if (merged.force && merged.entries!.length > 0) {
    const { force: _, ...answered } = merged;
    return answered;
  }
  return merged;
}

/** Whether `next` (to the same peer) makes the acknowledgement `prev` redundant. */
function supersedes(prev: Message, next: Message): boolean {
  return (
    prev.type === "appendResp" &&
    next.type === "appendResp" &&
    !prev.reject &&
    !next.reject &&
    prev.term === next.term &&
    (next.index ?? 0) >= (prev.index ?? 0) &&
    (next.sentTick ?? 0) >= (prev.sentTick ?? 0)
  );
}

/**
 * The messages with consecutive appends to a peer merged (while the merged entries stay within
 * `maxBytes`) and superseded acknowledgements dropped; every other message kept, in order.
 */
export function coalesceMessages(msgs: readonly Message[], maxBytes: number): Message[] {
  if (msgs.length < 2) return msgs.slice();
  const out: (Message | null)[] = [];
  // Per peer: where its latest message sits in `out`, and its appends' entry bytes so far.
  const last = new Map<string, number>();
  const bytes = new Map<string, number>();
  for (const m of msgs) {
    const at = last.get(m.to);
    const prev = at === undefined ? null : out[at]!;
    if (prev && prev.type === "append" && m.type === "append" && continues(prev, m)) {
      const size = (bytes.get(m.to) ?? entryBytes(prev.entries)) + entryBytes(m.entries);
      if (size <= maxBytes) {
        out[at!] = mergeAppends(prev, m);
        bytes.set(m.to, size);
        continue;
      }
    }
    if (prev && supersedes(prev, m)) {
      out[at!] = null;
    }
    last.set(m.to, out.length);
    bytes.delete(m.to);
    out.push(m);
  }
  return out.filter((m): m is Message => m !== null);
}
