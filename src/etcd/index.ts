/**
 * `ballot/etcd`: the election API of `ballot/client` on an existing etcd v3 cluster (through the
 * optional peer dependency `etcd3`). Re-exports only.
 */
export type {
  CampaignOptions,
  Election,
  ElectionJob,
  ElectionJobContext,
  ElectionLeader,
  ElectionRunHandle,
  HeldLeadership,
  RunWhileLeaderOptions,
} from "../client/election.js";
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
} from "../client/partitioned-election.js";
export {
  CandidacyLostError,
  type EtcdElectionOptions,
  etcdElection,
  LeadershipLostError,
} from "./election.js";
