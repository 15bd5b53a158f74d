/**
 * Public entry of the pure Raft core. Re-exports only; owns no behaviour.
 */
export type { PlantedBugs, ProposeError, ProposeResult, RaftOptions, ReadMode } from "./raft.js";
export { Raft } from "./raft.js";
export { type RandomSource, randomInt, seededRandom } from "./random.js";
export { RawNode, type RawNodeOptions, type Status } from "./rawnode.js";
export { CompactedError, type InitialState, type LogStorage, UnavailableError } from "./storage.js";
export * from "./types.js";
