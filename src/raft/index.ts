/**
 * The pure Raft core of Ballot. Re-exports only; owns no behaviour.
 *
 * How to drive it (the order matters — it is what makes a `200` mean "durable on a majority"):
 *
 * ```ts
 * const node = new RawNode({ id, storage, random: seededRandom(seed) });
 * setInterval(() => node.tick(), tickMs);      // time is a count of ticks
 * onPeerMessage((m) => node.step(m));
 * while (node.hasReady()) {
 *   const rd = node.ready();
 *   send(rd.leaderMessages);                        // a leader's appends need not wait for its disk
 *   persist(rd.snapshot, rd.entries, rd.hardState); // fdatasync first when rd.mustSync
 *   send(rd.messages);                              // votes and acks depend on step 1
 *   apply(rd.committedEntries); serve(rd.readStates);
 *   node.advance(rd);                               // only now does the leader count its own copy
 * }
 * ```
 *
 * Only one Ready is outstanding at a time; ticks and steps between ready() and advance() are
 * fine and land in the next Ready. The core never does I/O, reads a clock or draws randomness
 * except from the injected generator, so a simulation replays exactly from its seed.
 */
export type { PlantedBugs, ProposeError, ProposeResult, RaftOptions, ReadMode } from "./raft.js";
export { Raft } from "./raft.js";
export { type RandomSource, randomInt, seededRandom } from "./random.js";
export { RawNode, type RawNodeOptions, type Status } from "./rawnode.js";
export { CompactedError, type InitialState, type LogStorage, LogUnavailableError } from "./storage.js";
export * from "./types.js";
