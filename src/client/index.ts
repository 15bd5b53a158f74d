/**
 * `ballot/client`: the HTTP client for services that do not embed consensus. Owns the public
 * surface of the client only (re-exports); must never hold logic of its own.
 */
/** The HTTP API's wire types, generated from its schemas (the shapes of `GET /v1/openapi.json`). */
export type * as ApiTypes from "./api-types.js";
export { BallotElection } from "./ballot-election.js";
export {
  BallotClient,
  type BallotClientOptions,
  type ClusterMember,
  type ClusterStatus,
  type Consistency,
  type DeleteOptions,
  type DeleteResult,
  type ElectionOptions,
  type GetOptions,
  type KeyValue,
  type ListOptions,
  type ListResult,
  type PartitionedElectionOptions,
  type PutOptions,
  type PutResult,
  type TxnCompare,
  type TxnOp,
  type TxnOpResult,
  type TxnOptions,
  type TxnRequest,
  type TxnResult,
  type WatchEvent,
  type WatchOptions,
} from "./client.js";
export type {
  CampaignOptions,
  Election,
  ElectionJob,
  ElectionJobContext,
  ElectionLeader,
  ElectionRunHandle,
  HeldLeadership,
  RunWhileLeaderOptions,
} from "./election.js";
export { BallotClientError, type ClientErrorCode } from "./errors.js";
export { type HttpsFetchOptions, httpsFetch } from "./https-fetch.js";
export { Lease } from "./lease.js";
export { CLOCK_DRIFT, LeaseClock } from "./lease-clock.js";
export {
  fairShare,
  MAX_PARTITIONS,
  PartitionedElection,
  PartitionGivenBackError,
  type PartitionJob,
  type PartitionJobContext,
  type PartitionRunHandle,
  partitionElectionName,
  type RunForEachOptions,
  rosterElectionName,
} from "./partitioned-election.js";
export {
  readSse,
  type SseComment,
  type SseEvent,
  type SseItem,
  SseLimitError,
  type SseLimits,
  SseParser,
} from "./sse.js";
