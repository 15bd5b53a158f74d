/**
 * The `ballot` package. Today it exposes the pure Raft core and the in-memory storage; the node
 * runtime, HTTP server and client come with the issues that build them.
 */
export * from "./raft/index.js";
export { MemoryStorage } from "./storage/memory.js";
