/**
 * The `ballot` package: the node library (RaftNode, leader routing), the pure Raft core, storage
 * and transports. Re-exports only.
 */
export {
  type Candidate,
  encodeCommand,
  type KeyValue,
  type KvCommand,
  type KvResult,
} from "./kv/commands.js";
export {
  formatPartitionRule,
  Partitioner,
  type PartitionRule,
  parsePartitionRule,
} from "./kv/partitioner.js";
export { KvStore, type StoreEvent } from "./kv/store.js";
export {
  type Envelope,
  type GroupMessage,
  MultiRaft,
  type MultiRaftOptions,
  type MultiReady,
} from "./multiraft/host.js";
export * from "./node/errors.js";
export { type LeaderJob, Leadership, type LeadershipContext, type RunHandle } from "./node/leadership.js";
export {
  type PartitionContext,
  PartitionedNode,
  type PartitionedNodeOptions,
  type PartitionJob,
  type PartitionStatus,
  type Partitions,
} from "./node/partitioned-node.js";
export {
  clusterIdOf,
  type MemberStatus,
  type NodeLogger,
  type NodeStatus,
  RaftNode,
  type RaftNodeOptions,
  type StateMachine,
} from "./node/raft-node.js";
export * from "./raft/index.js";
export { ballotPlugin } from "./server/fastify.js";
export { type RedirectOptions, redirectToLeader } from "./server/middleware.js";
export { ConfigError, type RunningServer, type ServerOptions, startServer } from "./server/server.js";
export { DiskStorage, type DiskStorageOptions } from "./storage/disk.js";
export { MemoryStorage } from "./storage/memory.js";
export { SharedLog, type SharedLogOptions } from "./storage/shared-log.js";
export type { SaveBatch, Storage } from "./storage/storage.js";
export { StorageError } from "./storage/storage.js";
export { HttpTransport } from "./transport/http.js";
export { MemoryNetwork, MemoryTransport } from "./transport/memory.js";
export type { Transport } from "./transport/transport.js";
